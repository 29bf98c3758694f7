"""The API blueprint: flask-smorest's, with Kiln's error responses documented on every operation."""
from __future__ import annotations

from flask_smorest import Blueprint

from app.http.schemas import ErrorEnvelopeSchema


class ApiBlueprint(Blueprint):
    def __init__(self, name: str, import_name: str, url_prefix: str, **kwargs):
        kwargs.setdefault("description", name.replace("_", " ").title())
        super().__init__(name, import_name, url_prefix=url_prefix, **kwargs)

    def response(self, status_code, schema=None, *, errors: tuple[int, ...] = (), **kwargs):
        """flask-smorest's response, plus the error envelope for each status in `errors`: one line per
        operation says both what it answers and how it fails."""
        documented = super().response(status_code, schema, **kwargs)

        def decorator(fn):
            return documented(self.doc_errors(*errors)(fn))

        return decorator

    def doc_errors(self, *codes: int):
        """Document the envelope for the error statuses a view can answer."""
        def decorator(fn):
            for code in codes:
                fn = self.alt_response(code, schema=ErrorEnvelopeSchema, description="Error envelope")(fn)
            return fn

        return decorator
