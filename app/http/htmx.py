"""The htmx conventions: one way to tell an htmx request, one way to answer a refused one.

htmx 2 does not swap 4xx/5xx answers by default; base.html's `responseHandling` config tells it to swap
them (still firing htmx:responseError). A refused change therefore answers its real status with either
the partial that owns the form (its errors inline), or, when no partial fits, the error fragment
retargeted at the page's #error-region by `htmx_error`.
"""
from __future__ import annotations

from flask import flash, make_response, redirect, render_template, request

ERROR_REGION = "#error-region"


def is_htmx() -> bool:
    """An htmx request that wants a fragment. History restores (Back after hx-push-url) want the whole page."""
    return bool(request.headers.get("HX-Request")) and not request.headers.get("HX-History-Restore-Request")


def htmx_error(html: str, status: int, target: str = ERROR_REGION, swap: str = "innerHTML"):
    """A refused htmx request: the real status, the body swapped into `target` instead of the request's own."""
    response = make_response(html, status)
    response.headers["HX-Retarget"] = target
    response.headers["HX-Reswap"] = swap
    return response


def error_fragment(status: int, title: str, message: str):
    return htmx_error(render_template("errors/_error.html", status=status, title=title, message=message), status)


def refused_form(exc, partial: str, context, back: str):
    """A form post the service refused with `exc` (a DomainError; the caller has rolled back): htmx gets
    `partial` rendered with `context(error=...)` under the real status, a browser goes `back` with the
    message flashed."""
    if is_htmx():
        return render_template(partial, **context(error=exc.message)), exc.status
    flash(exc.message, "error")
    return redirect(back)
