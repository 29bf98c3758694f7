"""Marshmallow bases: camelCase on the wire, unknown fields refused by name, list envelopes."""
from __future__ import annotations

from datetime import datetime

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


# Deep enough for any real list; beyond it the row offset outgrows the databases' 64-bit integers.
MAX_PAGE = 1_000_000


class PaginationArgs(QueryArgs):
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=MAX_PAGE))
    limit = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))


class Augmented:
    """A model plus the few values of one answer that are not its attributes (a key's secret, whether an edit
    changed the recipe). A response schema reads both alike; a field whose value is absent is left out."""

    def __init__(self, obj, **values):
        self._obj, self._values = obj, values

    def __getattr__(self, name):
        values = self.__dict__["_values"]
        if name in values:
            return values[name]
        return getattr(self.__dict__["_obj"], name)


class Timestamp(fields.DateTime):
    """ISO 8601 UTC with Z, documented as date-time; a string the serializer already formatted passes as is."""

    def _serialize(self, value, attr, obj, **kwargs):
        if isinstance(value, datetime):
            from app.models.base import isoformat

            return isoformat(value)
        return value


class Computed(fields.Function):
    """A value computed from the object by a one-argument callable (fields.Function without the context).

    fields.Function inspects its callable's signature on every value it dumps, to decide whether to pass the
    schema context; in a page of builds that inspection was a tenth of the request's CPU."""

    def _serialize(self, value, attr, obj, **kwargs):
        return self.serialize_func(obj)


class PageSchema(CamelSchema):
    """The list envelope page_envelope() writes; a subclass adds the items under their plural key.

    The envelope's keys are already the wire names, so each field reads the key it writes; the items are
    dumped by the subclass's nested schema.
    """

    def on_bind_field(self, field_name, field_obj):
        super().on_bind_field(field_name, field_obj)
        if field_obj.attribute is None:
            field_obj.attribute = field_obj.data_key

    total_count = fields.Integer()
    page = fields.Integer()
    limit = fields.Integer()
    has_more = fields.Boolean()


def page_schema(name: str, key: str, item_schema) -> type[PageSchema]:
    """The envelope of a list: `key` holds the items, dumped by `item_schema`. `name` names it in the OpenAPI
    document (MemberPageSchema -> MemberPage)."""
    return type(name, (PageSchema,), {key: fields.List(fields.Nested(item_schema))})


class ErrorBodySchema(CamelSchema):
    code = fields.String()
    message = fields.String()
    details = fields.Dict()
    trace_id = fields.String()


class ErrorEnvelopeSchema(CamelSchema):
    error = fields.Nested(ErrorBodySchema)


def page_envelope(key: str, items: list, total: int, page: int, limit: int) -> dict:
    return {key: items, "totalCount": total, "page": page, "limit": limit, "hasMore": page * limit < total}
