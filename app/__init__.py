"""Kiln: chat to recipe to tested Debian image."""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from flask import Flask, g
from werkzeug.middleware.proxy_fix import ProxyFix

from app.version import __version__  # noqa: F401 - re-exported: app.__version__


def create_app(config: dict | None = None) -> Flask:
    """Build the app. `config` overrides the environment-derived settings (tests pass theirs here)."""
    instance_path = Path(os.environ.get("KILN_INSTANCE_PATH") or Path(__file__).resolve().parent.parent / "instance")
    app = Flask(
        __name__,
        instance_path=str(instance_path),
        template_folder=str(Path(__file__).resolve().parent.parent / "templates"),
        static_folder=str(Path(__file__).resolve().parent.parent / "static"),
    )
    from app.config import load_config

    app.config.update(load_config(instance_path))
    if config:
        app.config.update(config)
    app.config["KILN_STARTED_AT"] = time.time()
    Path(app.config["KILN_DATA_DIR"]).mkdir(parents=True, exist_ok=True)
    from app.storage import from_config as storage_from_config

    # Artifact storage, checked here so a bad KILN_STORAGE_URL stops the app at start (the client is made lazily).
    app.extensions["kiln.storage"] = storage_from_config(app.config)
    logging.basicConfig(level=os.environ.get("KILN_LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    from app.services.accounts import configure_hasher

    configure_hasher(app.config["ARGON2_TIME_COST"], app.config["ARGON2_MEMORY_COST"], app.config["ARGON2_PARALLELISM"])
    _init_extensions(app)

    from app.blueprints import register_blueprints

    register_blueprints(app)
    proxies = app.config["KILN_TRUSTED_PROXIES"]
    if proxies:
        # Outermost, so rate limits, audit IPs, url_for(_external) and the Secure cookie see the client's view.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies, x_port=proxies)

    from app.cli import register_cli

    register_cli(app)
    return app


def _init_extensions(app: Flask) -> None:
    from app import models  # noqa: F401 - every model registered before migrations/create_all
    from app.extensions import api, csrf, db, htmx, limiter, login_manager, migrate, redis, sock
    from app.http.schemas import ErrorEnvelopeSchema

    db.init_app(app)
    migrate.init_app(app, db, directory=str(Path(__file__).resolve().parent.parent / "migrations"),
                     render_as_batch=True, compare_type=True)
    redis.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "accounts.login_page"
    login_manager.login_message_category = "info"
    csrf.init_app(app)
    htmx.init_app(app)
    sock.init_app(app)
    # The limiter keys on the caller, so the auth pipeline must run before its check.
    _init_request_pipeline(app)
    # Per caller, at the rate of the tenant org's tier (KILN_RATE_LIMIT where the tier sets none).
    from app.http.security import tier_rate_limit

    app.config.setdefault("RATELIMIT_DEFAULT", tier_rate_limit)
    # Flask-Limiter raises any Retry-After to its window's reset (a stream refused for capacity said 53 s
    # instead of 10). A refusal that is not the rate limit's keeps its own: after_request hooks run last
    # registered first, so this one, registered before the limiter's, runs after it.
    app.after_request(_restore_retry_after)
    limiter.init_app(app)
    app.after_request(_remember_retry_after)
    # The document's `default` answer is the envelope every error really has (API.md), not smorest's shape.
    # Set here, not in KilnApi: the schemas module reads models, which read extensions, which hold the Api.
    api.ERROR_SCHEMA = ErrorEnvelopeSchema
    api.init_app(app)
    api.spec.components.security_scheme("bearerAuth", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                                                        "description": "A JWT from /api/auth/token, or an API key kiln_..."})
    api.spec.components.security_scheme("apiKeyHeader", {"type": "apiKey", "in": "header", "name": "X-API-Key"})

    from app.models import User

    # The session id carries the password fingerprint: a password change ends every other session.
    login_manager.user_loader(User.by_session_id)

    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        _tune_sqlite(app)


def _tune_sqlite(app: Flask) -> None:
    """WAL + busy timeout: the web server and the worker write to the same SQLite file."""
    from sqlalchemy import event

    from app.extensions import db

    with app.app_context():
        engine = db.engine

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=10000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()


def _init_metrics(app: Flask) -> None:
    """Count every request by its URL rule (not the raw path, which would make a series per build id)."""
    from flask import g, request

    from app.services.ops import metrics

    @app.before_request
    def _start_clock():
        g.metrics_started = time.perf_counter()

    @app.after_request
    def _count(response):
        started = g.pop("metrics_started", None)
        if started is not None:
            route = request.url_rule.rule if request.url_rule is not None else "<unmatched>"
            metrics.observe_request(request.method, route, response.status_code, time.perf_counter() - started)
        return response


def _init_request_pipeline(app: Flask) -> None:
    from app.http import auth, security
    from app.http.errors import register_error_handlers

    app.wsgi_app = security.ApiVersionAlias(app.wsgi_app)
    app.before_request(security.assign_trace_id)
    app.before_request(auth.load_principal)
    app.before_request(security.protect_cookie_api_calls)
    app.after_request(auth.record_key_usage)
    _init_metrics(app)
    app.after_request(security.add_security_headers)
    register_error_handlers(app)

    @app.context_processor
    def _navigation():
        from flask import session
        from flask_login import current_user

        if not current_user.is_authenticated:
            return {"nav_orgs": [], "current_org_id": None}
        from app.services.accounts import memberships_of

        orgs = [(m.org, m.role) for m in memberships_of(current_user)]
        current = session.get("org_id") or str(current_user.default_org_id)
        return {"nav_orgs": orgs, "current_org_id": current}

    app.jinja_env.globals["kiln_version"] = __version__


def _remember_retry_after(response):
    if response.status_code != 429 and "Retry-After" in response.headers:
        g.own_retry_after = response.headers["Retry-After"]
    return response


def _restore_retry_after(response):
    own = g.pop("own_retry_after", None)
    if own is not None:
        response.headers["Retry-After"] = own
    return response
