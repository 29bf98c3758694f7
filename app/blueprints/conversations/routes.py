"""Conversations, recipe versions and chat (API.md, Conversations and chat)."""
from __future__ import annotations

import json

from flask import Response, current_app, request
from flask.views import MethodView

from app.extensions import db
from app.http import streams as stream_slots
from app.http.auth import authorize, current_actor, current_principal, permission_required
from app.http.blueprint import ApiBlueprint
from app.http.errors import trace_id
from app.http.pagination import page_of
from app.http.schemas import Augmented
from app.services import access
from app.services import conversations as service
from app.services.billing import ledger
from app.services.errors import DomainError, ValidationFailed

from .schemas import (ChatResultSchema, ChatSchema, ChatStreamArgs, ConversationCreateSchema,
                      ConversationDetailSchema, ConversationListArgs, ConversationPageSchema, ConversationSchema,
                      ConversationUpdateSchema, DiffArgs, DiffSchema, RecipeEditSchema, RecipeSchema,
                      VersionDetailSchema, VersionListSchema)

blp = ApiBlueprint("conversations", __name__, url_prefix="/api/conversations",
                   description="Conversations and their recipe versions")
chat_blp = ApiBlueprint("chat", __name__, url_prefix="/api/chat", description="Chat with the recipe assistant")
# The reply stream's slot, should the request fail before its body takes it over (see chat_stream).
chat_blp.teardown_request(stream_slots.release_slot)


# ---- helpers shared with the page views ----------------------------------------------------------

def caller() -> dict:
    """The keyword arguments access.py needs for the current caller."""
    principal = current_principal()
    _, role = authorize("conversations:read")
    return {"user": principal.user, "role": role, "via_api_key": principal.api_key is not None}


def load_conversation(conversation_id, need: str = "view"):
    org, _ = authorize("conversations:write" if need == "edit" else "conversations:read")
    return access.require_conversation(org, conversation_id, need=need, **caller())


def run_chat(conversation_id, message: str) -> service.ChatResult:
    """Authorize, store the message, plan, write: one path for POST /chat, the stream and the page form.

    The message is committed before the planner runs, so a slow LLM call or package-index download
    holds no transaction or lock; the answer is written only onto the version the planner started from."""
    org, _ = authorize("conversations:write")
    conversation = None
    if conversation_id is not None:
        conversation = access.require_conversation(org, conversation_id, need="edit", **caller())
    planner = service.chat_planner(current_app.config)
    if planner.name == "llm":
        ledger.require_tokens(org)
    turn = service.start_turn(current_actor(), org, conversation, message)
    db.session.commit()
    answer = service.plan_turn(turn, planner)
    result = service.finish_turn(current_actor(), turn, answer, planner_name=planner.name)
    db.session.commit()
    return result


# ---- conversations --------------------------------------------------------------------------------

@blp.route("")
class Conversations(MethodView):
    @blp.arguments(ConversationListArgs, location="query")
    @blp.response(200, ConversationPageSchema, errors=(401, 403))
    @permission_required("conversations:read")
    def get(self, args):
        """Conversations the caller can see, most recently active first."""
        org, _ = authorize("conversations:read")
        query = access.visible_conversations(org, **caller()).order_by(
            service.Conversation.updated_at.desc(), service.Conversation.id)
        return page_of("conversations", query, args)

    @blp.arguments(ConversationCreateSchema)
    @blp.response(201, ConversationDetailSchema, errors=(400, 401, 403))
    @permission_required("conversations:write")
    def post(self, data):
        """Start a conversation; its recipe version 1 is the default recipe."""
        org, _ = authorize("conversations:write")
        conversation = service.create_conversation(current_actor(), org, data["name"])
        db.session.commit()
        return conversation


@blp.route("/<conversation_id>")
class ConversationById(MethodView):
    @blp.response(200, ConversationDetailSchema, errors=(401, 403, 404))
    @permission_required("conversations:read")
    def get(self, conversation_id):
        """The conversation with its messages and current recipe."""
        return load_conversation(conversation_id)

    @blp.arguments(ConversationUpdateSchema)
    @blp.response(200, ConversationSchema, errors=(400, 401, 403, 404))
    @permission_required("conversations:write")
    def patch(self, data, conversation_id):
        """Rename."""
        conversation = load_conversation(conversation_id, need="edit")
        service.rename_conversation(current_actor(), conversation, data["name"])
        db.session.commit()
        return conversation

    @blp.response(204, errors=(401, 403, 404))
    @permission_required("conversations:write")
    def delete(self, conversation_id):
        """Delete (soft: builds keep their recipe versions)."""
        conversation = load_conversation(conversation_id, need="edit")
        service.delete_conversation(current_actor(), conversation)
        db.session.commit()


@blp.route("/<conversation_id>/recipe")
class ConversationRecipe(MethodView):
    @blp.response(200, RecipeSchema, errors=(401, 403, 404))
    @permission_required("conversations:read")
    def get(self, conversation_id):
        """The current recipe (JSON and its YAML form)."""
        conversation = load_conversation(conversation_id)
        return service.current_version(conversation)

    @blp.arguments(RecipeEditSchema)
    @blp.response(200, RecipeSchema, errors=(400, 401, 403, 404))
    @permission_required("conversations:write")
    def put(self, data, conversation_id):
        """Replace the recipe (whole recipe JSON, or {"yaml": "..."}); validated, then a new version."""
        conversation = load_conversation(conversation_id, need="edit")
        version, changed = service.edit_recipe(current_actor(), conversation, data)
        db.session.commit()
        return Augmented(version, changed=changed)


@blp.route("/<conversation_id>/recipe/versions")
class RecipeVersions(MethodView):
    @blp.response(200, VersionListSchema, errors=(401, 403, 404))
    @permission_required("conversations:read")
    def get(self, conversation_id):
        """Every version, oldest first."""
        conversation = load_conversation(conversation_id)
        return {"versions": service.versions_of(conversation),
                "current": conversation.current_version}


@blp.route("/<conversation_id>/recipe/versions/<int:number>")
class RecipeVersionByNumber(MethodView):
    @blp.response(200, VersionDetailSchema, errors=(401, 403, 404))
    @permission_required("conversations:read")
    def get(self, conversation_id, number):
        """One version with its recipe."""
        conversation = load_conversation(conversation_id)
        return service.get_version(conversation, number)


@blp.route("/<conversation_id>/recipe/diff")
class RecipeDiff(MethodView):
    @blp.arguments(DiffArgs, location="query")
    @blp.response(200, DiffSchema, errors=(400, 401, 403, 404))
    @permission_required("conversations:read")
    def get(self, args, conversation_id):
        """Unified YAML diff and per-field changes between two versions (?from=1&to=3)."""
        conversation = load_conversation(conversation_id)
        return service.diff_versions(conversation, args["from_"], args["to"])


# ---- chat -------------------------------------------------------------------------------------------

@chat_blp.route("", methods=["POST"])
@chat_blp.arguments(ChatSchema)
@chat_blp.response(200, ChatResultSchema, errors=(400, 401, 403, 404, 409))
@permission_required("conversations:write")
def chat(data):
    """Send a message; the assistant edits the recipe and says what it changed.

    Without conversationId a new conversation is started (named from the message).
    """
    return run_chat(data["conversation_id"], data["message"])


def sse(event: str, data) -> str:
    payload = data if isinstance(data, str) else json.dumps(data, default=str)
    return f"event: {event}\n" + "".join(f"data: {line}\n" for line in payload.split("\n")) + "\n"


def reply_chunks(text: str, words: int = 3) -> list[str]:
    """Word groups that concatenate back to exactly `text` (whitespace and newlines kept)."""
    import re

    tokens = re.findall(r"\S+\s*|\s+", text)
    return ["".join(tokens[i:i + words]) for i in range(0, len(tokens), words)]


def _error_stream(err: DomainError) -> Response:
    body = {"error": {"code": err.code, "message": err.message, "details": err.details, "traceId": trace_id()}}
    retry_after = getattr(err, "retry_after", None)
    return stream_slots.event_stream([sse("error", body)], status=err.status,
                        headers={"Retry-After": str(retry_after)} if retry_after else None)


def _check_stream_csrf(token: str | None) -> None:
    # GET has no CSRF header check, but this GET writes: a session caller must prove the page sent it.
    principal = current_principal()
    if principal.via != "session" or not current_app.config.get("WTF_CSRF_ENABLED", True):
        return
    from flask_wtf.csrf import validate_csrf

    try:
        validate_csrf(token)
    except Exception:  # noqa: BLE001 - wtforms raises ValidationError for every bad token
        raise ValidationFailed("csrf_token: missing or invalid (the chat page adds it to the stream URL)",
                               {"csrf_token": ["Missing or invalid."]}) from None


@chat_blp.route("/stream", methods=["GET"])
@chat_blp.doc(responses={200: {"description": "text/event-stream: `delta` (reply text chunks), `recipe` "
                                              "({recipe, recipeVersion, changed, conversationId}), `done` "
                                              "({messageId, conversationId}); errors as `error` (the envelope)",
                               "content": {"text/event-stream": {"schema": {"type": "string"}}}}})
def chat_stream():
    """Send a message and receive the reply as Server-Sent Events.

    Errors are sent as an `error` event carrying the usual envelope, with the matching HTTP status. The reply
    counts as one of the process's live streams (KILN_STREAMS_PER_PROCESS): when none is free the answer is
    503 with Retry-After, before the message is stored or any model is asked.
    """
    from marshmallow import ValidationError

    from app.http.errors import flatten_validation

    try:
        try:
            args = ChatStreamArgs().load(request.args)
        except ValidationError as err:
            details = flatten_validation(err.messages)
            raise ValidationFailed("Invalid request: " + "; ".join(f"{k}: {v[0]}" for k, v in details.items()),
                                   details) from None
        authorize("conversations:write")
        _check_stream_csrf(request.args.get("csrf_token"))
        # The reply holds this thread from the planner's call to the last event: it takes its stream slot
        # first, so a refused request has asked no model, spent no tokens and written no message.
        stream_slots.take_slot("live streams", "retry later, or send the message with POST /api/chat")
        result = run_chat(args["conversation_id"], args["message"])
    except DomainError as err:
        db.session.rollback()
        stream_slots.release_slot()
        return _error_stream(err)

    # Everything is committed before streaming starts: the generator touches no database state.
    events = [sse("delta", chunk) for chunk in reply_chunks(result.message.content)]
    events.append(sse("recipe", {"recipe": result.version.recipe, "recipeVersion": result.version.number,
                                 "changed": result.changed, "conversationId": str(result.conversation.id),
                                 "operations": result.operations}))
    events.append(sse("done", {"messageId": str(result.message.id), "conversationId": str(result.conversation.id),
                               "recipeVersion": result.version.number}))
    return stream_slots.event_stream(events)


api_blueprints = [blp, chat_blp]
