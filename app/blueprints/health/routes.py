"""Liveness, readiness and version: unauthenticated, for load balancers and `make run` checks."""
from __future__ import annotations

import time

from flask import current_app
from sqlalchemy import text

from app import __version__
from app.extensions import db, redis
from app.blueprints.health.schemas import ApiVersionSchema, HealthSchema, ReadySchema
from app.http.blueprint import ApiBlueprint

blp = ApiBlueprint("health", __name__, url_prefix="/api", description="Health, readiness and version")


def _check_db() -> str:
    try:
        db.session.execute(text("SELECT 1"))
        return "connected"
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        db.session.rollback()
        current_app.logger.warning("health: database unreachable: %s", exc)
        return "disconnected"


def _check_redis() -> str:
    try:
        redis.client.ping()
        return "connected"
    except Exception as exc:  # noqa: BLE001
        current_app.logger.warning("health: redis unreachable: %s", exc)
        return "disconnected"


@blp.route("/health")
@blp.doc(security=[])
@blp.response(200, HealthSchema, description="Every dependency answers")
@blp.alt_response(503, schema=HealthSchema, description="A dependency is down (the body says which)")
def health():
    """Health of the app and its dependencies (503 when one is down)."""
    db_state, redis_state = _check_db(), _check_redis()
    ok = db_state == redis_state == "connected"
    body = {
        "status": "ok" if ok else "degraded",
        "version": __version__,
        "uptime": round(time.time() - current_app.config["KILN_STARTED_AT"], 1),
        "db": db_state,
        "redis": redis_state,
    }
    return body, 200 if ok else 503


@blp.route("/ready")
@blp.doc(security=[])
@blp.response(200, ReadySchema, description="Ready to take traffic")
@blp.alt_response(503, schema=ReadySchema, description="Not ready (the body says which dependency is down)")
def ready():
    """Ready to take traffic: the database schema is reachable and Redis answers."""
    db_state, redis_state = _check_db(), _check_redis()
    ok = db_state == redis_state == "connected"
    return {"status": "ready" if ok else "not_ready", "db": db_state, "redis": redis_state}, 200 if ok else 503


@blp.route("/version")
@blp.doc(security=[])
@blp.response(200, ApiVersionSchema)
def version():
    """The running Kiln version and API version."""
    return {"version": __version__, "api_version": "v1"}


api_blueprints = [blp]
