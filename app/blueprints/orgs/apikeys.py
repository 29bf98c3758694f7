"""API keys of an organization: create (shown once), list, patch, revoke, rotate (grace), roll, delete, usage."""
from __future__ import annotations

from app.extensions import db
from app.http.auth import current_actor, permission_required, resolve_org
from app.http.blueprint import ApiBlueprint
from app.http.pagination import page_of, paginate
from app.http.schemas import Augmented, PaginationArgs, page_envelope
from app.services import apikeys

from .schemas import (ApiKeyCreateSchema, ApiKeyPageSchema, ApiKeyReplacementSchema, ApiKeySchema, ApiKeySecretSchema,
                      ApiKeyUpdateSchema, ApiKeyUsagePageSchema, RotateSchema)

blp = ApiBlueprint("api_keys", __name__, url_prefix="/api/organizations",
                   description="API keys (admins, or keys with the admin scope)")
keys_manage = permission_required("keys:manage", "org_id")


def _key(key_id):
    return apikeys.get_key(resolve_org()[0], key_id)


@blp.route("/<org_id>/api-keys", methods=["GET"])
@blp.arguments(PaginationArgs, location="query")
@blp.response(200, ApiKeyPageSchema, description="The organization's keys (never the secrets)", errors=(401, 403, 404))
@keys_manage
def list_keys(args, org_id):
    return page_of("apiKeys", apikeys.keys_of(resolve_org()[0]), args)


@blp.route("/<org_id>/api-keys", methods=["POST"])
@blp.arguments(ApiKeyCreateSchema)
@blp.response(201, ApiKeySecretSchema, description="The key; `key` holds the secret, shown this once",
              errors=(400, 401, 403, 404))
@keys_manage
def create_key(data, org_id):
    key, raw = apikeys.create_key(current_actor(), resolve_org()[0], name=data["name"],
                                  description=data["description"], scopes=data["scopes"], expires_at=data["expires_at"])
    db.session.commit()
    return Augmented(key, secret=raw), 201


@blp.route("/<org_id>/api-keys/<key_id>", methods=["GET"])
@blp.response(200, ApiKeySchema, description="The key (never its secret)", errors=(401, 403, 404))
@keys_manage
def get_key(org_id, key_id):
    return _key(key_id)


@blp.route("/<org_id>/api-keys/<key_id>", methods=["PATCH"])
@blp.arguments(ApiKeyUpdateSchema)
@blp.response(200, ApiKeySchema, description="The updated key", errors=(400, 401, 403, 404))
@keys_manage
def update_key(data, org_id, key_id):
    """Change name, description, scopes, expiresAt, or switch the key off/on with `active`."""
    key = apikeys.update_key(current_actor(), _key(key_id), data)
    db.session.commit()
    return key


@blp.route("/<org_id>/api-keys/<key_id>", methods=["DELETE"])
@blp.response(204, description="Deleted with its usage log", errors=(401, 403, 404))
@keys_manage
def delete_key(org_id, key_id):
    apikeys.delete_key(current_actor(), _key(key_id))
    db.session.commit()
    return "", 204


@blp.route("/<org_id>/api-keys/<key_id>/revoke", methods=["POST"])
@blp.response(200, ApiKeySchema, description="Revoked: refused from the next request on", errors=(401, 403, 404, 409))
@keys_manage
def revoke_key(org_id, key_id):
    key = apikeys.revoke_key(current_actor(), _key(key_id))
    db.session.commit()
    return key


@blp.route("/<org_id>/api-keys/<key_id>/rotate", methods=["POST"])
@blp.arguments(RotateSchema, required=False)
@blp.response(201, ApiKeyReplacementSchema,
              description="The replacement key (secret shown once); the old one works until graceUntil")
@blp.doc_errors(400, 401, 403, 404, 409)
@keys_manage
def rotate_key(data, org_id, key_id):
    old = _key(key_id)
    new, raw = apikeys.rotate_key(current_actor(), old, (data or {}).get("grace_hours", 24))
    db.session.commit()
    return Augmented(new, secret=raw, previous=old), 201


@blp.route("/<org_id>/api-keys/<key_id>/roll", methods=["POST"])
@blp.response(201, ApiKeyReplacementSchema,
              description="The replacement key (secret shown once); the old one is dead now")
@blp.doc_errors(401, 403, 404, 409)
@keys_manage
def roll_key(org_id, key_id):
    old = _key(key_id)
    new, raw = apikeys.roll_key(current_actor(), old)
    db.session.commit()
    return Augmented(new, secret=raw, previous=old), 201


@blp.route("/<org_id>/api-keys/<key_id>/usage", methods=["GET"])
@blp.arguments(PaginationArgs, location="query")
@blp.response(200, ApiKeyUsagePageSchema, description="Requests made with the key, newest first",
              errors=(401, 403, 404))
@keys_manage
def key_usage(args, org_id, key_id):
    key = _key(key_id)
    rows, total = paginate(apikeys.usage_of(key), args["page"], args["limit"])
    return {**page_envelope("usage", rows, total, args["page"], args["limit"]), "lastUsedAt": key.last_used_at}


api_blueprints = [blp]
