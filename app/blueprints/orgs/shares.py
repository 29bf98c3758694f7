"""Conversation shares API: who else may view or edit a conversation (and so its builds)."""
from __future__ import annotations

from app.extensions import db
from app.http.auth import current_actor, current_principal, permission_required, resolve_org
from app.http.blueprint import ApiBlueprint
from app.services import sharing
from app.services.access import require_conversation

from .schemas import ShareCreateSchema, ShareListSchema, ShareSchema

blp = ApiBlueprint("conversation_shares", __name__, url_prefix="/api/conversations",
                   description="Sharing conversations with users, groups, units, teams or the organization")


def conversation_for(conversation_id, need: str):
    """Viewing shares needs view access; changing them needs edit access to the conversation."""
    principal = current_principal()
    org, role = resolve_org()
    return require_conversation(org, conversation_id, user=principal.user, role=role, need=need,
                                via_api_key=principal.api_key is not None)


@blp.route("/<conversation_id>/shares", methods=["GET"])
@blp.response(200, ShareListSchema, description="The conversation's shares", errors=(401, 403, 404))
@permission_required("conversations:read")
def list_shares(conversation_id):
    conversation = conversation_for(conversation_id, "view")
    return {"shares": sharing.shares_of(conversation)}


@blp.route("/<conversation_id>/shares", methods=["POST"])
@blp.arguments(ShareCreateSchema)
@blp.response(201, ShareSchema, description="The new share")
@blp.alt_response(200, success=True, schema=ShareSchema, description="An existing share, its permission changed")
@blp.doc_errors(400, 401, 403, 404)
@permission_required("conversations:write")
def create_share(data, conversation_id):
    """Share with a user, group, unit, team of the conversation's org, or the whole org (`view` or `edit`)."""
    conversation = conversation_for(conversation_id, "edit")
    row, created = sharing.share(current_actor(), conversation, data["target_type"], data["target_id"],
                                 data["permission"])
    db.session.commit()
    return row, 201 if created else 200


@blp.route("/<conversation_id>/shares/<share_id>", methods=["DELETE"])
@blp.response(204, description="Removed; takes effect on the next request", errors=(401, 403, 404))
@permission_required("conversations:write")
def delete_share(conversation_id, share_id):
    conversation = conversation_for(conversation_id, "edit")
    sharing.unshare(current_actor(), conversation, share_id)
    db.session.commit()
    return "", 204


api_blueprints = [blp]
