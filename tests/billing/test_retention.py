"""Retention and the billing cycle: image files past the tier's retention are deleted by the scheduled job,
the build keeps its record, manifest and SBOM, and its page says the files expired."""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path


def _build_with_files(app, billing, org_id, finished_ago: timedelta):
    """A succeeded build with an image, a manifest and an SBOM on disk, finished `finished_ago`."""
    import hashlib

    from app.extensions import db
    from app.models import Build, BuildArtifact
    from app.models.base import utcnow
    from app.services.builds import files

    build_id = billing.build(org_id, status="succeeded", ran=timedelta(minutes=1))
    with app.app_context():
        build = db.session.get(Build, build_id)
        build.finished_at = utcnow() - finished_ago
        directory = files.build_dir(build)
        paths = {}
        for kind, name, body in (("iso", "web.iso", b"image" * 100), ("manifest", "manifest.json", b"{}"),
                                 ("sbom", "sbom.spdx.json", b"{}")):
            path = directory / name
            path.write_bytes(body)
            db.session.add(BuildArtifact(build_id=build.id, kind=kind, filename=name, path=files.relative_path(path),
                                         size=len(body), sha256=hashlib.sha256(body).hexdigest()))
            paths[kind] = path
        db.session.commit()
    return build_id, paths


def test_cycle_expires_images_past_retention_and_keeps_manifest_and_sbom(app, client, auth_headers, billing, org_id,
                                                                          logged_in_client):
    from app.extensions import db
    from app.models import Build
    from app.tasks.billing import run_billing_cycle

    billing.put_on(org_id, billing.tier(retention_days=7))
    old, old_paths = _build_with_files(app, billing, org_id, timedelta(days=7, minutes=1))
    recent, recent_paths = _build_with_files(app, billing, org_id, timedelta(days=6, hours=23))
    with app.app_context():
        assert run_billing_cycle()["expired"] == 1
        assert run_billing_cycle()["expired"] == 0  # twice: nothing more
        assert db.session.get(Build, old).artifacts_expired_at is not None
        assert db.session.get(Build, recent).artifacts_expired_at is None
    assert not old_paths["iso"].exists()
    assert old_paths["manifest"].exists() and old_paths["sbom"].exists()
    assert all(p.exists() for p in recent_paths.values())
    kinds = [a["kind"] for a in client.get(f"/api/builds/{old}/artifacts", headers=auth_headers).get_json()["artifacts"]]
    assert sorted(kinds) == ["manifest", "sbom"]
    assert client.get(f"/api/builds/{old}", headers=auth_headers).get_json()["artifactsExpiredAt"] is not None
    page = logged_in_client.get(f"/builds/{old}").get_data(as_text=True)
    assert "image files of this build expired" in page
    assert "image files of this build expired" not in logged_in_client.get(f"/builds/{recent}").get_data(as_text=True)


def test_unlimited_retention_keeps_everything(app, billing, org_id):
    from app.tasks.billing import run_billing_cycle

    _, paths = _build_with_files(app, billing, org_id, timedelta(days=4000))  # the test org's tier: unlimited
    with app.app_context():
        assert run_billing_cycle()["expired"] == 0
    assert all(p.exists() for p in paths.values())


def test_cycle_grants_the_month_and_schedules_the_next_hour(app, billing, org_id):
    from rq.registry import ScheduledJobRegistry

    from app import queues
    from app.models.base import utcnow
    from app.services.billing import ledger
    from app.tasks.billing import cycle_job_id, run_billing_cycle, schedule_cycle

    billing.put_on(org_id, billing.tier(llm_tokens_per_month=70))
    with app.app_context():
        run_billing_cycle()
        assert ledger.balance(org_id) == 70
        now = utcnow().replace(minute=0, second=0, microsecond=0)
        next_id = cycle_job_id(now + timedelta(hours=1))
        registry = ScheduledJobRegistry(queue=queues.get_queue("default"))
        assert next_id in registry.get_job_ids()
        # A worker starting meanwhile leaves the scheduled cycle alone.
        assert schedule_cycle(now + timedelta(hours=1)) == next_id
        assert registry.get_job_ids().count(next_id) == 1


def test_cycle_warns_admins_at_80_and_100_percent_once(app, client, factory, user, auth_headers, billing, org_id):
    from app.tasks.billing import run_billing_cycle

    billing.put_on(org_id, billing.tier(members=2, storage_mb=10))
    factory.add_member(org_id, factory.user(email="m@example.com"), role="member")
    billing.build(org_id, status="succeeded", artifact_size=8 * 1024 * 1024)  # 80% of storage
    billing.build(org_id, status="succeeded", artifact_size=512 * 1024)  # 85%: still the one warning
    with app.app_context():
        run_billing_cycle()
        run_billing_cycle()
    rows = client.get("/api/notifications?limit=100", headers=auth_headers).get_json()["notifications"]
    titles = sorted(n["title"] for n in rows if n["kind"] == "billing.quota")
    assert titles == ["Alice's workspace is at 80% of its artifact storage limit",
                      "Alice's workspace reached its members limit"]
    assert all(n["link"] == "/billing" for n in rows)
