"""The chat screen: conversation list, thread with a streamed reply, the recipe beside it, versions, build."""
from __future__ import annotations

from flask import Blueprint, current_app, redirect, render_template, request, url_for

from app.engine.recipe import dump_yaml
from app.engine.testing.runner import default_tests
from app.extensions import db
from app.http.auth import authorize, can, current_actor, page_permission, resolve_org
from app.http.htmx import is_htmx
from app.models import Conversation
from app.services import access
from app.services import conversations as service
from app.services.errors import Conflict, DomainError, ValidationFailed

from .routes import caller, load_conversation, run_chat

bp = Blueprint("conversation_pages", __name__)
LIST_LIMIT = 50


def _conversation_list(org):
    query = access.visible_conversations(org, **caller()).order_by(Conversation.updated_at.desc(), Conversation.id)
    return list(db.session.scalars(query.limit(LIST_LIMIT)))


def _can_edit(conversation) -> bool:
    if not can("conversations:write"):
        return False
    return access.conversation_access(conversation, **caller()) == "edit"


def _recipe_context(conversation, *, text: str | None = None, errors: dict | None = None, saved: bool = False) -> dict:
    version = service.current_version(conversation)
    return {"conversation": conversation, "version": version, "recipe": version.recipe,
            "default_checks": default_tests(version.recipe, None, version.recipe.get("format", "iso")),
            "recipe_yaml": text if text is not None else dump_yaml(version.recipe),
            "recipe_errors": errors or {}, "saved": saved, "can_edit": _can_edit(conversation)}


def _page_context(conversation, **overrides) -> dict:
    org, role = resolve_org()
    context = {
        "org": org, "role": role, "conversations": _conversation_list(org), "conversation": conversation,
        "messages": service.messages_of(conversation), "version_numbers": service.version_numbers_by_message(conversation),
        "versions": service.versions_of(conversation),
        "message_text": "", "message_error": None,
    }
    context.update(_recipe_context(conversation))
    context.update(overrides)
    return context


@bp.route("/chat", methods=["GET"])
@page_permission("conversations:read")
def index():
    org, role = resolve_org()
    return render_template("conversations/index.html", org=org, role=role, conversations=_conversation_list(org),
                           conversation=None, message_text="", message_error=None,
                           can_start=can("conversations:write"))


@bp.route("/chat", methods=["POST"])
@page_permission("conversations:write")
def start():
    """The no-JS path of the first message: a new conversation named from it."""
    text = request.form.get("message", "")
    try:
        result = run_chat(None, text)
    except ValidationFailed as exc:
        db.session.rollback()
        org, role = resolve_org()
        return render_template("conversations/index.html", org=org, role=role,
                               conversations=_conversation_list(org), conversation=None, message_text=text,
                               message_error=exc.message, can_start=True), 400
    return redirect(url_for("conversation_pages.detail", conversation_id=result.conversation.id))


@bp.route("/chat/new", methods=["POST"])
@page_permission("conversations:write")
def new():
    org, _ = authorize("conversations:write")
    conversation = service.create_conversation(current_actor(), org, request.form.get("name") or "New conversation")
    db.session.commit()
    return redirect(url_for("conversation_pages.detail", conversation_id=conversation.id))


@bp.route("/chat/<conversation_id>")
@page_permission("conversations:read")
def detail(conversation_id):
    conversation = load_conversation(conversation_id)
    return render_template("conversations/detail.html", **_page_context(conversation))


@bp.route("/chat/<conversation_id>/messages", methods=["POST"])
@page_permission("conversations:write")
def send(conversation_id):
    """The no-JS path of the message form (chat.js streams instead): same service, then the page again."""
    text = request.form.get("message", "")
    try:
        run_chat(conversation_id, text)
    except (ValidationFailed, Conflict) as exc:
        db.session.rollback()
        conversation = load_conversation(conversation_id)
        return render_template("conversations/detail.html",
                               **_page_context(conversation, message_text=text, message_error=exc.message)), exc.status
    return redirect(url_for("conversation_pages.detail", conversation_id=conversation_id) + "#chat-form")


@bp.route("/chat/<conversation_id>/thread")
@page_permission("conversations:read")
def thread(conversation_id):
    conversation = load_conversation(conversation_id)
    return render_template("conversations/_thread.html", conversation=conversation,
                           messages=service.messages_of(conversation),
                           version_numbers=service.version_numbers_by_message(conversation))


@bp.route("/chat/<conversation_id>/recipe")
@page_permission("conversations:read")
def recipe(conversation_id):
    """The recipe panel (htmx); a browser gets the conversation page at the panel."""
    conversation = load_conversation(conversation_id)
    if not is_htmx():
        return redirect(url_for("conversation_pages.detail", conversation_id=conversation_id) + "#recipe-panel")
    return render_template("conversations/_recipe.html", **_recipe_context(conversation))


@bp.route("/chat/<conversation_id>/recipe", methods=["POST"])
@page_permission("conversations:write")
def save_recipe(conversation_id):
    """Save the YAML editor (validated, a new version) and answer the panel again."""
    conversation = load_conversation(conversation_id, need="edit")
    text = request.form.get("yaml", "")
    try:
        _, changed = service.edit_recipe(current_actor(), conversation, text)
        db.session.commit()
    except ValidationFailed as exc:
        db.session.rollback()
        conversation = load_conversation(conversation_id, need="edit")
        context = _recipe_context(conversation, text=text, errors=exc.details or {"yaml": [exc.message]})
        if is_htmx():
            # The panel owns the editor: it comes back with its errors inline, under the real status.
            return render_template("conversations/_recipe.html", **context), 400
        context.pop("conversation")
        return render_template("conversations/detail.html", **_page_context(conversation, **context)), 400
    if is_htmx():
        response = current_app.make_response(render_template("conversations/_recipe.html",
                                                              **_recipe_context(conversation, saved=True)))
        if changed:
            response.headers["HX-Trigger"] = "recipe-changed"
        return response
    return redirect(url_for("conversation_pages.detail", conversation_id=conversation_id) + "#recipe-panel")


@bp.route("/chat/<conversation_id>/versions")
@page_permission("conversations:read")
def versions(conversation_id):
    conversation = load_conversation(conversation_id)
    return render_template("conversations/_versions.html", conversation=conversation,
                           versions=service.versions_of(conversation))


@bp.route("/chat/<conversation_id>/versions/<int:number>/diff")
@page_permission("conversations:read")
def diff(conversation_id, number):
    """Version n against n-1 (or any pair with ?from=); a fragment for htmx, a page otherwise."""
    conversation = load_conversation(conversation_id)
    other = request.args.get("from", type=int) or max(number - 1, 1)
    result = service.diff_versions(conversation, other, number)
    if is_htmx():
        return render_template("conversations/_diff.html", conversation=conversation, diff=result)
    return render_template("conversations/diff.html", conversation=conversation, diff=result)


@bp.route("/chat/<conversation_id>/rename", methods=["POST"])
@page_permission("conversations:write")
def rename(conversation_id):
    conversation = load_conversation(conversation_id, need="edit")
    try:
        service.rename_conversation(current_actor(), conversation, request.form.get("name", ""))
        db.session.commit()
    except DomainError:
        db.session.rollback()
        raise
    return redirect(url_for("conversation_pages.detail", conversation_id=conversation_id))


@bp.route("/chat/<conversation_id>/delete", methods=["POST"])
@page_permission("conversations:write")
def delete(conversation_id):
    conversation = load_conversation(conversation_id, need="edit")
    service.delete_conversation(current_actor(), conversation)
    db.session.commit()
    return redirect(url_for("conversation_pages.index"))


page_blueprints = [bp]
