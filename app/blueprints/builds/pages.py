"""Build pages (htmx): the list with a status filter, and a build's page with live progress and log.

Thin views over app.services.builds: every change goes through the same service functions as the API.
The build page's parts are partials that each own one element id; `/builds/<id>` answers htmx with the
progress partial (the element it polls from), plus out-of-band copies of the other parts once the build
has finished, so the page settles into its final state without a reload.
"""
from __future__ import annotations

import functools

from flask import Blueprint, Response, current_app, flash, g, redirect, render_template, request, url_for

from app.extensions import db
from app.http.auth import authorize, can, current_actor, page_permission
from app.http.htmx import htmx_error, is_htmx
from app.http.pagination import paginate
from app.models import Build, Conversation, RecipeVersion, User
from app.models.builds import BUILD_STATUSES
from app.services import charts, dashboard
from app.services.builds import lifecycle, reads
from app.services.builds import views as build_views
from app.services.errors import DomainError, QuotaExceeded, ValidationFailed

from .routes import build_start_limit
from .schemas import whole_number

bp = Blueprint("build_pages", __name__)

PAGE_SIZE = 20
LOG_LINES_ON_PAGE = 2000


def _org_and_role(permission: str = "builds:read"):
    return authorize(permission)


@bp.route("/builds")
@page_permission()
def index():
    org, role = _org_and_role()
    status = request.args.get("status") or None
    if status is not None and status not in BUILD_STATUSES:
        raise ValidationFailed(f"status: '{status}' is not a build status; choose from {', '.join(BUILD_STATUSES)}",
                               {"status": [f"Must be one of: {', '.join(BUILD_STATUSES)}."]})
    page = whole_number("page", request.args.get("page"), minimum=1, default=1)
    actor = current_actor()
    rows, total = paginate(reads.list_builds(org, actor=actor, role=role, status=[status] if status else None),
                           page, PAGE_SIZE)
    org_total = total
    if status and not rows:
        _all, org_total = paginate(reads.list_builds(org, actor=actor, role=role), 1, 1)
    context = {
        "org": org, "status": status, "statuses": BUILD_STATUSES, "page": page, "total": total,
        "pages": max(1, -(-total // PAGE_SIZE)), "has_more": page * PAGE_SIZE < total, "org_total": org_total,
        "builds": [build_views.list_row(b) for b in rows],
    }
    if is_htmx():
        return render_template("builds/_table.html", **context)
    return render_template("builds/index.html", trends=dashboard.recipe_durations(org, actor=actor, role=role),
                           **context)


def _load(build_id, need: str = "view"):
    org, role = _org_and_role("builds:write" if need == "edit" else "builds:read")
    build = reads.get_build(org, build_id, actor=current_actor(), role=role, need=need)
    return org, role, build


def _can_write(org, build, role: str) -> bool:
    """Whether to show the buttons: the same check the actions make (role, then conversation edit access)."""
    if not can("builds:write"):
        return False
    try:
        reads.get_build(org, build.id, actor=current_actor(), role=role, need="edit")
    except DomainError:
        return False
    return True


def _context(org, build, role: str, *, with_log: bool = False) -> dict:
    context = {
        "build": build,
        "running": build_views.is_running(build.status),
        "can_write": _can_write(org, build, role),
        "progress": {**build_views.progress_view(build), "stages": build_views.stage_timeline(build)},
        "timeline": charts.stage_rows(build),
        "failure": build_views.failure_view(build),
        "attempt_notes": build_views.attempt_notes(build),
        "artifacts": build_views.artifact_rows(
            build, lambda a: url_for("builds.artifact_download", build_id=build.id, artifact_id=a.id)),
        "test_runs": build_views.test_run_rows(build),
        "summary": _summary(build),
        "reproducibility": reads.reproducibility(build) if build.status == "succeeded" else None,
    }
    if with_log:
        log = build_views.log_view(build, LOG_LINES_ON_PAGE)
        log.update(live=not build.is_terminal,
                   stream_url=url_for("build_streams.build_events", build_id=build.id),
                   poll_url=url_for("builds.build_logs", build_id=build.id),
                   download_url=_log_download_url(build))
        context["log"] = log
    return context


def _log_download_url(build) -> str:
    """The archived build.log once the build ended (every line, sha256 on record); while it runs, the text
    view of the lines so far (the API serves at most 10000 lines per request)."""
    archived = next((a for a in build.artifacts if a.kind == "log"), None)
    if archived is not None:
        return url_for("builds.artifact_download", build_id=build.id, artifact_id=archived.id)
    return url_for("builds.build_logs", build_id=build.id, format="text", limit=10000)


def _summary(build) -> dict:
    version = db.session.get(RecipeVersion, build.recipe_version_id) if build.recipe_version_id else None
    conversation = db.session.get(Conversation, build.conversation_id) if build.conversation_id else None
    creator = db.session.get(User, build.created_by_id) if build.created_by_id else None
    retried_from = db.session.get(Build, build.retried_from_id) if build.retried_from_id else None
    conversation_url = None
    if conversation is not None and conversation.deleted_at is None:
        if "conversation_pages.detail" in current_app.view_functions:
            conversation_url = url_for("conversation_pages.detail", conversation_id=conversation.id)
    return {
        "title": build_views.build_title(build),
        "conversation_name": conversation.name if conversation is not None else None,
        "conversation_url": conversation_url,
        "recipe_version": version.number if version is not None else None,
        "formats": ", ".join(build.formats or []),
        "created_by": creator.name if creator is not None else None,
        "attempt": build.attempt,
        "worker": build.worker_name,
        "retried_from_url": url_for("build_pages.detail", build_id=retried_from.id) if retried_from else None,
        "retried_from_number": retried_from.number if retried_from else None,
    }


_OOB_PARTS = ("builds/_actions.html", "builds/_failure.html", "builds/_artifacts.html", "builds/_tests.html")


def _live_fragment(org, build, role: str, *, refresh_all: bool = False, notice: str | None = None):
    """The progress partial; once the build is over (or an action changed it) the other parts ride along
    out of band, so everything that depends on the status is current."""
    context = _context(org, build, role)
    html = render_template("builds/_progress.html", **context)
    if refresh_all or build.is_terminal:
        for template in _OOB_PARTS:
            html += render_template(template, oob=True, **context)
    if notice is not None:
        html += render_template("builds/_notice.html", oob=True, notice=notice, notice_kind="success")
    return Response(html, mimetype="text/html")


@bp.route("/builds/<build_id>")
@page_permission()
def detail(build_id):
    org, role, build = _load(build_id)
    if is_htmx():
        return _live_fragment(org, build, role)
    return render_template("builds/detail.html", notice=None, **_context(org, build, role, with_log=True))


def _after_action(org, build, role: str, message: str):
    if is_htmx():
        return _live_fragment(org, build, role, refresh_all=True, notice=message)
    flash(message, "success")
    return redirect(url_for("build_pages.detail", build_id=build.id), 303)


def _action_failed(build_id, error: DomainError):
    """A refused action is a message on the build's page, not a separate error page."""
    db.session.rollback()
    kind = "quota" if isinstance(error, QuotaExceeded) else "error"  # a plan limit: with the way to the plans
    if is_htmx():
        return htmx_error(render_template("builds/_notice.html", notice=error.message, notice_kind=kind),
                          error.status, target="#build-notice", swap="outerHTML")
    flash(error.message, kind)
    return redirect(url_for("build_pages.detail", build_id=build_id), 303)


def build_action(action: str, *, limited: bool = False):
    """POST /builds/<id>/<action> from the build's page: the build loaded for a change, the view's service
    call committed, and a refused change shown as a message where the button is (not an error page)."""
    def decorator(view):
        @functools.wraps(view)
        def act(build_id):
            org, role, build = _load(build_id, "edit")
            try:
                response = view(org, role, build)
                db.session.commit()
            except DomainError as error:
                return _action_failed(build.id, error)
            return response

        fn = build_start_limit(act) if limited else act
        return bp.route(f"/builds/<build_id>/{action}", methods=["POST"], endpoint=action)(page_permission()(fn))

    return decorator


@build_action("cancel")
def cancel(org, role, build):
    lifecycle.cancel_build(current_actor(), org, build)
    return _after_action(org, build, role, f"Build #{build.number} is cancelled.")


@build_action("start", limited=True)
def start(org, role, build):
    lifecycle.start_build(current_actor(), org, build)
    g.build_started = True  # counts against the org's build starts (shared with the API)
    return _after_action(org, build, role, f"Build #{build.number} is queued.")


@build_action("retry", limited=True)
def retry(org, role, build):
    new = lifecycle.retry_build(current_actor(), org, role, build)
    g.build_started = new.status == "queued"
    target = url_for("build_pages.detail", build_id=new.id)
    flash(f"Build #{new.number} retries build #{build.number}.", "success")
    if is_htmx():
        return Response(status=204, headers={"HX-Redirect": target})
    return redirect(target, 303)


@bp.errorhandler(429)
def _too_many_starts(error):
    """The org used up its build starts (shared with the API): say so where the button is."""
    from app.http.errors import handle_http_exception

    build_id = (request.view_args or {}).get("build_id")
    if request.method != "POST" or build_id is None:
        return handle_http_exception(error)
    limit = current_app.config["KILN_BUILD_START_LIMIT"]
    message = f"This organization has reached its limit of build starts ({limit}); try again later."
    resp = _action_failed(build_id, _RateLimitedMessage(message))
    retry_after = getattr(error, "retry_after", None)
    if retry_after:
        resp.headers["Retry-After"] = str(retry_after)
    return resp


class _RateLimitedMessage(DomainError):
    code, status = "RATE_LIMITED", 429


page_blueprints = [bp]
