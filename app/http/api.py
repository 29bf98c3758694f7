"""flask-smorest's Api, answering every error in Kiln's envelope (API.md) instead of its own shape."""
from __future__ import annotations

from flask_smorest import Api


class KilnApi(Api):
    def _register_error_handlers(self):
        # Error handlers are registered app-wide by app.http.errors so pages keep HTML errors.
        pass
