"""Factory workers through the real registration code: listed, lost after their own silence, stats from builds."""
from __future__ import annotations

import time

from app.extensions import redis
from app.services.ops import workers


def test_registered_workers_are_listed_and_a_silent_one_is_lost(app, client, admin_headers):
    with app.app_context():
        caps = {"formats": ["iso"], "accel": "tcg", "cores": 2, "disk_free_bytes": 10 * 1024**3,
                "data_dir": app.config["KILN_DATA_DIR"]}
        app.config["KILN_WORKER_LOST_AFTER"] = 1.0
        try:
            alive = workers.register("alive", ["builds", "tests"], dict(caps))
            workers.register("silent", ["builds"], dict(caps))
        finally:
            app.config["KILN_WORKER_LOST_AFTER"] = 60.0
        time.sleep(1.3)
        workers.heartbeat(alive)
    listed = client.get("/api/factory-workers", headers=admin_headers).json
    assert [(w["name"], w["status"]) for w in listed["workers"]] == [("alive", "online"), ("silent", "lost")]
    assert listed["online"] == 1 and listed["lost"] == 1 and listed["totalCount"] == 2
    summary = client.get("/api/factory-workers/health-summary", headers=admin_headers).json
    assert summary["status"] == "degraded"
    assert any("silent" in p for p in summary["problems"])

    with app.app_context():
        workers.unregister("silent")
        workers.unregister("alive")
        assert redis.client.hlen(workers.REGISTRY_KEY) == 0
    summary = client.get("/api/factory-workers/health-summary", headers=admin_headers).json
    assert summary["status"] == "down" and summary["workersOnline"] == 0


def test_stats_come_from_the_builds_table(app, client, admin_headers, site_admin):
    from tests.builds.conftest import BuildFactory

    builds = BuildFactory(app)
    org = site_admin.default_org_id
    builds.create(org, status="succeeded", started_ago=100)
    builds.create(org, status="failed", failure_class="user_error", started_ago=10)
    builds.create(org, status="failed", failure_class="infrastructure", started_ago=10)
    builds.create(org, status="succeeded", started_ago=300)
    stats = client.get("/api/factory-workers/stats?hours=2", headers=admin_headers).json
    assert stats["windowHours"] == 2
    assert stats["buildsFinished"] == 4 and stats["jobsPerHour"] == 2.0
    assert 195 <= stats["meanBuildSeconds"] <= 205
    assert stats["failuresByClass"] == {"user_error": 1, "infrastructure": 1}
    assert stats["failureRateByClass"] == {"user_error": 0.25, "infrastructure": 0.25}
    assert stats["buildsByStatus"] == {"succeeded": 2, "failed": 2}
    assert set(stats["queueDepths"]) == {"builds", "tests", "webhooks", "default"}


def test_stats_window_is_validated(client, admin_headers):
    answer = client.get("/api/factory-workers/stats?hours=0", headers=admin_headers)
    assert answer.status_code == 400
    assert answer.json["error"]["code"] == "VALIDATION_ERROR" and "hours" in answer.json["error"]["details"]
