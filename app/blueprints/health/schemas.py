"""Health, readiness and version answers, as the OpenAPI document describes them."""
from __future__ import annotations

from marshmallow import fields

from app.http.schemas import CamelSchema



class HealthSchema(CamelSchema):
    status = fields.String(metadata={"enum": ["ok", "degraded"]})
    version = fields.String()
    uptime = fields.Float(metadata={"description": "Seconds since the web process started"})
    db = fields.String(metadata={"enum": ["connected", "disconnected"]})
    redis = fields.String(metadata={"enum": ["connected", "disconnected"]})


class ReadySchema(CamelSchema):
    status = fields.String(metadata={"enum": ["ready", "not_ready"]})
    db = fields.String(metadata={"enum": ["connected", "disconnected"]})
    redis = fields.String(metadata={"enum": ["connected", "disconnected"]})


class ApiVersionSchema(CamelSchema):
    version = fields.String()
    api_version = fields.String()
