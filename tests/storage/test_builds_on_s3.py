"""The builds service and API over a real S3 store: files published by a worker, downloads streamed from the
bucket (Range, 304, 416, checksum headers) or redirected to a presigned URL, logs read from the archived object,
deletes, and the shared result index that another worker materializes into its engine cache."""
from __future__ import annotations

import hashlib
import json
import shutil
import urllib.request
from types import SimpleNamespace

from tests.builds.conftest import append_log

IMAGE = bytes(range(256)) * 64  # 16384 bytes


def _published(app, build_id):
    """As a worker on another host leaves it: every file in the bucket, none on this host."""
    from app.extensions import db
    from app.models import Build
    from app.services.builds import files

    with app.app_context():
        build = db.session.get(Build, build_id)
        directory = files.artifacts_dir(build)
        files.publish(sorted(p for p in directory.iterdir() if p.is_file()))
        shutil.rmtree(directory)
        return [(a.id, a.path, a.sha256) for a in build.artifacts]


def test_download_streams_from_the_store_with_ranges(s3_app, client, auth_headers, builds, org_id):
    build_id = builds.create(org_id, status="succeeded", image=IMAGE)
    (_, key, sha), = _published(s3_app, build_id)
    assert s3_app.extensions["kiln.storage"].size(key) == len(IMAGE)
    whole = client.get(f"/api/builds/{build_id}/download", headers=auth_headers)
    assert whole.status_code == 200 and whole.data == IMAGE
    assert whole.headers["X-Checksum-SHA256"] == sha == hashlib.sha256(IMAGE).hexdigest()
    assert whole.headers["Content-Length"] == str(len(IMAGE)) and whole.headers["Accept-Ranges"] == "bytes"
    assert "attachment" in whole.headers["Content-Disposition"] and whole.headers["ETag"] == f'"{sha}"'
    part = client.get(f"/api/builds/{build_id}/download", headers={**auth_headers, "Range": "bytes=100-355"})
    assert part.status_code == 206 and part.data == IMAGE[100:356]
    assert part.headers["Content-Range"] == f"bytes 100-355/{len(IMAGE)}" and part.headers["Content-Length"] == "256"
    tail = client.get(f"/api/builds/{build_id}/download", headers={**auth_headers, "Range": "bytes=-10"})
    assert tail.status_code == 206 and tail.data == IMAGE[-10:]
    outside = client.get(f"/api/builds/{build_id}/download", headers={**auth_headers, "Range": f"bytes={len(IMAGE)}-"})
    assert outside.status_code == 416 and outside.json["error"]["code"] == "RANGE_NOT_SATISFIABLE"
    assert outside.headers["Content-Range"] == f"bytes */{len(IMAGE)}"
    same = client.get(f"/api/builds/{build_id}/download", headers={**auth_headers, "If-None-Match": f'"{sha}"'})
    assert same.status_code == 304 and not same.data


def test_download_redirects_to_a_presigned_url_when_asked(s3_app, client, auth_headers, builds, org_id):
    build_id = builds.create(org_id, status="succeeded", image=IMAGE)
    _published(s3_app, build_id)
    s3_app.config["KILN_STORAGE_REDIRECT"] = True
    try:
        resp = client.get(f"/api/builds/{build_id}/download", headers=auth_headers)
    finally:
        s3_app.config["KILN_STORAGE_REDIRECT"] = False
    assert resp.status_code == 302 and resp.headers["X-Checksum-SHA256"] == hashlib.sha256(IMAGE).hexdigest()
    assert "X-Amz-Expires=300" in resp.headers["Location"]
    with urllib.request.urlopen(resp.headers["Location"], timeout=10) as direct:
        assert direct.read() == IMAGE


def test_gone_object_is_a_404_not_a_500(s3_app, client, auth_headers, builds, org_id):
    build_id = builds.create(org_id, status="succeeded", image=IMAGE)
    (_, key, _), = _published(s3_app, build_id)
    s3_app.extensions["kiln.storage"].delete(key)
    resp = client.get(f"/api/builds/{build_id}/download", headers=auth_headers)
    assert resp.status_code == 404 and "gone" in resp.json["error"]["message"]


def test_archived_log_is_read_from_the_store_and_delete_empties_the_build(s3_app, client, auth_headers, builds,
                                                                          org_id):
    from app.extensions import db, redis
    from app.models import Build
    from app.services.builds import files, logs, run

    build_id = builds.create(org_id, status="building", image=IMAGE)
    append_log(s3_app, build_id, [("resolve", "info", f"line {i}") for i in range(1, 6)])
    with s3_app.app_context():
        build = db.session.get(Build, build_id)
        run.fail_attempt(build, 1, "bad package", failure_class="user_error", code="user_error")
        build = db.session.get(Build, build_id)
        log_row = next(a for a in build.artifacts if a.kind == "log")
        store = files.store()
        assert hashlib.sha256(store.get_bytes(log_row.path)).hexdigest() == log_row.sha256
        files.publish([files.artifact_file(a) for a in build.artifacts if a.kind != "log"])
        shutil.rmtree(files.artifacts_dir(build))  # this host never had them (another worker built it)
        redis.client.delete(logs.stream_key(build_id))
        prefix = files.build_prefix(build.org_id, build.id)
    body = client.get(f"/api/builds/{build_id}/logs?after=2", headers=auth_headers).json
    assert [line["message"] for line in body["lines"]] == ["line 3", "line 4", "line 5"]
    assert client.get(f"/api/builds/{build_id}/logs?after=2&limit=1", headers=auth_headers).json["nextAfter"] == 3

    # A later line on a host without the file (a custom test run elsewhere) continues the archived log.
    append_log(s3_app, build_id, [("test", "info", "later")])
    with s3_app.app_context():
        build = db.session.get(Build, build_id)
        run.archive_log(build)
        db.session.commit()
        archived = [json.loads(line) for line in store.get_bytes(f"{prefix}build.log").decode().splitlines()]
    assert [line["seq"] for line in archived] == [1, 2, 3, 4, 5, 6] and archived[-1]["message"] == "later"

    assert client.delete(f"/api/builds/{build_id}", headers=auth_headers).status_code == 204
    with s3_app.app_context():
        assert files.store().size(f"{prefix}build.log") is None
        assert files.store().delete_prefix(prefix) == 0


def test_shared_result_is_materialized_into_another_workers_engine_cache(s3_app, builds, org_id, tmp_path):
    from app.engine.cache import ResultCache
    from app.engine.settings import EngineSettings
    from app.extensions import db
    from app.models import Build
    from app.services.builds import files, results

    build_id = builds.create(org_id, status="succeeded", image=IMAGE, formats=["rootfs"],
                             recipe={"name": "shared", "release": "trixie", "format": "rootfs"})
    with s3_app.app_context():
        build = db.session.get(Build, build_id)
        directory = files.artifacts_dir(build)
        (directory / "manifest.json").write_text('{"name": "shared"}')
        (directory / "sbom.spdx.json").write_text('{"spdxVersion": "SPDX-2.3"}')
        image = next(a for a in build.artifacts if a.kind == "rootfs")
        made = [SimpleNamespace(kind="rootfs", path=files.artifact_file(image), size=image.size, sha256=image.sha256),
                SimpleNamespace(kind="manifest", path=directory / "manifest.json", size=0, sha256=""),
                SimpleNamespace(kind="sbom", path=directory / "sbom.spdx.json", size=0, sha256="")]
        files.publish(a.path for a in made)
        assert results.publish(build, made) == 1

        other = EngineSettings(data_dir=tmp_path / "other-host")  # a worker that never built it
        h = build.recipe_hash
        assert ResultCache(other).lookup(h, ["rootfs"]) is None
        assert results.materialize(build, other, tmp_path / "scratch") is True
        hit = ResultCache(other).lookup(h, ["rootfs"])
        assert hit["rootfs"]["sha256"] == image.sha256
        assert (hit["rootfs"]["dir"] / hit["rootfs"]["filename"]).read_bytes() == IMAGE
        assert not any((tmp_path / "scratch").iterdir())

        # A second build of the recipe that the engine served from that cache: its image is copied in the store.
        second_id = builds.create(org_id, status="succeeded", image=IMAGE, formats=["rootfs"],
                                  recipe={"name": "shared", "release": "trixie", "format": "rootfs"})
        second = db.session.get(Build, second_id)
        second_image = second.artifacts[0]
        made_again = [SimpleNamespace(kind="rootfs", path=files.artifact_file(second_image), size=len(IMAGE),
                                      sha256=image.sha256)]
        assert results.publish_files(second, made_again, cached=True) == 1
        assert files.store().get_bytes(second_image.path) == IMAGE
        assert results.publish_files(second, made_again, cached=False) == 0  # a fresh build uploads

        # The build that held the files is deleted: its index is a miss now, and goes away.
        files.remove_build_files(build.org_id, build.id)
        third = EngineSettings(data_dir=tmp_path / "third-host")
        assert results.materialize(build, third, tmp_path / "scratch") is False
        assert files.store().size(results.index_key(h, "rootfs")) is None


def test_retention_deletes_the_expired_image_from_the_bucket_and_keeps_the_evidence(s3_app, builds, org_id):
    from datetime import timedelta

    from app.extensions import db
    from app.models import Build
    from app.models.base import utcnow
    from app.services.billing import retention
    from app.services.builds import files

    build_id = builds.create(org_id, status="succeeded", image=IMAGE)
    published = _published(s3_app, build_id)
    store = s3_app.extensions["kiln.storage"]
    with s3_app.app_context():
        build = db.session.get(Build, build_id)
        kept = {a.path for a in build.artifacts if a.kind in retention.KEPT_KINDS}
        images = {a.path for a in build.artifacts if a.kind not in retention.KEPT_KINDS}
        assert images and all(store.size(key) is not None for key in images)
        assert retention.expire_artifacts(build, utcnow() + timedelta(days=400)) == len(images)
        db.session.commit()
        assert all(store.size(key) is None for key in images)
        assert all(store.size(key) is not None for key in kept if key in {p for _, p, _ in published})
        assert db.session.get(Build, build_id).artifacts_expired_at is not None
        assert files.store() is store
