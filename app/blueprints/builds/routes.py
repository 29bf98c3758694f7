"""Builds API (API.md, Builds): lifecycle, status, logs, artifacts and downloads, tests."""
from __future__ import annotations

import base64
import functools

from flask import Response, current_app, g, redirect, request, send_file, stream_with_context
from werkzeug.exceptions import RequestedRangeNotSatisfiable

from app.extensions import db, limiter, rate_limit_key
from app.http.auth import authorize, current_actor, permission_required, resolve_org
from app.http.blueprint import ApiBlueprint
from app.http.errors import error_response
from app.http.pagination import page_of
from app.services.builds import files, lifecycle, logs, reads
from app.services.errors import DomainError, NotFound

from .schemas import (ArtifactListSchema, BuildCreateSchema, BuildDetailSchema, BuildLogsSchema, BuildPageSchema,
                      BuildQueryArgs, BuildStatusSchema, LogQueryArgs, TestRequestSchema, TestRunQueuedSchema,
                      TestSummarySchema)

blp = ApiBlueprint("builds", __name__, url_prefix="/api/builds", description="Image builds")


def _org_key() -> str:
    """Build starts are metered per organization, whoever starts them."""
    try:
        org, _ = resolve_org()
        return f"org:{org.id}"
    except DomainError:
        return rate_limit_key()


def _started(response) -> bool:
    return response.status_code < 400 and bool(g.get("build_started"))


# create / start / retry share one bucket per org (KILN_BUILD_START_LIMIT, default 10 per hour).
build_start_limit = limiter.shared_limit(lambda: current_app.config["KILN_BUILD_START_LIMIT"], scope="build-start",
                                         key_func=_org_key, deduct_when=_started, override_defaults=False)


def build_view(rule: str, method: str = "GET", *, need: str = "view", status: int = 200, schema=None,
               description: str | None = None, errors: tuple[int, ...] = (), arguments=None, location: str = "json",
               limited: bool = False, answers=None):
    """The stack every /api/builds/<build_id>... view shares: the route, its documented answer and errors, the
    permission, the org's start limit where it applies, and the build loaded for the caller (a read never
    changes it: the workers' reaper does that). The view gets `org`, `role` and `build` by keyword; `answers`
    documents what else the 200 may carry (a file, text)."""
    permission = "builds:write" if need == "edit" else "builds:read"

    def decorator(view):
        @functools.wraps(view)
        def load_build(*args, build_id, **kwargs):
            org, role = authorize(permission)
            build = reads.get_build(org, build_id, actor=current_actor(), role=role, need=need)
            return view(*args, org=org, role=role, build=build, **kwargs)

        fn = permission_required(permission)(load_build)
        if limited:
            fn = build_start_limit(fn)
        fn = blp.doc_errors(*sorted({403, 404, *errors}))(fn)
        fn = blp.response(status, schema, description=description)(fn)
        if answers is not None:
            fn = answers(fn)
        if arguments is not None:
            fn = blp.arguments(arguments, location=location)(fn)
        return blp.route(rule, methods=[method])(fn)

    return decorator


@blp.route("", methods=["POST"])
@blp.arguments(BuildCreateSchema)
@blp.response(201, BuildDetailSchema, description="The new build (queued unless start is false)",
              errors=(400, 403, 404, 409, 429))
@build_start_limit
@permission_required("builds:write")
def create_build(data):
    """Build a conversation's current recipe version, or an inline recipe."""
    org, role = resolve_org()
    build = lifecycle.create_build(current_actor(), org, role, conversation_id=data["conversation_id"],
                                   recipe=data["recipe"], fmt=data["format"], start=data["start"],
                                   lock_from=data["lock_from"])
    db.session.commit()
    g.build_started = build.status == "queued"
    return build, 201


@blp.route("", methods=["GET"])
@blp.arguments(BuildQueryArgs, location="query")
@blp.response(200, BuildPageSchema, description="A page of builds", errors=(400, 403))
@permission_required("builds:read")
def list_builds(args):
    """The org's builds (those in conversations the caller can see), filtered, sorted, paginated."""
    org, role = resolve_org()
    query = reads.list_builds(org, actor=current_actor(), role=role, status=args["status"],
                              conversation_id=args["conversation_id"], sort_by=args["sort_by"],
                              sort_order=args["sort_order"])
    return page_of("builds", query, args)


@build_view("/<build_id>", schema=BuildDetailSchema, description="The build with its stages and artifacts")
def build_detail(*, build, **_):
    return build


@build_view("/<build_id>", "DELETE", need="edit", status=204, errors=(409,))
def delete_build(*, org, build, **_):
    """Delete a finished build and its files (409 while it is pending, queued or running)."""
    lifecycle.delete_build(current_actor(), org, build)
    db.session.commit()
    return None


@build_view("/<build_id>/status", schema=BuildStatusSchema, description="Status, step and estimated completion")
def build_status(*, build, **_):
    return reads.build_status(build)


@build_view("/<build_id>/start", "POST", need="edit", schema=BuildDetailSchema, description="The build, now queued",
            errors=(409, 429), limited=True)
def start_build(*, org, build, **_):
    lifecycle.start_build(current_actor(), org, build)
    db.session.commit()
    g.build_started = True
    return build


@build_view("/<build_id>/cancel", "POST", need="edit", schema=BuildDetailSchema,
            description="The build, now cancelled", errors=(409,))
def cancel_build(*, org, build, **_):
    """Cancel a queued or running build; a finished one answers 409."""
    lifecycle.cancel_build(current_actor(), org, build)
    db.session.commit()
    return build


@build_view("/<build_id>/retry", "POST", need="edit", status=201, schema=BuildDetailSchema,
            description="A new build of the same recipe version", errors=(409, 429), limited=True)
def retry_build(*, org, role, build):
    new = lifecycle.retry_build(current_actor(), org, role, build)
    db.session.commit()
    g.build_started = new.status == "queued"
    return new, 201


@build_view("/<build_id>/logs", schema=BuildLogsSchema, arguments=LogQueryArgs, location="query",
            description="Log lines after the cursor: JSON, or text/plain (one line each) with ?format=text or an "
                        "Accept that prefers it",
            answers=blp.alt_response(200, success=True, content_type="text/plain", schema={"type": "string"},
                                     headers={"X-Next-After": {"schema": {"type": "integer"}, "description":
                                              "text/plain only: the cursor for the next request (?after=)"}}))
def build_logs(args, *, build, **_):
    page = reads.log_page(build, args["after"], args["limit"])
    wants_text = args["format"] == "text" or (
        args["format"] is None
        and request.accept_mimetypes.best_match(["application/json", "text/plain"]) == "text/plain"
        and request.accept_mimetypes["text/plain"] > request.accept_mimetypes["application/json"])
    if wants_text:
        text = "".join(logs.as_text(line) + "\n" for line in page.lines)
        resp = Response(text, mimetype="text/plain")
        resp.headers["X-Next-After"] = str(page.next_after)
        return resp
    return page


@build_view("/<build_id>/artifacts", schema=ArtifactListSchema, description="The build's files with sizes and sha256")
def build_artifacts(*, build, **_):
    return build


def _send(artifact):
    """Stream the file (never loaded into memory) with Range support and checksum headers: from this host's disk
    with the local store, else from the shared store, or a redirect to a short-lived presigned URL when
    KILN_STORAGE_REDIRECT asks for one."""
    store = files.store()
    if not store.shared:
        path = files.artifact_file(artifact)
        if not path.is_file():
            raise NotFound(f"The file of artifact '{artifact.filename}' is gone")
        try:
            resp = send_file(path, as_attachment=True, download_name=artifact.filename, conditional=True,
                             etag=artifact.sha256, max_age=0, mimetype=_mimetype(artifact))
        except RequestedRangeNotSatisfiable:
            return _unsatisfiable(artifact, path.stat().st_size)
    elif current_app.config["KILN_STORAGE_REDIRECT"]:
        url = store.presigned_url(artifact.path, artifact.filename, _mimetype(artifact),
                                  current_app.config["KILN_STORAGE_REDIRECT_SECONDS"])
        resp = redirect(url, 302)
        resp.headers["Cache-Control"] = "no-store"
    else:
        resp = _stream_from_store(store, artifact)
        if not isinstance(resp, Response) or resp.status_code == 416:
            return resp
    resp.headers["X-Checksum-SHA256"] = artifact.sha256
    resp.headers["Digest"] = "sha-256=" + base64.b64encode(bytes.fromhex(artifact.sha256)).decode()
    resp.headers["Accept-Ranges"] = "bytes"
    return resp


def _unsatisfiable(artifact, size: int):
    return error_response(416, "RANGE_NOT_SATISFIABLE", f"The requested range is outside the file "
                          f"({artifact.size} bytes)", {"range": [request.headers.get("Range", "")]},
                          {"Content-Range": f"bytes */{size}", "Accept-Ranges": "bytes"})


def _stream_from_store(store, artifact):
    """What send_file does for a local file, for an object in the store: ETag/If-None-Match, one byte range."""
    size = store.size(artifact.path)
    if size is None:
        raise NotFound(f"The file of artifact '{artifact.filename}' is gone from the store")
    headers = {"ETag": f'"{artifact.sha256}"', "Cache-Control": "no-cache"}
    if request.if_none_match.contains(artifact.sha256):
        return Response(status=304, headers=headers)
    start, end, status = 0, size - 1, 200
    if "Range" in request.headers and request.if_range.etag in (None, artifact.sha256) and not request.if_range.date:
        bounds = request.range.range_for_length(size) if request.range is not None else None
        if bounds is None or size == 0:
            return _unsatisfiable(artifact, size)
        start, end, status = bounds[0], bounds[1] - 1, 206
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    body = store.iter_range(artifact.path, start, end) if size else iter(())
    resp = Response(stream_with_context(body), status=status, mimetype=_mimetype(artifact), headers=headers,
                    direct_passthrough=True)
    resp.headers["Content-Length"] = str(end - start + 1 if size else 0)
    resp.headers["Content-Disposition"] = f'attachment; filename="{artifact.filename}"'
    return resp


# Downloads are files, not JSON: documented by media type and headers; the body is the file (or a byte range).
FILE_HEADERS = {
    "Content-Disposition": {"description": "attachment; filename=...", "schema": {"type": "string"}},
    "X-Checksum-SHA256": {"description": "sha256 of the whole file, hex", "schema": {"type": "string"}},
    "Digest": {"description": "sha-256=<base64> of the whole file", "schema": {"type": "string"}},
    "Accept-Ranges": {"description": "bytes", "schema": {"type": "string"}},
    "ETag": {"description": "The sha256; If-None-Match answers 304", "schema": {"type": "string"}},
}


def _documented_file(*media_types: str):
    """The 200 (whole file) and 206 (Range) answers of a download, with the media types it can carry."""
    binary = {"type": "string", "format": "binary"}

    def decorator(fn):
        for media_type in media_types:
            fn = blp.alt_response(200, success=True, content_type=media_type, schema=binary, headers=FILE_HEADERS)(fn)
            fn = blp.alt_response(206, success=True, content_type=media_type, schema=binary,
                                  description="The requested byte range (Range: bytes=...)",
                                  headers={**FILE_HEADERS, "Content-Range": {"schema": {"type": "string"}}})(fn)
        return fn

    return decorator


def _mimetype(artifact) -> str:
    return {"iso": "application/x-iso9660-image", "log": "text/plain", "manifest": "application/json",
            "sbom": "application/json", "checksums": "text/plain"}.get(artifact.kind, "application/octet-stream")


@build_view("/<build_id>/download", description="The primary image (Range requests supported)", errors=(416,),
            answers=_documented_file("application/x-iso9660-image", "application/octet-stream"))
def build_download(*, build, **_):
    artifact = build.primary_artifact()
    if artifact is None:
        raise NotFound(f"Build #{build.number} has no {build.primary_format} image"
                       + ("" if build.is_terminal else " yet"))
    return _send(artifact)


@build_view("/<build_id>/artifacts/<artifact_id>/download", description="One artifact file (Range requests supported)",
            errors=(416,), answers=_documented_file("application/x-iso9660-image", "application/octet-stream",
                                                    "application/json", "text/plain"))
def artifact_download(artifact_id, *, build, **_):
    artifact = next((a for a in build.artifacts if str(a.id) == str(artifact_id).lower()), None)
    if artifact is None:
        raise NotFound.of("Artifact", artifact_id)
    return _send(artifact)


@build_view("/<build_id>/tests", schema=TestSummarySchema, description="The latest test run's results, and every run")
def build_tests(*, build, **_):
    return reads.test_summary(build)


@build_view("/<build_id>/tests", "POST", need="edit", status=202, schema=TestRunQueuedSchema, arguments=TestRequestSchema,
            description="The test run is queued", errors=(400, 409))
def request_tests(data, *, org, build, **_):
    """Run custom assertions against a finished bootable build, on a worker."""
    run = lifecycle.request_tests(current_actor(), org, build, data["assertions"])
    db.session.commit()
    return run, 202


api_blueprints = [blp]

from .streams import stream_blp  # noqa: E402 - the stream views import helpers from this module

page_blueprints = [stream_blp]
