"""Search API (API.md, Notifications, activity, search): ranked matches with highlighted snippets."""
from __future__ import annotations

from app.http.auth import current_principal, permission_required, resolve_org
from app.http.blueprint import ApiBlueprint
from app.services import search as service

from .schemas import SearchQueryArgs, SearchResultsSchema

blp = ApiBlueprint("search", __name__, url_prefix="/api/search",
                   description="Full-text search over conversations, recipes, builds and (admins) members")


@blp.route("", methods=["GET"])
@blp.arguments(SearchQueryArgs, location="query")
@blp.response(200, SearchResultsSchema, description="Best matches first, only among what the caller may see",
              errors=(400, 401, 403))
@permission_required("org:read")
def search(args):
    org, role = resolve_org()
    principal = current_principal()
    hits = service.search(org, args["q"], user=principal.user, role=role, scopes=principal.scopes,
                          kinds=args["types"], limit=args["limit"])
    return {"query": args["q"], "results": hits}


api_blueprints = [blp]
