"""Search on the wire."""
from __future__ import annotations

from marshmallow import fields, validate
from webargs.fields import DelimitedList

from app.http.schemas import CamelSchema, QueryArgs
from app.services.search import KINDS


class SearchQueryArgs(QueryArgs):
    q = fields.String(required=True, validate=validate.Length(min=1, max=200))
    types = DelimitedList(fields.String(validate=validate.OneOf(KINDS)), load_default=list,
                          metadata={"description": "Limit to these kinds (comma-separated); members are for admins"})
    limit = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))


class SearchHitSchema(CamelSchema):
    type = fields.String(attribute="kind", metadata={"enum": list(KINDS)})
    id = fields.String()
    title = fields.String()
    snippet = fields.String(metadata={"description": "HTML-escaped text around the match, matches in <mark>"})
    rank = fields.Float(metadata={"description": "Higher is better"})
    url = fields.String(metadata={"description": "The page that shows it"})
    conversation_id = fields.String(allow_none=True)


class SearchResultsSchema(CamelSchema):
    query = fields.String()
    results = fields.List(fields.Nested(SearchHitSchema))
