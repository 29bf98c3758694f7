"""Locking a build to an earlier build's exact package versions (lockFrom), and the page saying how to."""
from __future__ import annotations

import hashlib
import json
import os
import uuid

from tests.builds.test_pages import logged_in  # noqa: F401 (fixture)

LOCK = {"openssh-server": "1:10.0p1-7", "libc6": "2.41-12", "systemd": "257.8-1~deb13u2"}


def _with_manifest(app, build_id, release="trixie", reproducibility=True):
    """Give a build the manifest.json the engine writes (test data shaped like the engine's)."""
    from app.extensions import db
    from app.models import Build, BuildArtifact
    from app.services.builds import files

    manifest = {"name": "web", "release": release, "packages": [
        {"name": n, "version": v, "architecture": "amd64"} for n, v in LOCK.items()]}
    if reproducibility:
        manifest["reproducibility"] = {"reproducible": True, "sourceDateEpoch": 1754000000,
                                       "sourceDate": "2025-07-31T22:13:20Z", "packageLock": dict(LOCK)}
    data = json.dumps(manifest).encode()
    with app.app_context():
        build = db.session.get(Build, build_id)
        directory = files.artifacts_dir(build)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "manifest.json").write_bytes(data)
        db.session.add(BuildArtifact(build_id=build.id, kind="manifest", filename="manifest.json",
                                     path=os.path.relpath(directory / "manifest.json", files.artifacts_root()),
                                     size=len(data), sha256=hashlib.sha256(data).hexdigest()))
        db.session.commit()


def test_lock_from_a_succeeded_build_pins_its_package_versions(client, auth_headers, builds, org_id, app):
    old = builds.create(org_id, status="succeeded", image=b"x" * 10)
    _with_manifest(app, old)
    resp = client.post("/api/builds", headers=auth_headers,
                       json={"recipe": {"name": "web", "packages": ["openssh-server"]}, "lockFrom": str(old),
                             "start": False})
    assert resp.status_code == 201, resp.json
    assert resp.json["lockedFrom"] == str(old)
    lock = builds.get(uuid.UUID(resp.json["id"])).package_lock
    assert lock["packages"] == LOCK and lock["fromBuildNumber"] == 1
    # A retry keeps the lock: it is the same request again.
    client.post(f"/api/builds/{resp.json['id']}/cancel", headers=auth_headers)
    retry = client.post(f"/api/builds/{resp.json['id']}/retry", headers=auth_headers, json={})
    assert retry.status_code == 201 and retry.json["lockedFrom"] == str(old)


def test_lock_from_an_older_manifest_uses_its_package_list(client, auth_headers, builds, org_id, app):
    old = builds.create(org_id, status="succeeded", image=b"x" * 10)
    _with_manifest(app, old, reproducibility=False)
    resp = client.post("/api/builds", headers=auth_headers, json={"recipe": {"name": "web"}, "lockFrom": str(old)})
    assert resp.status_code == 201, resp.json
    assert builds.get(uuid.UUID(resp.json["id"])).package_lock["packages"] == LOCK


def test_lock_from_needs_a_finished_build_of_the_same_release(client, auth_headers, builds, org_id, app):
    failed = builds.create(org_id, status="failed", failure_reason="boom")
    resp = client.post("/api/builds", headers=auth_headers, json={"recipe": {"name": "web"}, "lockFrom": str(failed)})
    assert resp.status_code == 400 and "lockFrom" in resp.json["error"]["details"], resp.json
    bookworm = builds.create(org_id, status="succeeded", image=b"x")
    _with_manifest(app, bookworm, release="bookworm")
    resp = client.post("/api/builds", headers=auth_headers, json={"recipe": {"name": "web"}, "lockFrom": str(bookworm)})
    assert resp.status_code == 400 and "bookworm" in resp.json["error"]["message"], resp.json
    resp = client.post("/api/builds", headers=auth_headers,
                       json={"recipe": {"name": "web"}, "lockFrom": "6f1c2f64-0000-4000-8000-000000000000"})
    assert resp.status_code == 404, resp.json
    resp = client.post("/api/builds", headers=auth_headers, json={"recipe": {"name": "web"}, "lockFrom": "12"})
    assert resp.status_code == 400 and "lockFrom" in resp.json["error"]["details"], resp.json


def test_finished_build_page_gives_the_epoch_and_how_to_rebuild(app, logged_in, builds, org_id):
    build_id = builds.create(org_id, status="succeeded", image=b"\x00" * 100)
    _with_manifest(app, build_id)
    html = logged_in.get(f"/builds/{build_id}").data.decode()
    assert "SOURCE_DATE_EPOCH=1754000000" in html and "3 package versions" in html
    assert f'"lockFrom": "{build_id}"' in html.replace("&#34;", '"')
