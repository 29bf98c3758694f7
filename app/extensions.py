"""Extensions are created unbound here and bound in create_app()."""
from __future__ import annotations

import redis as redis_lib
from flask import current_app, g, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sock import Sock
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect
from htmx_flask import Htmx
from sqlalchemy import MetaData

from app.http.api import KilnApi

# Stable constraint names make Alembic migrations portable between SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

db = SQLAlchemy(metadata=MetaData(naming_convention=NAMING))
migrate = Migrate()
login_manager = LoginManager()
api = KilnApi()
sock = Sock()
htmx = Htmx()
csrf = CSRFProtect()


def rate_limit_key() -> str:
    principal = getattr(g, "principal", None)
    if principal is not None and principal.api_key is not None:
        return f"key:{principal.api_key.id}"
    if principal is not None and principal.user is not None:
        return f"user:{principal.user.id}"
    return f"ip:{get_remote_address()}"


def _rate_limit_exempt() -> bool:
    # The per-user limit guards the API; health probes and pages are not metered.
    path = request.path
    return not path.startswith("/api/") or path in ("/api/health", "/api/ready", "/api/version")


limiter = Limiter(key_func=rate_limit_key, default_limits_exempt_when=_rate_limit_exempt)


class RedisExtension:
    """One Redis connection pool per app, from REDIS_URL."""

    def init_app(self, app):
        app.extensions["redis"] = redis_lib.Redis.from_url(app.config["REDIS_URL"], health_check_interval=30)

    @property
    def client(self) -> redis_lib.Redis:
        return current_app.extensions["redis"]


redis = RedisExtension()
