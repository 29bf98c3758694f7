"""Backups that restore: one tar.gz per backup, in KILN_BACKUP_DIR.

An archive holds
- `manifest.json` (in clear): when, which Kiln and schema revision, the database engine, and every build
  artifact's path, size and sha256 as the database records them. The artifacts stay in their store.
- `database.sqlite3.fernet` (SQLite's online backup API) or `database.pgdump.fernet` (`pg_dump -Fc`),
  encrypted with KILN_BACKUP_KEY (Fernet: AES-128-CBC + HMAC-SHA256).

The database holds secrets that are not hashed (users.totp_secret, webhook_endpoints.secret); rather
than pick columns that the next feature may add to, the whole dump is encrypted: no backup is written
without KILN_BACKUP_KEY, and the archive is useless without it.

`restore` writes into an EMPTY database only (no table with rows): it never merges into or replaces a live one.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from flask import current_app
from sqlalchemy import inspect, select, text
from sqlalchemy.engine import make_url

from app.version import __version__
from app.extensions import db
from app.models import BuildArtifact
from app.services import audit
from app.services.audit import Actor
from app.services.errors import Conflict, DomainError, NotFound, ValidationFailed

FORMAT = 1
FILENAME_RE = re.compile(r"^kiln-backup-(\d{8}T\d{6}Z)(?:-(\d{1,3}))?\.tar\.gz\Z")
SCHEDULE_POINTER = "kiln:backup:next-job"  # the id of the scheduled job that will write the next backup


class NotConfigured(DomainError):
    code, status = "NOT_CONFIGURED", 503


class BackupError(DomainError):
    """The backup or restore itself failed (a tool missing or failing): the operator must act."""
    code, status = "SERVER_ERROR", 500


@dataclass
class BackupFile:
    filename: str
    size: int
    created_at: datetime


def backup_dir() -> Path:
    path = Path(current_app.config["KILN_BACKUP_DIR"])
    path.mkdir(parents=True, exist_ok=True)
    return path


def _fernet() -> Fernet:
    key = current_app.config["KILN_BACKUP_KEY"]
    if not key:
        raise NotConfigured("Backups need KILN_BACKUP_KEY (the database dump holds secrets and is written "
                            "encrypted only); generate one with `flask kiln backup-key`")
    return Fernet(key.encode())


def check_filename(filename: str) -> str:
    """A backup's name as this module writes it; anything else (a path, `..`) is refused by name."""
    if "/" in filename or "\\" in filename or ".." in filename:
        raise ValidationFailed(f"filename: {filename!r} must be a plain file name, without path separators or '..'",
                               {"filename": ["Must be a plain file name, without path separators or '..'."]})
    if not FILENAME_RE.match(filename):
        raise ValidationFailed(f"filename: {filename!r} is not a Kiln backup name (kiln-backup-<UTC time>.tar.gz)",
                               {"filename": ["Not a Kiln backup name (kiln-backup-YYYYMMDDTHHMMSSZ.tar.gz)."]})
    return filename


def path_of(filename: str) -> Path:
    path = backup_dir() / check_filename(filename)
    if not path.is_file():
        raise NotFound.of("Backup", filename)
    return path


def _order(backup: BackupFile) -> tuple[str, int]:
    """When it was written: the UTC stamp, then the serial of a second one within the same second."""
    match = FILENAME_RE.match(backup.filename)
    return match.group(1), int(match.group(2) or 0)


def list_backups() -> list[BackupFile]:
    """Newest first."""
    found = []
    for path in backup_dir().iterdir():
        if path.is_file() and FILENAME_RE.match(path.name):
            stat = path.stat()
            found.append(BackupFile(path.name, stat.st_size, datetime.fromtimestamp(stat.st_mtime, tz=timezone.utc)))
    found.sort(key=_order, reverse=True)
    return found


def stats() -> dict:
    backups = list_backups()
    return {"count": len(backups), "total_bytes": sum(b.size for b in backups),
            "latest": backups[0] if backups else None, "oldest": backups[-1] if backups else None,
            "keep": int(current_app.config["KILN_BACKUP_KEEP"]),
            "interval_hours": float(current_app.config["KILN_BACKUP_INTERVAL_HOURS"]),
            "next_scheduled_at": next_scheduled_at(), "encrypted": bool(current_app.config["KILN_BACKUP_KEY"])}


def _queue(name: str):
    from app import queues

    return queues.get_queue(name)


def delete_backup(actor: Actor, filename: str) -> None:
    path = path_of(filename)
    path.unlink()
    audit.record(actor, "backup.deleted", "backup", filename)


# Writing ---------------------------------------------------------------------------------------------

def _engine_kind() -> str:
    return "postgresql" if db.engine.dialect.name == "postgresql" else "sqlite"


def _sqlite_path(uri: str) -> Path:
    database = make_url(uri).database
    if not database or database == ":memory:":
        raise BackupError("An in-memory SQLite database cannot be backed up or restored")
    return Path(database)


def _pg_env(uri: str) -> dict:
    """libpq's environment for pg_dump/pg_restore: the password never appears on a command line."""
    url = make_url(uri)
    env = dict(os.environ)
    for var, value in (("PGHOST", url.host), ("PGPORT", url.port), ("PGUSER", url.username),
                       ("PGPASSWORD", url.password), ("PGDATABASE", url.database)):
        if value is not None:
            env[var] = str(value)
    return env


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise BackupError(f"{name} is not installed: install postgresql-client (scripts/system-packages.txt)")
    return found


def _dump_database(out: Path) -> str:
    uri = current_app.config["SQLALCHEMY_DATABASE_URI"]
    if _engine_kind() == "sqlite":
        source = sqlite3.connect(_sqlite_path(uri))
        target = sqlite3.connect(out)
        try:
            source.backup(target)  # a consistent copy while the web and the workers keep writing
        finally:
            target.close()
            source.close()
        return "database.sqlite3"
    done = subprocess.run([_tool("pg_dump"), "--format=custom", "--no-owner", "--no-privileges", "--file", str(out)],
                          env=_pg_env(uri), capture_output=True, text=True)
    if done.returncode != 0:
        raise BackupError(f"pg_dump failed: {done.stderr.strip()[-500:]}")
    return "database.pgdump"


def _artifact_manifest() -> list[dict]:
    rows = db.session.execute(select(BuildArtifact.build_id, BuildArtifact.kind, BuildArtifact.path,
                                     BuildArtifact.size, BuildArtifact.sha256).order_by(BuildArtifact.path))
    return [{"buildId": str(r.build_id), "kind": r.kind, "path": r.path, "size": r.size, "sha256": r.sha256}
            for r in rows]


def _revision() -> str | None:
    try:
        return db.session.scalar(text("SELECT version_num FROM alembic_version"))
    except Exception:  # noqa: BLE001 - a database made by create_all (tests) has no alembic table
        db.session.rollback()
        return None


def _new_filename(directory: Path) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    name = f"kiln-backup-{stamp}.tar.gz"
    serial = 1
    while (directory / name).exists():
        name = f"kiln-backup-{stamp}-{serial}.tar.gz"
        serial += 1
    return name


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = int(datetime.now(timezone.utc).timestamp())
    info.mode = 0o600
    tar.addfile(info, io.BytesIO(data))


def create_backup(actor: Actor) -> BackupFile:
    """Dump, encrypt, archive, then apply the retention count. The archive appears under its final name
    only when complete (written beside it, then renamed)."""
    fernet = _fernet()
    directory = backup_dir()
    filename = _new_filename(directory)
    with tempfile.TemporaryDirectory(prefix="kiln-backup-", dir=directory) as tmp:
        dump = Path(tmp) / "dump"
        db_name = _dump_database(dump)
        encrypted = fernet.encrypt(dump.read_bytes())
        dump.unlink()
        manifest = {"format": FORMAT, "kilnVersion": __version__, "createdAt": datetime.now(timezone.utc).isoformat(),
                    "alembicRevision": _revision(), "database": {"engine": _engine_kind(), "file": f"{db_name}.fernet",
                    "sha256": hashlib.sha256(encrypted).hexdigest(), "encryption": "fernet"},
                    "artifacts": _artifact_manifest()}
        partial = Path(tmp) / filename
        with tarfile.open(partial, "w:gz") as tar:
            _add_bytes(tar, "manifest.json", json.dumps(manifest, indent=1).encode())
            _add_bytes(tar, f"{db_name}.fernet", encrypted)
        os.chmod(partial, 0o600)
        os.replace(partial, directory / filename)
    audit.record(actor, "backup.created", "backup", filename, artifacts=len(manifest["artifacts"]))
    apply_retention(actor)
    stat = (directory / filename).stat()
    return BackupFile(filename, stat.st_size, datetime.fromtimestamp(stat.st_mtime, tz=timezone.utc))


def apply_retention(actor: Actor) -> list[str]:
    keep = int(current_app.config["KILN_BACKUP_KEEP"])
    removed = []
    for old in list_backups()[keep:]:
        (backup_dir() / old.filename).unlink(missing_ok=True)
        audit.record(actor, "backup.expired", "backup", old.filename, keep=keep)
        removed.append(old.filename)
    return removed


# Restoring -------------------------------------------------------------------------------------------

def read_archive(path: Path) -> tuple[dict, bytes]:
    """The manifest and the decrypted database dump."""
    try:
        with tarfile.open(path, "r:gz") as tar:
            manifest = json.loads(tar.extractfile("manifest.json").read())
            encrypted = tar.extractfile(manifest["database"]["file"]).read()
    except (tarfile.TarError, KeyError, ValueError, AttributeError, OSError) as exc:
        raise ValidationFailed(f"{path.name} is not a Kiln backup archive ({exc})") from None
    if manifest.get("format") != FORMAT:
        raise ValidationFailed(f"{path.name} has backup format {manifest.get('format')!r}; this Kiln reads {FORMAT}")
    if hashlib.sha256(encrypted).hexdigest() != manifest["database"]["sha256"]:
        raise ValidationFailed(f"{path.name} is damaged: the database dump does not match its sha256")
    try:
        return manifest, _fernet().decrypt(encrypted)
    except InvalidToken:
        raise ValidationFailed("KILN_BACKUP_KEY does not decrypt this archive (it was written with another key)") from None


def nonempty_tables() -> dict[str, int]:
    """Tables of the target database that have rows (alembic's bookkeeping aside)."""
    existing = set(inspect(db.engine).get_table_names())
    counts = {}
    with db.engine.connect() as conn:
        for name in sorted(existing - {"alembic_version"}):
            count = conn.execute(text(f'SELECT COUNT(*) FROM "{name}"')).scalar()
            if count:
                counts[name] = count
    return counts


def restore_backup(path: Path) -> dict:
    """Restore the archive's database into the configured, empty database. Returns the manifest."""
    manifest, dump = read_archive(path)
    kind = _engine_kind()
    if manifest["database"]["engine"] != kind:
        raise ValidationFailed(f"This archive holds a {manifest['database']['engine']} database; "
                               f"the configured database is {kind}")
    filled = nonempty_tables()
    if filled:
        listed = ", ".join(f"{t} ({n} rows)" for t, n in list(filled.items())[:5])
        raise Conflict(f"The target database is not empty: {listed}. Restore only into an empty database "
                       "(create a new one and point DATABASE_URL at it)")
    db.session.remove()
    db.engine.dispose()
    uri = current_app.config["SQLALCHEMY_DATABASE_URI"]
    with tempfile.TemporaryDirectory(prefix="kiln-restore-") as tmp:
        source_path = Path(tmp) / "dump"
        source_path.write_bytes(dump)
        if kind == "sqlite":
            source = sqlite3.connect(source_path)
            target = sqlite3.connect(_sqlite_path(uri))
            try:
                source.backup(target)
            finally:
                target.close()
                source.close()
        else:
            # --clean drops the empty tables a migration may have made, so the dump's own schema goes in.
            done = subprocess.run([_tool("pg_restore"), "--clean", "--if-exists", "--no-owner", "--no-privileges",
                                   "--single-transaction", "--exit-on-error", "--dbname",
                                   _pg_env(uri)["PGDATABASE"], str(source_path)],
                                  env=_pg_env(uri), capture_output=True, text=True)
            if done.returncode != 0:
                raise BackupError(f"pg_restore failed: {done.stderr.strip()[-500:]}")
    db.engine.dispose()
    return manifest


# Schedule (RQ's scheduler, run by every worker: with_scheduler=True) -----------------------------------

def _scheduled_job_id() -> str | None:
    from app.extensions import redis

    raw = redis.client.get(SCHEDULE_POINTER)
    return raw.decode() if isinstance(raw, bytes) else raw


def schedule_next(hours: float) -> str:
    """Enqueue the next scheduled backup `hours` from now, under a fresh job id the pointer names."""
    from datetime import timedelta

    from app.extensions import redis

    job_id = f"kiln-backup-{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%S%f')}"
    _queue("default").enqueue_in(timedelta(hours=hours), "app.tasks.backups.run_scheduled_backup",
                                 job_id=job_id, job_timeout=3600, result_ttl=24 * 3600, failure_ttl=7 * 24 * 3600)
    redis.client.set(SCHEDULE_POINTER, job_id)
    return job_id


def ensure_schedule() -> str | None:
    """At a worker's start: when KILN_BACKUP_INTERVAL_HOURS is set, make sure a next backup is scheduled
    (one chain for the whole site, whichever worker started it)."""
    from app import queues

    hours = float(current_app.config["KILN_BACKUP_INTERVAL_HOURS"])
    if hours <= 0:
        return None
    current = _scheduled_job_id()
    if current and queues.job_is_live(current):
        return current
    return schedule_next(hours)


def next_scheduled_at() -> datetime | None:
    from rq.registry import ScheduledJobRegistry

    job_id = _scheduled_job_id()
    if not job_id:
        return None
    try:
        return ScheduledJobRegistry(queue=_queue("default")).get_scheduled_time(job_id)
    except Exception:  # noqa: BLE001 - not (or no longer) scheduled
        return None
