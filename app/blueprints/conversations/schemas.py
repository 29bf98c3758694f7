"""Conversation and chat payloads (API.md, Conversations and chat)."""
from __future__ import annotations

from marshmallow import ValidationError, fields, validate, validates_schema

from app.engine.recipe import dump_yaml
from app.http.schemas import CamelSchema, PaginationArgs, QueryArgs, Timestamp, page_schema
from app.services import conversations as service
from app.services.conversations import MAX_MESSAGE_CHARS, MAX_NAME_CHARS


# ---- input --------------------------------------------------------------------------------------

class ConversationCreateSchema(CamelSchema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=MAX_NAME_CHARS))


class ConversationUpdateSchema(CamelSchema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=MAX_NAME_CHARS))


class ConversationListArgs(PaginationArgs):
    pass


class ChatSchema(CamelSchema):
    conversation_id = fields.UUID(load_default=None, allow_none=True)
    message = fields.String(required=True, validate=validate.Length(min=1, max=MAX_MESSAGE_CHARS))


class ChatStreamArgs(QueryArgs):
    conversation_id = fields.UUID(load_default=None, allow_none=True)
    message = fields.String(required=True, validate=validate.Length(min=1, max=MAX_MESSAGE_CHARS))


class DiffArgs(QueryArgs):
    # `from` is a Python keyword: the attribute is from_ and the wire name stays `from`.
    from_ = fields.Integer(required=True, data_key="from", validate=validate.Range(min=1))
    to = fields.Integer(required=True, validate=validate.Range(min=1))

    def on_bind_field(self, field_name, field_obj):
        if field_name != "from_":
            super().on_bind_field(field_name, field_obj)


class RecipeEditSchema(CamelSchema):
    """PUT body: the whole recipe as JSON, or {"yaml": "..."}. The engine validates it field by field."""

    class Meta:
        unknown = "include"

    @validates_schema(pass_original=True)
    def _object(self, data, original, **kwargs):
        if not isinstance(original, dict) or not original:
            raise ValidationError("Send the whole recipe as a JSON object, or {\"yaml\": \"...\"}.", "recipe")


# ---- output: dumped straight from the models ------------------------------------------------------

class ConversationSchema(CamelSchema):
    id = fields.UUID()
    name = fields.String()
    created_at = Timestamp()
    updated_at = Timestamp()
    recipe_version = fields.Integer(attribute="current_version")


ConversationPageSchema = page_schema("ConversationPageSchema", "conversations", ConversationSchema)


class MessageSchema(CamelSchema):
    id = fields.UUID()
    role = fields.String()
    content = fields.String()
    created_at = Timestamp()
    # The version a reply made (its meta records it as the version is written); null for the rest.
    recipe_version = fields.Function(lambda m: (m.meta or {}).get("recipeVersion"),
                                     metadata={"type": "integer", "nullable": True})
    operations = fields.Function(lambda m: (m.meta or {}).get("operations") or [],
                                 metadata={"type": "array", "items": {"type": "object"}})


class ConversationDetailSchema(ConversationSchema):
    messages = fields.List(fields.Nested(MessageSchema))
    recipe = fields.Function(lambda c: service.current_version(c).recipe, metadata={"type": "object"})


class RecipeSchema(CamelSchema):
    """Dumps a RecipeVersion; the answer to an edit also says whether it `changed` the recipe."""

    conversation_id = fields.UUID()
    recipe_version = fields.Integer(attribute="number")
    recipe_hash = fields.String()
    recipe = fields.Dict()
    yaml = fields.Function(lambda v: dump_yaml(v.recipe), metadata={"type": "string"})
    changed = fields.Boolean()


class VersionSchema(CamelSchema):
    number = fields.Integer()
    created_at = Timestamp()
    source = fields.String()
    summary = fields.String()
    message_id = fields.UUID(allow_none=True)
    recipe_hash = fields.String()


class VersionDetailSchema(VersionSchema):
    recipe = fields.Dict()
    yaml = fields.Function(lambda v: dump_yaml(v.recipe), metadata={"type": "string"})


class VersionListSchema(CamelSchema):
    versions = fields.List(fields.Nested(VersionSchema))
    current = fields.Integer()


class FieldChangeSchema(CamelSchema):
    field = fields.String()
    before = fields.Raw(allow_none=True)
    after = fields.Raw(allow_none=True)


class DiffSchema(CamelSchema):
    from_ = fields.Integer(data_key="from", attribute="from")
    to = fields.Integer()
    unified = fields.String()
    changes = fields.List(fields.Nested(FieldChangeSchema))

    def on_bind_field(self, field_name, field_obj):
        if field_name != "from_":
            super().on_bind_field(field_name, field_obj)


class ChatResultSchema(CamelSchema):
    """Dumps a ChatResult: the reply, and the recipe as it stands after it."""

    message_id = fields.UUID(attribute="message.id")
    response = fields.String(attribute="message.content")
    recipe = fields.Dict(attribute="version.recipe")
    conversation_id = fields.UUID(attribute="conversation.id")
    recipe_version = fields.Integer(attribute="version.number")
    changed = fields.Boolean()
    operations = fields.List(fields.Dict())
