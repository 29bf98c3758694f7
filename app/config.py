"""Every setting comes from the environment, with defaults that run a self-hosted Kiln out of `instance/`."""
from __future__ import annotations

import os
import re
import secrets
from pathlib import Path


def _bool(value: str | None, default: bool = False) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _secret_key(instance_path: Path) -> str:
    """A stable secret survives restarts: generate it once and keep it beside the database."""
    key_file = instance_path / "secret_key"
    if key_file.exists():
        return key_file.read_text().strip()
    instance_path.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key)
    return key


def normalize_database_url(url: str) -> str:
    # psycopg 3 is the driver we ship; plain postgresql:// would make SQLAlchemy look for psycopg2.
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


SIGNUP_MODES = ("open", "invite", "closed")


def _signup(value: str | None) -> str:
    mode = (value or "open").strip().lower()
    if mode not in SIGNUP_MODES:
        raise ValueError(f"KILN_SIGNUP must be one of {', '.join(SIGNUP_MODES)}, got {value!r}")
    return mode


def _tier(value: str | None) -> str:
    value = (value or "free").strip().lower()
    if not re.fullmatch(r"[a-z0-9_-]{1,32}", value):
        raise ValueError(f"KILN_DEFAULT_TIER must be a tier name (letters, digits, - or _), not {value!r}")
    return value


def _stripe_prices(value: str | None) -> dict[str, str]:
    """KILN_STRIPE_PRICES="pro=price_123,team=price_456": the Stripe price (or plan) id each paid tier sells as."""
    prices: dict[str, str] = {}
    for part in (value or "").split(","):
        if not part.strip():
            continue
        tier, sep, price = part.partition("=")
        tier, price = tier.strip().lower(), price.strip()
        if not sep or not re.fullmatch(r"[a-z0-9_-]{1,32}", tier) or not re.fullmatch(r"[A-Za-z0-9_-]{1,255}", price):
            raise ValueError(f"KILN_STRIPE_PRICES must read tier=price_id[,tier=price_id...], not {part.strip()!r}")
        if tier in prices or price in prices.values():
            raise ValueError(f"KILN_STRIPE_PRICES names {tier!r} or {price!r} twice")
        prices[tier] = price
    return prices


def _stripe_api_base(value: str | None) -> str:
    value = (value or "").strip().rstrip("/")
    if value and not re.fullmatch(r"https?://[^\s/]+(/[^\s]*)?", value):
        raise ValueError(f"KILN_STRIPE_API_BASE must be an http(s) URL, not {value!r}")
    return value


def _float(env, name: str, default: str) -> float:
    value = env.get(name) or default
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {value!r}") from None


def _storage_url(value: str | None) -> str:
    """Empty: files on this host's disk (KILN_ARTIFACTS_DIR). Else an S3 bucket, s3://bucket[/prefix]."""
    url = (value or "").strip()
    if url:
        from app.storage import parse_s3_url

        parse_s3_url(url)  # a ValueError naming the setting stops the app at start
    return url


def _endpoint_url(value: str | None) -> str:
    url = (value or "").strip()
    if url and not (url.startswith("http://") or url.startswith("https://")) or url.endswith("://"):
        raise ValueError(f"KILN_S3_ENDPOINT_URL must be an http:// or https:// URL, got {value!r}")
    return url


def _positive_int(env, name: str, default: str) -> int:
    value = env.get(name) or default
    try:
        number = int(value)
    except ValueError:
        raise ValueError(f"{name} must be a whole number, got {value!r}") from None
    if number <= 0:
        raise ValueError(f"{name} must be greater than 0, got {number}")
    return number


def _whole(env, name: str, default: int, minimum: int) -> int:
    value = env.get(name) or str(default)
    try:
        number = int(value)
    except ValueError:
        raise ValueError(f"{name} must be a whole number, got {value!r}") from None
    if number < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {number}")
    return number


def web_process_settings(env: os._Environ | dict | None = None) -> dict:
    """How many live streams (build logs over SSE and WebSocket, chat replies) one web process holds at once,
    and how many threads it keeps for every other request besides them. gunicorn.conf.py sizes the process
    from these (threads = both), and the stream endpoints answer 503 to a stream beyond the first number, so
    ordinary requests always find a thread."""
    env = os.environ if env is None else env
    return {
        "KILN_STREAMS_PER_PROCESS": _whole(env, "KILN_STREAMS_PER_PROCESS", 200, 0),
        "KILN_WEB_THREADS": _whole(env, "KILN_WEB_THREADS", 32, 1),
    }


def _positive(env, name: str, default: str) -> float:
    value = _float(env, name, default)
    if value <= 0:
        raise ValueError(f"{name} must be greater than 0, got {value!r}")
    return value


def _fernet_key(value: str) -> str:
    if not value:
        return ""
    import base64
    import binascii

    try:
        ok = len(base64.urlsafe_b64decode(value.encode())) == 32
    except (binascii.Error, ValueError):
        ok = False
    if not ok:
        raise ValueError("KILN_BACKUP_KEY must be a Fernet key (32 url-safe base64 bytes): "
                         "generate one with `flask kiln backup-key`")
    return value


def load_config(instance_path: Path, env: os._Environ | dict | None = None) -> dict:
    env = os.environ if env is None else env
    data_dir = Path(env.get("KILN_DATA_DIR") or instance_path / "data")
    database_url = env.get("DATABASE_URL") or f"sqlite:///{instance_path / 'kiln.db'}"
    redis_url = env.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
    base_url = env.get("KILN_BASE_URL", "http://localhost:5000")
    # Served over https (production): cookies only travel over https. Plain http (dev, tests): they must not.
    secure_cookies = _bool(env.get("SESSION_COOKIE_SECURE"), base_url.startswith("https://"))
    heartbeat = _positive(env, "KILN_WORKER_HEARTBEAT_INTERVAL", "10")
    lost_after = _positive(env, "KILN_WORKER_LOST_AFTER", "60")
    if lost_after <= heartbeat:
        raise ValueError(f"KILN_WORKER_LOST_AFTER ({lost_after:g}) must be longer than "
                         f"KILN_WORKER_HEARTBEAT_INTERVAL ({heartbeat:g})")
    return {
        "SECRET_KEY": env.get("SECRET_KEY") or _secret_key(instance_path),
        "SQLALCHEMY_DATABASE_URI": normalize_database_url(database_url),
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True},
        "REDIS_URL": redis_url,
        "KILN_DATA_DIR": str(data_dir),
        "KILN_ARTIFACTS_DIR": str(Path(env.get("KILN_ARTIFACTS_DIR") or data_dir / "artifacts")),
        "KILN_BASE_URL": base_url,
        # Artifact storage (app.storage.from_config): empty keeps build files under KILN_ARTIFACTS_DIR; with
        # s3://bucket/prefix workers upload artifacts, logs and evidence there and every host reads them from it.
        # KILN_S3_ENDPOINT_URL for stores other than AWS (SeaweedFS, MinIO); credentials are boto3's usual ones
        # (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY). Downloads stream through Kiln unless KILN_STORAGE_REDIRECT
        # asks for a redirect to a presigned URL valid KILN_STORAGE_REDIRECT_SECONDS.
        "KILN_STORAGE_URL": _storage_url(env.get("KILN_STORAGE_URL")),
        "KILN_S3_ENDPOINT_URL": _endpoint_url(env.get("KILN_S3_ENDPOINT_URL")),
        "KILN_S3_REGION": (env.get("KILN_S3_REGION") or "").strip(),
        "KILN_STORAGE_REDIRECT": _bool(env.get("KILN_STORAGE_REDIRECT"), False),
        "KILN_STORAGE_REDIRECT_SECONDS": _positive_int(env, "KILN_STORAGE_REDIRECT_SECONDS", "300"),
        # Who may create an account: anyone (open), only through an organization's invitation (invite), nobody.
        "KILN_SIGNUP": _signup(env.get("KILN_SIGNUP")),
        "KILN_OUTBOX_DIR": str(instance_path / "outbox"),
        # Mail: SMTP when MAIL_SERVER is set, else mails go to the log and instance/outbox/.
        "MAIL_SERVER": env.get("MAIL_SERVER", ""),
        "MAIL_PORT": int(env.get("MAIL_PORT", "587")),
        "MAIL_USERNAME": env.get("MAIL_USERNAME", ""),
        "MAIL_PASSWORD": env.get("MAIL_PASSWORD", ""),
        "MAIL_USE_TLS": _bool(env.get("MAIL_USE_TLS"), True),
        "MAIL_USE_SSL": _bool(env.get("MAIL_USE_SSL"), False),
        "MAIL_FROM": env.get("MAIL_FROM", "Kiln <kiln@localhost>"),
        # argon2id cost; empty means the library's RFC 9106 defaults.
        "ARGON2_TIME_COST": int(env.get("ARGON2_TIME_COST") or 0) or None,
        "ARGON2_MEMORY_COST": int(env.get("ARGON2_MEMORY_COST") or 0) or None,
        "ARGON2_PARALLELISM": int(env.get("ARGON2_PARALLELISM") or 0) or None,
        # Tokens
        "JWT_EXPIRES_SECONDS": int(env.get("JWT_EXPIRES_SECONDS", "3600")),
        "JWT_ISSUER": env.get("JWT_ISSUER", "kiln"),
        "JWT_AUDIENCE": env.get("JWT_AUDIENCE", "kiln-api"),
        "PASSWORD_RESET_MAX_AGE": int(env.get("PASSWORD_RESET_MAX_AGE", "3600")),
        # Rate limits (Flask-Limiter notation)
        "KILN_RATE_LIMIT": env.get("KILN_RATE_LIMIT", "100 per minute"),
        "KILN_LOGIN_LIMIT_IP": env.get("KILN_LOGIN_LIMIT_IP", "20 per minute"),
        "KILN_LOGIN_LIMIT_ACCOUNT": env.get("KILN_LOGIN_LIMIT_ACCOUNT", "5 per minute"),
        "KILN_BUILD_START_LIMIT": env.get("KILN_BUILD_START_LIMIT", "10 per hour"),
        # Billing: the tier new organizations start on (a name in billing_tiers: free|pro|team|enterprise).
        "KILN_DEFAULT_TIER": _tier(env.get("KILN_DEFAULT_TIER")),
        # Stripe (optional): with the secret key, owners and admins pay through Checkout and manage billing in
        # Stripe's portal; with the webhook secret, POST /api/billing/webhook applies Stripe's events. Unset:
        # those endpoints answer 503 NOT_CONFIGURED and site admins change plans. The API base points the
        # official library elsewhere (a local fake in tests); empty: Stripe's own.
        "STRIPE_SECRET_KEY": (env.get("STRIPE_SECRET_KEY") or "").strip(),
        "STRIPE_WEBHOOK_SECRET": (env.get("STRIPE_WEBHOOK_SECRET") or "").strip(),
        "KILN_STRIPE_API_BASE": _stripe_api_base(env.get("KILN_STRIPE_API_BASE")),
        "KILN_STRIPE_PRICES": _stripe_prices(env.get("KILN_STRIPE_PRICES")),
        # Build queue: RQ job timeout, heartbeat of a running build, retries of infrastructure failures.
        "KILN_BUILD_JOB_TIMEOUT": int(env.get("KILN_BUILD_JOB_TIMEOUT", "7200")),
        "KILN_TEST_JOB_TIMEOUT": int(env.get("KILN_TEST_JOB_TIMEOUT", "1800")),
        "KILN_BUILD_HEARTBEAT_INTERVAL": float(env.get("KILN_BUILD_HEARTBEAT_INTERVAL", "10")),
        "KILN_BUILD_HEARTBEAT_TTL": int(env.get("KILN_BUILD_HEARTBEAT_TTL", "60")),
        "KILN_BUILD_REAPER_INTERVAL": float(env.get("KILN_BUILD_REAPER_INTERVAL", "30")),
        # Factory workers: how often each one says it is alive, after how long without a word it shows as lost,
        # and when a lost one is forgotten.
        "KILN_WORKER_HEARTBEAT_INTERVAL": heartbeat,
        "KILN_WORKER_LOST_AFTER": lost_after,
        "KILN_WORKER_FORGET_AFTER": _positive(env, "KILN_WORKER_FORGET_AFTER", "86400"),
        # How often the operations pages refresh their live panels.
        "KILN_OPS_POLL_SECONDS": int(_positive(env, "KILN_OPS_POLL_SECONDS", "5")),
        # Prometheus reads /metrics with `Authorization: Bearer <this>`; empty: only a site administrator's login.
        "KILN_METRICS_TOKEN": env.get("KILN_METRICS_TOKEN", "").strip(),
        # Backups (flask kiln backup, POST /api/backups/trigger, the schedule): where archives go, the Fernet key
        # their database dump is encrypted with (required to write one), how many are kept, every how many
        # hours the workers write one (0: no schedule).
        "KILN_BACKUP_DIR": str(Path(env.get("KILN_BACKUP_DIR") or instance_path / "backups")),
        "KILN_BACKUP_KEY": _fernet_key(env.get("KILN_BACKUP_KEY", "").strip()),
        "KILN_BACKUP_KEEP": int(_positive(env, "KILN_BACKUP_KEEP", "7")),
        "KILN_BACKUP_INTERVAL_HOURS": _float(env, "KILN_BACKUP_INTERVAL_HOURS", "0"),
        "KILN_BUILD_MAX_ATTEMPTS": int(env.get("KILN_BUILD_MAX_ATTEMPTS", "3")),
        "KILN_BUILD_LOG_MAXLEN": int(env.get("KILN_BUILD_LOG_MAXLEN", "50000")),
        "KILN_TEST_BOOT_TIMEOUT": float(env.get("KILN_TEST_BOOT_TIMEOUT", "300")),
        # Test VMs (app.engine.testing.vm.VMSettings.from_config, which checks them): memory, CPUs (empty: up to
        # 2 of the host's), the user a root worker drops QEMU to, the accelerator (kvm|tcg; empty: probe KVM),
        # the emulated machine, TCG's CPU model and thread mode, -icount (empty: none), the firmware (bios|uefi)
        # and the bus an ISO's CD-ROM is on (scsi|ide).
        "KILN_TEST_VM_MEMORY_MB": env.get("KILN_TEST_VM_MEMORY_MB", "1792"),
        "KILN_TEST_VM_CPUS": env.get("KILN_TEST_VM_CPUS", ""),
        "KILN_TEST_VM_USER": env.get("KILN_TEST_VM_USER", "nobody"),
        "KILN_QEMU_ACCEL": env.get("KILN_QEMU_ACCEL", ""),
        "KILN_TEST_VM_MACHINE": env.get("KILN_TEST_VM_MACHINE", "pc"),
        "KILN_TEST_VM_CPU_MODEL": env.get("KILN_TEST_VM_CPU_MODEL", "qemu64,+rdrand"),
        "KILN_TEST_VM_TCG_THREAD": env.get("KILN_TEST_VM_TCG_THREAD", "multi"),
        "KILN_TEST_VM_ICOUNT": env.get("KILN_TEST_VM_ICOUNT", ""),
        "KILN_TEST_VM_FIRMWARE": env.get("KILN_TEST_VM_FIRMWARE", "bios"),
        "KILN_TEST_VM_CDROM": env.get("KILN_TEST_VM_CDROM", "scsi"),
        # A later test run of an image with the same sha256 resumes a snapshot of an earlier run's booted VM (kept
        # in the engine's cache, within KILN_CACHE_MAX_GB) instead of booting it again (on|off).
        "KILN_TEST_VM_SNAPSHOTS": env.get("KILN_TEST_VM_SNAPSHOTS", "on"),
        # How long a live log stream waits for a build that has not been started before it ends.
        "KILN_STREAM_PENDING_WAIT": float(env.get("KILN_STREAM_PENDING_WAIT", "60")),
        **web_process_settings(env),
        # Webhooks: deliveries to loopback/private/link-local addresses are refused unless this is on (for
        # self-hosters whose receivers live in their own network); per-socket-operation timeout; how often
        # each worker looks for due retries and undispatched events.
        "KILN_WEBHOOK_ALLOW_PRIVATE": _bool(env.get("KILN_WEBHOOK_ALLOW_PRIVATE"), False),
        "KILN_WEBHOOK_TIMEOUT": float(env.get("KILN_WEBHOOK_TIMEOUT", "5")),
        "KILN_WEBHOOK_SWEEP_INTERVAL": float(env.get("KILN_WEBHOOK_SWEEP_INTERVAL", "15")),
        # How often the header bell asks for the unread count.
        "KILN_NOTIFICATION_POLL_SECONDS": int(env.get("KILN_NOTIFICATION_POLL_SECONDS", "30")),
        # Engine (EngineSettings.from_config): the Debian mirror (empty: the host's apt mirror) and the cache cap.
        "KILN_DEBIAN_MIRROR": env.get("KILN_DEBIAN_MIRROR", ""),
        "KILN_CACHE_MAX_GB": _float(env, "KILN_CACHE_MAX_GB", "20"),
        # A build locked to an earlier build's packages (lockFrom) also reads this archive snapshot, as
        # <URL>/<locked build's time as YYYYMMDDTHHMMSSZ> (snapshot.debian.org's layout); empty: the mirror only.
        "KILN_SNAPSHOT_MIRROR": env.get("KILN_SNAPSHOT_MIRROR", "").strip(),
        # Limits of every sandboxed build step (package installs, recipe commands): memory, processes, seconds.
        "KILN_BUILD_STEP_MEMORY_MB": env.get("KILN_BUILD_STEP_MEMORY_MB", "2048"),
        "KILN_BUILD_STEP_MAX_PROCESSES": env.get("KILN_BUILD_STEP_MAX_PROCESSES", "512"),
        "KILN_BUILD_STEP_TIMEOUT": env.get("KILN_BUILD_STEP_TIMEOUT", "1800"),
        # Chat planner (app.planner.PlannerSettings): an OpenAI-compatible endpoint when URL and model are set,
        # else the built-in planner; package names are checked against the engine's index either way.
        "KILN_LLM_URL": env.get("KILN_LLM_URL", "").strip(),
        "KILN_LLM_MODEL": env.get("KILN_LLM_MODEL", "").strip(),
        "KILN_LLM_API_KEY": env.get("KILN_LLM_API_KEY", ""),
        "KILN_LLM_TIMEOUT": _float(env, "KILN_LLM_TIMEOUT", "60"),
        "RATELIMIT_STORAGE_URI": redis_url,
        "RATELIMIT_HEADERS_ENABLED": True,
        "RATELIMIT_KEY_PREFIX": "kiln-rl",
        "RATELIMIT_STRATEGY": "moving-window",
        # Request bodies larger than this are refused with 413 before they are read (recipes are < 200 KB).
        "MAX_CONTENT_LENGTH": int(env.get("MAX_CONTENT_LENGTH") or 2 * 1024 * 1024),
        # Browser sessions
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": secure_cookies,
        "REMEMBER_COOKIE_HTTPONLY": True,
        "REMEMBER_COOKIE_SAMESITE": "Lax",
        "REMEMBER_COOKIE_SECURE": secure_cookies,
        # How many reverse proxies in front of Kiln set X-Forwarded-For/-Proto/-Host. 0 trusts no such
        # header (a client could fake its IP); behind one nginx it is 1, so login limits see real clients.
        "KILN_TRUSTED_PROXIES": int(env.get("KILN_TRUSTED_PROXIES") or 0),
        "WTF_CSRF_TIME_LIMIT": None,
        "WTF_CSRF_SSL_STRICT": False,
        # OpenAPI (flask-smorest); Swagger UI is our own page over vendored assets.
        "API_TITLE": "Kiln",
        "API_VERSION": "v1",
        "OPENAPI_VERSION": "3.0.3",
        "OPENAPI_URL_PREFIX": "/api",
        "OPENAPI_JSON_PATH": "openapi.json",
        "API_SPEC_OPTIONS": {
            "info": {"description": "Kiln: chat to recipe to tested Debian image. Every path is also served under /api/v1."},
            "security": [{"bearerAuth": []}, {"apiKeyHeader": []}],
        },
        "KILN_WS_ALLOWED_ORIGINS": [o for o in env.get("KILN_WS_ALLOWED_ORIGINS", "").split(",") if o],
        "SOCK_SERVER_OPTIONS": {"ping_interval": 25},
    }
