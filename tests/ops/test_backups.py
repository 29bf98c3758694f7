"""Backups that restore: archive -> an empty database (SQLite or PostgreSQL, as the suite runs) -> the same rows,
an API key that still authenticates, a download that still works; secrets never in clear in the archive."""
from __future__ import annotations

import gzip
import hashlib
import json
import tarfile
import uuid
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import create_engine, text

from tests.builds.conftest import BuildFactory
from tests.conftest import DB_KIND

KEY = Fernet.generate_key().decode()
IMAGE = b"kiln-image-" * 4096
TABLES = ["users", "organizations", "memberships", "conversations", "recipe_versions", "builds", "build_stages",
          "build_artifacts", "api_keys", "webhook_endpoints"]


@pytest.fixture
def backup_config(app, tmp_path):
    saved = {k: app.config[k] for k in ("KILN_BACKUP_DIR", "KILN_BACKUP_KEY", "KILN_BACKUP_KEEP")}
    app.config.update(KILN_BACKUP_DIR=str(tmp_path / "backups"), KILN_BACKUP_KEY=KEY, KILN_BACKUP_KEEP=7)
    yield Path(app.config["KILN_BACKUP_DIR"])
    app.config.update(saved)


@pytest.fixture
def empty_database_url(app_config, tmp_path):
    """A second, empty database on the same engine as the suite's."""
    if DB_KIND != "postgresql":
        yield f"sqlite:///{tmp_path / 'restored.db'}"
        return
    name = f"kiln_restore_{uuid.uuid4().hex[:8]}"
    admin = create_engine(app_config["SQLALCHEMY_DATABASE_URI"], isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = app_config["SQLALCHEMY_DATABASE_URI"].rsplit("/", 1)[0] + "/" + name
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def world(app, client, factory, site_admin, admin_headers):
    """Users, orgs, a conversation, builds with a real artifact file, an API key, a webhook (with its signing
    secret) and a TOTP secret: everything a restore must bring back."""
    other = factory.user(email="bob@example.com", name="Bob")
    org = factory.org(site_admin, name="Acme")
    factory.add_member(org, other, "member")
    builds = BuildFactory(app)
    conversation = builds.conversation(org, site_admin.id)
    build_id = builds.create(org, status="succeeded", image=IMAGE, conversation_id=conversation)
    builds.create(org, status="failed", failure_class="user_error")
    headers = {**admin_headers, "X-Tenant-ID": str(org)}
    key = client.post(f"/api/organizations/{org}/api-keys", headers=headers,
                      json={"name": "ci", "scopes": ["builds:read"]}).json["key"]
    hook = client.post("/api/webhooks", headers=headers, json={"url": "https://hooks.example.com/kiln",
                                                               "events": ["build.completed"]})
    assert hook.status_code == 201, hook.json
    totp = client.post("/api/auth/totp/setup", headers=admin_headers)
    assert totp.status_code == 200, totp.json
    return {"org": org, "build_id": build_id, "key": key, "webhook_secret": hook.json["secret"],
            "totp_secret": totp.json["secret"]}


def _rows(url: str) -> dict:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return {t: [tuple(r) for r in conn.execute(text(f'SELECT * FROM "{t}" ORDER BY id'))] for t in TABLES}
    finally:
        engine.dispose()


def _archive_bytes(path: Path) -> bytes:
    """Every byte the archive holds, decompressed."""
    out = gzip.decompress(path.read_bytes())
    with tarfile.open(path, "r:gz") as tar:
        for member in tar.getmembers():
            out += tar.extractfile(member).read()
    return out


def test_backup_restores_into_an_empty_database(app, app_config, client, world, backup_config, empty_database_url,
                                                admin_headers):
    from app import create_app
    from app.extensions import db

    result = app.test_cli_runner().invoke(args=["kiln", "backup"])
    assert result.exit_code == 0, result.output
    archive = Path(result.output.strip())
    assert archive.parent == backup_config and archive.is_file()

    with tarfile.open(archive, "r:gz") as tar:
        names = tar.getnames()
        manifest = json.loads(tar.extractfile("manifest.json").read())
    assert names[0] == "manifest.json" and manifest["database"]["engine"] == DB_KIND
    image = next(a for a in manifest["artifacts"] if a["buildId"] == str(world["build_id"]))
    assert image["size"] == len(IMAGE) and image["sha256"] == hashlib.sha256(IMAGE).hexdigest()
    everything = _archive_bytes(archive)
    for secret in (world["webhook_secret"], world["totp_secret"]):
        assert secret.encode() not in everything
    assert b"bob@example.com" not in everything  # the whole dump is encrypted, not just some columns

    restored_app = create_app({**app_config, "SQLALCHEMY_DATABASE_URI": empty_database_url,
                               "KILN_BACKUP_DIR": str(backup_config), "KILN_BACKUP_KEY": KEY})
    if DB_KIND == "postgresql":
        with restored_app.app_context():
            db.create_all()  # an empty schema, as `flask db upgrade` leaves a new database: restore replaces it
    # pytest-flask keeps the suite's app context pushed, and `flask` commands use the current app: push this one.
    with restored_app.app_context():
        restored = restored_app.test_cli_runner().invoke(args=["kiln", "restore", str(archive)])
    assert restored.exit_code == 0, restored.output
    assert "Restored" in restored.output

    with app.app_context():
        original_url = str(db.engine.url.render_as_string(hide_password=False))
    original, copy = _rows(original_url), _rows(empty_database_url)
    for table in TABLES:
        assert copy[table] == original[table], table
    assert all(original[t] for t in ("users", "organizations", "conversations", "builds", "api_keys"))

    restored_client = restored_app.test_client()
    listed = restored_client.get("/api/builds", headers={"X-API-Key": world["key"]})
    assert listed.status_code == 200 and listed.json["totalCount"] == 2
    download = restored_client.get(f"/api/builds/{world['build_id']}/download", headers={"X-API-Key": world["key"]})
    assert download.status_code == 200 and download.data == IMAGE
    with restored_app.app_context():
        db.session.remove()
        db.engine.dispose()

    # The source database is not empty: restoring over it is refused, and it is left as it was.
    refused = app.test_cli_runner().invoke(args=["kiln", "restore", str(archive)])
    assert refused.exit_code != 0
    assert "not empty" in refused.output and "builds (2 rows)" in refused.output
    assert _rows(original_url) == original


def test_backup_api_list_stats_download_delete_and_retention(app, client, backup_config, admin_headers,
                                                             someone_headers):
    app.config["KILN_BACKUP_KEEP"] = 2
    written = [client.post("/api/backups/trigger", headers=admin_headers) for _ in range(3)]
    assert [w.status_code for w in written] == [201, 201, 201], written[0].json
    names = [w.json["filename"] for w in written]
    listed = client.get("/api/backups", headers=admin_headers).json
    assert listed["totalCount"] == 2 and [b["filename"] for b in listed["backups"]] == names[:0:-1]
    stats = client.get("/api/backups/stats", headers=admin_headers).json
    assert stats["count"] == 2 and stats["keep"] == 2 and stats["latest"]["filename"] == names[-1]
    assert stats["encrypted"] is True and stats["totalBytes"] == sum(b["size"] for b in listed["backups"])

    download = client.get(f"/api/backups/{names[-1]}/download", headers=admin_headers)
    assert download.status_code == 200 and download.data == (backup_config / names[-1]).read_bytes()
    assert client.get(f"/api/backups/{names[-1]}/download", headers=someone_headers).status_code == 403
    assert client.delete(f"/api/backups/{names[-1]}", headers=admin_headers).status_code == 204
    assert not (backup_config / names[-1]).exists()
    assert client.delete(f"/api/backups/{names[-1]}", headers=admin_headers).status_code == 404


@pytest.mark.parametrize("filename", ["..", "...tar.gz", "kiln-backup-x..tar.gz", "passwd", "kiln-backup-1.tar.gz",
                                      "..%5C..%5Cetc%5Cpasswd"])
def test_backup_filenames_are_validated(client, backup_config, admin_headers, filename):
    answer = client.get(f"/api/backups/{filename}/download", headers=admin_headers)
    assert answer.status_code == 400, answer.data[:200]
    assert answer.json["error"]["code"] == "VALIDATION_ERROR" and "filename" in answer.json["error"]["details"]
    assert client.delete(f"/api/backups/{filename}", headers=admin_headers).status_code == 400


def test_backups_need_a_key(app, client, backup_config, admin_headers):
    app.config["KILN_BACKUP_KEY"] = ""
    answer = client.post("/api/backups/trigger", headers=admin_headers)
    assert answer.status_code == 503 and answer.json["error"]["code"] == "NOT_CONFIGURED"
    assert "KILN_BACKUP_KEY" in answer.json["error"]["message"]
    cli = app.test_cli_runner().invoke(args=["kiln", "backup"])
    assert cli.exit_code != 0 and "KILN_BACKUP_KEY" in cli.output


def test_restore_refuses_a_wrong_key(app, app_config, client, backup_config, admin_headers, empty_database_url):
    from app import create_app

    filename = client.post("/api/backups/trigger", headers=admin_headers).json["filename"]
    other = create_app({**app_config, "SQLALCHEMY_DATABASE_URI": empty_database_url,
                        "KILN_BACKUP_KEY": Fernet.generate_key().decode()})
    with other.app_context():
        result = other.test_cli_runner().invoke(args=["kiln", "restore", str(backup_config / filename)])
    assert result.exit_code != 0 and "KILN_BACKUP_KEY does not decrypt this archive" in result.output


def test_schedule_keeps_one_chain_and_the_job_writes_a_backup(app, backup_config):
    from rq.registry import ScheduledJobRegistry

    from app import queues
    from app.services.ops import backups
    from app.tasks.backups import run_scheduled_backup

    app.config["KILN_BACKUP_INTERVAL_HOURS"] = 6.0
    try:
        with app.app_context():
            first = backups.ensure_schedule()
            assert backups.ensure_schedule() == first  # a second worker starting keeps the same chain
            registry = ScheduledJobRegistry(queue=queues.get_queue("default"))
            assert registry.get_job_ids() == [first]
            assert backups.next_scheduled_at() is not None
            # What RQ's scheduler runs when the time comes (here directly, in the worker's app context).
            filename = run_scheduled_backup()
            assert (backup_config / filename).is_file()
            following = backups._scheduled_job_id()
            assert following != first and following in registry.get_job_ids()
    finally:
        app.config["KILN_BACKUP_INTERVAL_HOURS"] = 0.0


def test_no_schedule_without_an_interval(app, backup_config):
    from app.services.ops import backups

    with app.app_context():
        assert backups.ensure_schedule() is None
        assert backups.next_scheduled_at() is None
