"""Feature blueprints. API blueprints go through flask-smorest (OpenAPI); page blueprints are plain Flask."""
from __future__ import annotations

import importlib

# Each feature module exposes `api_blueprints` and/or `page_blueprints` lists.
FEATURES = [
    "app.blueprints.health.routes",
    "app.blueprints.docs.routes",
    "app.blueprints.accounts.routes",
    "app.blueprints.accounts.pages",
    "app.blueprints.dashboard.pages",
    "app.blueprints.orgs.routes",
    "app.blueprints.orgs.pages",
    "app.blueprints.conversations.routes",
    "app.blueprints.conversations.pages",
    "app.blueprints.builds.routes",
    "app.blueprints.builds.pages",
    "app.blueprints.webhooks.routes",
    "app.blueprints.webhooks.pages",
    "app.blueprints.notifications.routes",
    "app.blueprints.notifications.pages",
    "app.blueprints.activity.routes",
    "app.blueprints.activity.pages",
    "app.blueprints.search.routes",
    "app.blueprints.search.pages",
    "app.blueprints.ops.routes",
    "app.blueprints.ops.pages",
    "app.blueprints.billing.routes",
    "app.blueprints.billing.pages",
]


def register_blueprints(app) -> None:
    from app.extensions import api, csrf

    for name in FEATURES:
        module = importlib.import_module(name)
        for blp in getattr(module, "api_blueprints", []):
            # The JSON API is CSRF-checked only for cookie-authenticated calls (app.http.security).
            csrf.exempt(blp)
            api.register_blueprint(blp)
        for blp in getattr(module, "page_blueprints", []):
            app.register_blueprint(blp)
