"""API keys of an organization: create (shown once), list, patch, revoke, rotate (grace), roll, delete, usage."""
from __future__ import annotations

from app.extensions import db
from app.http.auth import current_actor
from app.http.blueprint import ApiBlueprint
from app.http.schemas import PaginationArgs, page_envelope, paginate
from app.services import apikeys, orgs

from .common import key_body, org_permission_required, usage_body
from .schemas import (ApiKeyCreateSchema, ApiKeyPageSchema, ApiKeyReplacementSchema, ApiKeySchema, ApiKeySecretSchema,
                      ApiKeyUpdateSchema, ApiKeyUsagePageSchema, RotateSchema)

blp = ApiBlueprint("api_keys", __name__, url_prefix="/api/organizations",
                   description="API keys (admins, or keys with the admin scope)")


def _key(org_id, key_id):
    return apikeys.get_key(orgs.get_org(org_id), key_id)


@blp.route("/<org_id>/api-keys", methods=["GET"])
@blp.arguments(PaginationArgs, location="query")
@blp.response(200, ApiKeyPageSchema, description="The organization's keys (never the secrets)")
@blp.doc_errors(401, 403, 404)
@org_permission_required("keys:manage")
def list_keys(args, org_id):
    rows, total = paginate(apikeys.keys_of(orgs.get_org(org_id)), args["page"], args["limit"])
    return page_envelope("apiKeys", [key_body(k) for k in rows], total, args["page"], args["limit"])


@blp.route("/<org_id>/api-keys", methods=["POST"])
@blp.arguments(ApiKeyCreateSchema)
@blp.response(201, ApiKeySecretSchema, description="The key; `key` holds the secret, shown this once")
@blp.doc_errors(400, 401, 403, 404)
@org_permission_required("keys:manage")
def create_key(data, org_id):
    key, raw = apikeys.create_key(current_actor(), orgs.get_org(org_id), name=data["name"],
                                  description=data["description"], scopes=data["scopes"], expires_at=data["expires_at"])
    db.session.commit()
    return key_body(key, raw), 201


@blp.route("/<org_id>/api-keys/<key_id>", methods=["GET"])
@blp.response(200, ApiKeySchema, description="The key (never its secret)")
@blp.doc_errors(401, 403, 404)
@org_permission_required("keys:manage")
def get_key(org_id, key_id):
    return key_body(_key(org_id, key_id))


@blp.route("/<org_id>/api-keys/<key_id>", methods=["PATCH"])
@blp.arguments(ApiKeyUpdateSchema)
@blp.response(200, ApiKeySchema, description="The updated key")
@blp.doc_errors(400, 401, 403, 404)
@org_permission_required("keys:manage")
def update_key(data, org_id, key_id):
    """Change name, description, scopes, expiresAt, or switch the key off/on with `active`."""
    key = apikeys.update_key(current_actor(), _key(org_id, key_id), data)
    db.session.commit()
    return key_body(key)


@blp.route("/<org_id>/api-keys/<key_id>", methods=["DELETE"])
@blp.response(204, description="Deleted with its usage log")
@blp.doc_errors(401, 403, 404)
@org_permission_required("keys:manage")
def delete_key(org_id, key_id):
    apikeys.delete_key(current_actor(), _key(org_id, key_id))
    db.session.commit()
    return "", 204


@blp.route("/<org_id>/api-keys/<key_id>/revoke", methods=["POST"])
@blp.response(200, ApiKeySchema, description="Revoked: refused from the next request on")
@blp.doc_errors(401, 403, 404, 409)
@org_permission_required("keys:manage")
def revoke_key(org_id, key_id):
    key = apikeys.revoke_key(current_actor(), _key(org_id, key_id))
    db.session.commit()
    return key_body(key)


@blp.route("/<org_id>/api-keys/<key_id>/rotate", methods=["POST"])
@blp.arguments(RotateSchema, required=False)
@blp.response(201, ApiKeyReplacementSchema,
              description="The replacement key (secret shown once); the old one works until graceUntil")
@blp.doc_errors(400, 401, 403, 404, 409)
@org_permission_required("keys:manage")
def rotate_key(data, org_id, key_id):
    old = _key(org_id, key_id)
    new, raw = apikeys.rotate_key(current_actor(), old, (data or {}).get("grace_hours", 24))
    db.session.commit()
    body = key_body(new, raw)
    body["previous"] = key_body(old)
    return body, 201


@blp.route("/<org_id>/api-keys/<key_id>/roll", methods=["POST"])
@blp.response(201, ApiKeyReplacementSchema,
              description="The replacement key (secret shown once); the old one is dead now")
@blp.doc_errors(401, 403, 404, 409)
@org_permission_required("keys:manage")
def roll_key(org_id, key_id):
    old = _key(org_id, key_id)
    new, raw = apikeys.roll_key(current_actor(), old)
    db.session.commit()
    body = key_body(new, raw)
    body["previous"] = key_body(old)
    return body, 201


@blp.route("/<org_id>/api-keys/<key_id>/usage", methods=["GET"])
@blp.arguments(PaginationArgs, location="query")
@blp.response(200, ApiKeyUsagePageSchema, description="Requests made with the key, newest first")
@blp.doc_errors(401, 403, 404)
@org_permission_required("keys:manage")
def key_usage(args, org_id, key_id):
    key = _key(org_id, key_id)
    rows, total = paginate(apikeys.usage_of(key), args["page"], args["limit"])
    body = page_envelope("usage", [usage_body(r) for r in rows], total, args["page"], args["limit"])
    body["lastUsedAt"] = key_body(key)["lastUsedAt"]
    return body


api_blueprints = [blp]
