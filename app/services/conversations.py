"""Conversations: messages in, planner edits out, and an immutable recipe version for every change.

Services take the actor and org explicitly, flush but never commit (the view commits), and audit
every change. Access checks happen where conversations are fetched (app.services.access).
"""
from __future__ import annotations

import copy
import difflib
import json
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Mapping

from sqlalchemy import select

from app.engine.packages import get_index
from app.engine.recipe import (DEFAULT_RECIPE, RecipeError, dump_yaml, parse_recipe_text, recipe_hash,
                               validate_recipe)
from app.engine.settings import EngineSettings
from app.extensions import db
from app.models import Conversation, Message, Organization, RecipeVersion
from app.models.base import utcnow
from app.planner import PlannerSettings, PlanResult, get_planner
from app.services import audit
from app.services.audit import Actor
from app.services.billing import ledger
from app.services.errors import Conflict, NotFound, ValidationFailed

MAX_MESSAGE_CHARS = 4000
MAX_NAME_CHARS = 200
MAX_RECIPE_TEXT_CHARS = 200_000
HISTORY_MESSAGES = 20  # enough context for follow-ups ("and the same for carol") without flooding an LLM

# Fields compared one level deeper in the structured diff: their parts change independently.
_NESTED_FIELDS = ("services", "firewall")


@dataclass
class ChatResult:
    conversation: Conversation
    user_message: Message
    message: Message  # the assistant's reply
    version: RecipeVersion  # the current version after the reply (new when `changed`)
    changed: bool
    operations: list = field(default_factory=list)
    created_conversation: bool = False


# ---- names and input checks ---------------------------------------------------------------------

def clean_name(name) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ValidationFailed("name: must not be empty", {"name": ["Must not be empty."]})
    name = " ".join(name.split())
    if len(name) > MAX_NAME_CHARS:
        raise ValidationFailed(f"name: at most {MAX_NAME_CHARS} characters",
                               {"name": [f"Longer than maximum length {MAX_NAME_CHARS}."]})
    return name


def clean_message(text) -> str:
    if not isinstance(text, str) or not text.strip():
        raise ValidationFailed("message: must not be empty", {"message": ["Must not be empty."]})
    text = text.strip()
    if len(text) > MAX_MESSAGE_CHARS:
        raise ValidationFailed(f"message: at most {MAX_MESSAGE_CHARS} characters (got {len(text)})",
                               {"message": [f"Longer than maximum length {MAX_MESSAGE_CHARS}."]})
    return text


def name_from_message(text: str, limit: int = 60) -> str:
    """A readable title from the first message: its first line, cut at a word boundary."""
    line = " ".join(text.strip().splitlines()[0].split()) if text.strip() else ""
    if not line:
        return "New conversation"
    if len(line) <= limit:
        return line
    cut = line[:limit].rsplit(" ", 1)[0] or line[:limit]
    return cut.rstrip(" ,.;:") + "…"


# ---- conversations --------------------------------------------------------------------------------

def _add_version(actor: Actor, conversation: Conversation, recipe: dict, *, source: str, summary: str,
                 message: Message | None = None) -> RecipeVersion:
    number = conversation.current_version + 1
    version = RecipeVersion(conversation_id=conversation.id, number=number, recipe=recipe,
                            recipe_hash=recipe_hash(recipe), message_id=message.id if message else None,
                            author_id=actor.user_id, source=source, summary=summary[:2000])
    db.session.add(version)
    conversation.current_version = number
    conversation.updated_at = utcnow()
    db.session.flush()
    audit.record(actor, "recipe.version_created", "conversation", conversation.id, org_id=conversation.org_id,
                 version=number, source=source, recipeHash=version.recipe_hash)
    return version


def create_conversation(actor: Actor, org, name: str) -> Conversation:
    """A new conversation whose version 1 is the default recipe."""
    conversation = Conversation(org_id=org.id, name=clean_name(name), created_by_id=actor.user_id, current_version=0)
    db.session.add(conversation)
    db.session.flush()
    _add_version(actor, conversation, validate_recipe(DEFAULT_RECIPE), source="initial",
                 summary="The starting recipe: a plain Debian image.")
    audit.record(actor, "conversation.created", "conversation", conversation.id, org_id=org.id,
                 name=conversation.name)
    return conversation


def rename_conversation(actor: Actor, conversation: Conversation, name: str) -> Conversation:
    old, conversation.name = conversation.name, clean_name(name)
    conversation.updated_at = utcnow()
    db.session.flush()
    audit.record(actor, "conversation.renamed", "conversation", conversation.id, org_id=conversation.org_id,
                 before=old, after=conversation.name)
    return conversation


def delete_conversation(actor: Actor, conversation: Conversation) -> None:
    """Soft delete: builds keep pointing at the versions they built."""
    conversation.deleted_at = utcnow()
    db.session.flush()
    audit.record(actor, "conversation.deleted", "conversation", conversation.id, org_id=conversation.org_id,
                 name=conversation.name)


def current_version(conversation: Conversation) -> RecipeVersion:
    version = conversation.version()
    if version is None:  # only possible for rows written outside this service
        raise NotFound(f"Conversation '{conversation.id}' has no recipe yet")
    return version


def get_version(conversation: Conversation, number) -> RecipeVersion:
    try:
        n = int(number)
    except (TypeError, ValueError):
        raise NotFound.of("Recipe version", number) from None
    # Beyond a 32-bit column no version exists; asking the database would overflow its integer type.
    version = conversation.version(n) if 1 <= n <= 2**31 - 1 else None
    if version is None:
        raise NotFound(f"Recipe version {str(number)[:20]} of conversation '{conversation.id}' not found")
    return version


def versions_of(conversation: Conversation) -> list[RecipeVersion]:
    return list(db.session.scalars(select(RecipeVersion).where(RecipeVersion.conversation_id == conversation.id)
                                    .order_by(RecipeVersion.number)))


def messages_of(conversation: Conversation) -> list[Message]:
    return list(db.session.scalars(select(Message).where(Message.conversation_id == conversation.id)
                                   .order_by(Message.created_at)))


def version_numbers_by_message(conversation: Conversation) -> dict:
    """message id -> the version number it produced (for showing changes inline in the thread)."""
    rows = db.session.execute(select(RecipeVersion.message_id, RecipeVersion.number)
                              .where(RecipeVersion.conversation_id == conversation.id,
                                     RecipeVersion.message_id.is_not(None)))
    return {mid: n for mid, n in rows}


def _lock(conversation: Conversation) -> None:
    # Two tabs posting at once must not both write version n+1 (PostgreSQL row lock; SQLite serializes writes).
    db.session.refresh(conversation, with_for_update=True)


# ---- chat -----------------------------------------------------------------------------------------

def _history(conversation: Conversation) -> list[dict]:
    rows = db.session.scalars(select(Message).where(Message.conversation_id == conversation.id)
                              .order_by(Message.created_at.desc()).limit(HISTORY_MESSAGES)).all()
    return [{"role": m.role, "content": m.content} for m in reversed(rows)]


def _refusal_text(item) -> str:
    if isinstance(item, str):
        return item
    if isinstance(item, dict):
        return str(item.get("message") or item.get("reason") or item.get("text") or json.dumps(item))
    return str(item)


def _reply_text(result) -> str:
    """The planner's reply, with every refusal stated (a refused request must never look accepted)."""
    reply = (result.reply or "").strip()
    missing = [text for text in (_refusal_text(r) for r in (result.refused or [])) if text and text not in reply]
    if missing:
        reply = "\n".join([reply, *missing]).strip()
    return reply or "I did not change anything."


def chat_planner(config: Mapping):
    """The planner the app's config describes (app/config.py), checking names against the engine's index."""
    engine_settings = EngineSettings.from_config(config)
    return get_planner(PlannerSettings.from_config(config),
                       index_for=lambda release: get_index(release, engine_settings))


@dataclass(frozen=True)
class Turn:
    """A chat turn between storing the person's message and writing the answer: plain values, no rows,
    so the planner can run after the transaction that stored the message has ended."""
    conversation_id: object
    user_message_id: object
    text: str
    base_version: int  # the version the planner starts from; the answer is written only onto it
    recipe: dict
    history: list
    versions: dict  # every version's recipe by number (undo, "go back to version 3", "what did you change?")
    created_conversation: bool


def start_turn(actor: Actor, org, conversation: Conversation | None, text: str) -> Turn:
    """Store the person's message (`conversation` None starts a new one named from it).

    The view commits right after: the planner then runs with no transaction and no lock open."""
    text = clean_message(text)
    created = conversation is None
    if created:
        conversation = create_conversation(actor, org, name_from_message(text))
    current = current_version(conversation)
    history = _history(conversation)
    user_message = Message(conversation_id=conversation.id, role="user", content=text, author_id=actor.user_id,
                           meta={}, created_at=utcnow())
    db.session.add(user_message)
    conversation.updated_at = utcnow()
    db.session.flush()
    return Turn(conversation_id=conversation.id, user_message_id=user_message.id, text=text,
                base_version=current.number, recipe=copy.deepcopy(current.recipe), history=history,
                versions={v.number: copy.deepcopy(v.recipe) for v in versions_of(conversation)},
                created_conversation=created)


def plan_turn(turn: Turn, planner) -> PlanResult:
    """The slow part (an LLM call, a package-index download): touches no database state."""
    return planner.plan(turn.text, turn.recipe, turn.history, turn.versions)


def finish_turn(actor: Actor, turn: Turn, result: PlanResult, *, planner_name: str = "builtin") -> ChatResult:
    """Lock the conversation, check it is still at the version the planner started from, and write the
    reply (and the new version when the recipe changed). Conflict when the recipe changed meanwhile:
    writing would silently undo that edit."""
    conversation = db.session.get(Conversation, turn.conversation_id)
    if conversation is None or conversation.deleted_at is not None:
        raise NotFound.of("Conversation", turn.conversation_id)
    _lock(conversation)
    user_message = db.session.get(Message, turn.user_message_id)
    reply = _reply_text(result)
    new_recipe = result.recipe if result.recipe is not None else turn.recipe
    changed = bool(result.changed) and recipe_hash(new_recipe) != recipe_hash(turn.recipe)
    if changed and conversation.current_version != turn.base_version:
        raise Conflict(f"The recipe changed while the assistant was answering (version {turn.base_version} became "
                       f"version {conversation.current_version}); nothing was changed. Send the message again to "
                       f"apply it to the current recipe.",
                       {"recipeVersion": conversation.current_version, "startedFrom": turn.base_version})
    operations = list(result.operations or []) if changed else []
    assistant = Message(conversation_id=conversation.id, role="assistant", content=reply, author_id=None,
                        created_at=max(utcnow(), user_message.created_at + timedelta(microseconds=1)),
                        meta={"operations": operations, "refused": [_refusal_text(r) for r in result.refused or []],
                              "changed": changed, "inReplyTo": str(user_message.id), "planner": planner_name})
    db.session.add(assistant)
    db.session.flush()
    if changed:
        version = _add_version(actor, conversation, validate_recipe(new_recipe), source="chat",
                               summary=reply, message=assistant)
        assistant.meta = {**assistant.meta, "recipeVersion": version.number}
    else:
        version = current_version(conversation)
    conversation.updated_at = utcnow()
    if result.tokens_used:
        ledger.consume(db.session.get(Organization, conversation.org_id), result.tokens_used, reference=f"message:{assistant.id}",
                       user_id=actor.user_id)
    audit.record(actor, "conversation.message_posted", "conversation", conversation.id, org_id=conversation.org_id,
                 messageId=assistant.id, changed=changed, version=version.number)
    db.session.flush()
    return ChatResult(conversation=conversation, user_message=user_message, message=assistant, version=version,
                      changed=changed, operations=operations, created_conversation=turn.created_conversation)


# ---- direct edits ---------------------------------------------------------------------------------

def parse_edit(data) -> dict:
    """A full recipe (dict) or {"yaml": "..."} / YAML text -> the validated recipe, or ValidationFailed naming fields."""
    try:
        if isinstance(data, str):
            if len(data) > MAX_RECIPE_TEXT_CHARS:
                raise RecipeError({"yaml": [f"the recipe text is longer than {MAX_RECIPE_TEXT_CHARS} characters"]})
            return parse_recipe_text(data)
        if isinstance(data, dict) and set(data) == {"yaml"}:
            if not isinstance(data["yaml"], str):
                raise RecipeError({"yaml": ["must be the recipe as YAML text"]})
            return parse_edit(data["yaml"])
        return validate_recipe(data)
    except RecipeError as err:
        fields_ = ", ".join(list(err.errors)[:6])
        raise ValidationFailed(f"The recipe is not valid: {fields_}", err.errors) from None


def edit_recipe(actor: Actor, conversation: Conversation, data) -> tuple[RecipeVersion, bool]:
    """Validate a whole recipe and make it the next version. Returns (version, changed).

    Saving the same recipe again changes nothing, so no version is made for it.
    """
    recipe = parse_edit(data)
    _lock(conversation)
    current = current_version(conversation)
    if recipe_hash(recipe) == current.recipe_hash:
        return current, False
    changes = field_changes(current.recipe, recipe)
    summary = "Edited directly: " + ", ".join(c["field"] for c in changes) if changes else "Edited directly."
    version = _add_version(actor, conversation, recipe, source="edit", summary=summary)
    return version, True


# ---- diffs ----------------------------------------------------------------------------------------

def field_changes(before: dict, after: dict) -> list[dict]:
    """Changed fields in recipe order; services/firewall are compared per sub-field."""
    changes = []
    keys = list(dict.fromkeys([*DEFAULT_RECIPE, *before, *after]))
    for key in keys:
        old, new = before.get(key), after.get(key)
        if key in _NESTED_FIELDS and isinstance(old, dict) and isinstance(new, dict):
            for sub in dict.fromkeys([*old, *new]):
                if old.get(sub) != new.get(sub):
                    changes.append({"field": f"{key}.{sub}", "before": old.get(sub), "after": new.get(sub)})
        elif old != new:
            changes.append({"field": key, "before": old, "after": new})
    return changes


def diff_versions(conversation: Conversation, from_number, to_number) -> dict:
    """Unified diff of the YAML form plus a structured field diff between any two versions."""
    a, b = get_version(conversation, from_number), get_version(conversation, to_number)
    unified = "".join(difflib.unified_diff(dump_yaml(a.recipe).splitlines(keepends=True),
                                           dump_yaml(b.recipe).splitlines(keepends=True),
                                           fromfile=f"recipe v{a.number}", tofile=f"recipe v{b.number}"))
    return {"from": a.number, "to": b.number, "unified": unified, "changes": field_changes(a.recipe, b.recipe)}
