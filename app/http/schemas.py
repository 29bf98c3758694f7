"""Marshmallow bases: camelCase on the wire, unknown fields refused by name, list envelopes."""
from __future__ import annotations

import marshmallow as ma
from marshmallow import EXCLUDE, RAISE, fields, validate


def camelcase(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


class CamelSchema(ma.Schema):
    """Python attributes stay snake_case; JSON keys are camelCase."""

    class Meta:
        unknown = RAISE

    def on_bind_field(self, field_name, field_obj):
        field_obj.data_key = camelcase(field_obj.data_key or field_name)


class QueryArgs(CamelSchema):
    class Meta:
        unknown = EXCLUDE  # browsers and proxies add cache-busting params; ignore what we don't know


class PaginationArgs(QueryArgs):
    page = fields.Integer(load_default=1, validate=validate.Range(min=1))
    limit = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))


class ErrorBodySchema(CamelSchema):
    code = fields.String()
    message = fields.String()
    details = fields.Dict()
    trace_id = fields.String()


class ErrorEnvelopeSchema(CamelSchema):
    error = fields.Nested(ErrorBodySchema)


def page_envelope(key: str, items: list, total: int, page: int, limit: int) -> dict:
    return {key: items, "totalCount": total, "page": page, "limit": limit, "hasMore": page * limit < total}


def paginate(query, page: int, limit: int):
    """Apply page/limit to a SQLAlchemy select; return (rows, total)."""
    from sqlalchemy import func, select

    from app.extensions import db

    total = db.session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    rows = db.session.scalars(query.limit(limit).offset((page - 1) * limit)).all()
    return rows, total
