"""One error shape for the API (API.md), HTML pages for browsers, a fragment for htmx."""
from __future__ import annotations

import logging
import time

from flask import current_app, g, jsonify, render_template, request
from redis import exceptions as redis_errors
from werkzeug.exceptions import HTTPException

from app.extensions import db
from app.http.htmx import error_fragment, is_htmx
from app.services.errors import DomainError

log = logging.getLogger("kiln.http")

HTTP_CODES = {
    400: "VALIDATION_ERROR",
    401: "UNAUTHORIZED",
    402: "QUOTA_EXCEEDED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    413: "VALIDATION_ERROR",
    415: "VALIDATION_ERROR",
    422: "VALIDATION_ERROR",
    429: "RATE_LIMITED",
    501: "NOT_CONFIGURED",
    503: "SERVICE_UNAVAILABLE",
}


def wants_json() -> bool:
    # /metrics is read by Prometheus, not a person: its refusals are the API's envelope too.
    return request.path in ("/api", "/metrics") or request.path.startswith("/api/")


def trace_id() -> str:
    return getattr(g, "trace_id", "") or ""


def error_response(status: int, code: str, message: str, details: dict | None = None, headers: dict | None = None):
    body = {"error": {"code": code, "message": message, "details": details or {}, "traceId": trace_id()}}
    resp = jsonify(body)
    resp.status_code = status
    for k, v in (headers or {}).items():
        resp.headers[k] = v
    return resp


def flatten_validation(messages, prefix: str = "") -> dict[str, list[str]]:
    """webargs nests errors by location and field; clients want `field.sub[2]: [messages]`."""
    out: dict[str, list[str]] = {}
    if isinstance(messages, dict):
        for key, value in messages.items():
            if isinstance(key, int):
                name = f"{prefix}[{key}]"
            else:
                name = f"{prefix}.{key}" if prefix else str(key)
            out.update(flatten_validation(value, name))
    elif isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        out[prefix or "_schema"] = messages
    elif isinstance(messages, list):
        for i, value in enumerate(messages):
            out.update(flatten_validation(value, f"{prefix}[{i}]"))
    else:
        out[prefix or "_schema"] = [str(messages)]
    return out


def _validation_details(data) -> dict:
    messages = data.get("messages") or data.get("errors") or {}
    # Drop the webargs location level (json/query/headers): the field names are what matter.
    if isinstance(messages, dict) and set(messages) <= {"json", "query", "querystring", "headers", "form", "files", "view_args"}:
        merged = {}
        for loc_msgs in messages.values():
            merged.update(flatten_validation(loc_msgs))
        return merged
    return flatten_validation(messages)


def _summary(details: dict) -> str:
    if not details:
        return "The request is not valid"
    parts = []
    for field, msgs in list(details.items())[:5]:
        label = "body" if field == "_schema" else field
        parts.append(f"{label}: {msgs[0] if msgs else 'invalid'}")
    return "Invalid request: " + "; ".join(parts)


def api_http_exception(error: HTTPException):
    data = getattr(error, "data", None) or {}
    headers = dict(data.get("headers") or {})
    if error.code in (400, 422) and ("messages" in data or "errors" in data):
        details = _validation_details(data)
        return error_response(400, "VALIDATION_ERROR", _summary(details), details, headers)
    code = HTTP_CODES.get(error.code or 500, "SERVER_ERROR" if (error.code or 500) >= 500 else "ERROR")
    message = data.get("message") or error.description or error.name
    if error.code == 404 and message == HTTPException.description:
        message = "Not found"
    if error.code == 404 and not data.get("message"):
        message = f"No resource at {request.path}"
    if error.code == 405:
        message = f"Method {request.method} is not allowed on {request.path}"
    if error.code == 413:
        message = body_too_large_message()
        data = {"details": {"body": [message]}}
    if error.code == 429:
        retry = getattr(error, "retry_after", None) or _retry_after_from_limit(error)
        if retry:
            headers["Retry-After"] = str(retry)
        message = f"Too many requests: limit {getattr(error, 'description', '')}".strip()
    if error.code == 400 and isinstance(message, str) and "CSRF" in message:
        return error_response(400, "VALIDATION_ERROR", message, {"csrfToken": [message]}, headers)
    return error_response(error.code or 500, code, message, data.get("details"), headers)


def _retry_after_from_limit(error) -> int | None:
    # Flask-Limiter keeps the breached limit of this request; its reset time gives Retry-After.
    from app.extensions import limiter

    current = limiter.current_limit
    if current is None:
        return None
    return max(1, int(current.reset_at - time.time()))


def page_error(status: int, title: str, message: str):
    if is_htmx():
        return error_fragment(status, title, message)
    return render_template("errors/error.html", status=status, title=title, message=message), status


def body_too_large_message() -> str:
    limit = current_app.config.get("MAX_CONTENT_LENGTH")
    if limit:
        return f"The request body is larger than the limit of {limit // 1024} KiB"
    return "The request body is too large"


def handle_http_exception(error: HTTPException):
    if wants_json():
        return api_http_exception(error)
    if error.code == 413:
        return page_error(413, "Too much data", body_too_large_message() + "; send less and try again.")
    if error.code == 429:
        return page_error(429, "Too many requests", "Please wait a moment and try again.")
    return page_error(error.code or 500, error.name, error.description or "")


def handle_domain_error(error: DomainError):
    # A refused request keeps nothing it flushed, and lets go of its locks (a quota check's org row lock).
    db.session.rollback()
    headers = {}
    if getattr(error, "retry_after", None):
        headers["Retry-After"] = str(error.retry_after)
    if wants_json():
        return error_response(error.status, error.code, error.message, error.details, headers)
    resp = page_error(error.status, error.code.replace("_", " ").title(), error.message)
    return resp


def handle_redis_down(error: Exception):
    """Redis (tokens, rate limits, queues) is unreachable: a clean 503 the client may retry, not a crash."""
    log.warning("redis unreachable (trace %s): %s", trace_id(), error)
    message = "Kiln cannot reach its Redis service right now; try again shortly"
    if wants_json():
        return error_response(503, "SERVICE_UNAVAILABLE", message, {"redis": ["unreachable"]}, {"Retry-After": "5"})
    return page_error(503, "Service unavailable", message)


def handle_unexpected(error: Exception):
    if isinstance(error, HTTPException):
        return handle_http_exception(error)
    log.exception("unhandled error (trace %s)", trace_id())
    if wants_json():
        return error_response(500, "SERVER_ERROR", "Internal server error; quote the traceId when reporting it")
    return page_error(500, "Something went wrong", f"Quote this reference when reporting it: {trace_id()}")


def register_error_handlers(app):
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(DomainError, handle_domain_error)
    app.register_error_handler(redis_errors.ConnectionError, handle_redis_down)
    app.register_error_handler(redis_errors.TimeoutError, handle_redis_down)
    app.register_error_handler(Exception, handle_unexpected)

