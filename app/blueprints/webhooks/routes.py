"""Webhooks API (API.md, Webhooks): endpoints of the tenant org, their delivery log, redeliver, ping."""
from __future__ import annotations

from app.extensions import db
from app.http.auth import current_actor, permission_required, resolve_org
from app.http.blueprint import ApiBlueprint
from app.http.pagination import page_of
from app.http.schemas import PaginationArgs
from app.services import webhooks as service

from .schemas import (WebhookCreateSchema, WebhookDeliveryPageSchema, WebhookDeliveryQueryArgs, WebhookDeliverySchema,
                      WebhookPageSchema, WebhookSchema, WebhookSecretSchema, WebhookUpdateSchema)

blp = ApiBlueprint("webhooks", __name__, url_prefix="/api/webhooks",
                   description="Signed HTTP callbacks for build and test events (org admins)")


def _endpoint(webhook_id):
    org, _ = resolve_org()
    return service.get_endpoint(org, webhook_id)


@blp.route("", methods=["GET"])
@blp.arguments(PaginationArgs, location="query")
@blp.response(200, WebhookPageSchema, description="The organization's endpoints (never their secrets)",
              errors=(400, 401, 403))
@permission_required("webhooks:manage")
def list_webhooks(args):
    return page_of("webhooks", service.endpoints_of(resolve_org()[0]), args)


@blp.route("", methods=["POST"])
@blp.arguments(WebhookCreateSchema)
@blp.response(201, WebhookSecretSchema, description="The endpoint; `secret` signs its deliveries and is shown this once",
              errors=(400, 401, 403))
@permission_required("webhooks:manage")
def create_webhook(data):
    org, _ = resolve_org()
    endpoint = service.create_endpoint(current_actor(), org, url=data["url"], events=data["events"],
                                       description=data["description"])
    db.session.commit()
    return endpoint, 201


@blp.route("/<webhook_id>", methods=["GET"])
@blp.response(200, WebhookSchema, description="The endpoint", errors=(401, 403, 404))
@permission_required("webhooks:manage")
def get_webhook(webhook_id):
    return _endpoint(webhook_id)


@blp.route("/<webhook_id>", methods=["PATCH"])
@blp.arguments(WebhookUpdateSchema)
@blp.response(200, WebhookSchema, description="The updated endpoint", errors=(400, 401, 403, 404))
@permission_required("webhooks:manage")
def update_webhook(data, webhook_id):
    endpoint = service.update_endpoint(current_actor(), _endpoint(webhook_id), data)
    db.session.commit()
    return endpoint


@blp.route("/<webhook_id>", methods=["DELETE"])
@blp.response(204, description="Deleted with its delivery log", errors=(401, 403, 404))
@permission_required("webhooks:manage")
def delete_webhook(webhook_id):
    service.delete_endpoint(current_actor(), _endpoint(webhook_id))
    db.session.commit()
    return "", 204


@blp.route("/<webhook_id>/deliveries", methods=["GET"])
@blp.arguments(WebhookDeliveryQueryArgs, location="query")
@blp.response(200, WebhookDeliveryPageSchema, description="Deliveries newest first, each with its tries",
              errors=(400, 401, 403, 404))
@permission_required("webhooks:manage")
def list_deliveries(args, webhook_id):
    return page_of("deliveries", service.deliveries_of(_endpoint(webhook_id), args["status"]), args)


@blp.route("/<webhook_id>/deliveries/<delivery_id>/redeliver", methods=["POST"])
@blp.response(202, WebhookDeliverySchema, description="Queued: the same message once more, as a new try",
              errors=(401, 403, 404, 409))
@permission_required("webhooks:manage")
def redeliver(webhook_id, delivery_id):
    delivery = service.redeliver(current_actor(), service.get_delivery(_endpoint(webhook_id), delivery_id))
    db.session.commit()
    return delivery, 202


@blp.route("/<webhook_id>/ping", methods=["POST"])
@blp.response(202, WebhookDeliverySchema, description="Queued: a signed webhook.ping to the endpoint (one try)",
              errors=(401, 403, 404))
@permission_required("webhooks:manage")
def ping(webhook_id):
    delivery = service.ping(current_actor(), _endpoint(webhook_id))
    db.session.commit()
    return delivery, 202


api_blueprints = [blp]
