"""GET /metrics: Prometheus text that the official parser reads, whose counters move when a build ends."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

RECIPE = {"name": "web", "release": "trixie", "format": "iso", "packages": ["openssh-server"]}
ROOT = Path(__file__).resolve().parents[2]


def _samples(text: str) -> dict:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def _value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def _scrape(client, headers) -> dict:
    answer = client.get("/metrics", headers=headers)
    assert answer.status_code == 200, answer.data[:500]
    assert answer.content_type.startswith("text/plain")
    return _samples(answer.get_data(as_text=True))


def _run_like_a_worker(app, build_id, *, fail: bool):
    """What a worker does to a queued build, through the same services (the engine's work left out)."""
    from app.extensions import db
    from app.models import Build
    from app.services.builds import run

    with app.app_context():
        build = db.session.get(Build, uuid.UUID(build_id))
        assert run.begin_attempt(build, 1, "metrics-test-worker")
        run.set_stage(build, 1, "resolve", "running")
        run.set_stage(build, 1, "resolve", "succeeded")
        if fail:
            assert run.fail_attempt(build, 1, "package nope does not exist", failure_class="user_error",
                                    code="user_error") == "failed"
        else:
            assert run.succeed(build, 1) == "succeeded"


def test_metrics_parse_and_counters_move_after_builds(app, client, admin_headers, site_admin):
    before = _scrape(client, admin_headers)
    assert _value(before, "kiln_builds_finished_total", status="succeeded", failure_class="") == 0

    started = [client.post("/api/builds", headers=admin_headers, json={"recipe": RECIPE}) for _ in range(2)]
    assert all(s.status_code == 202 or s.status_code == 201 for s in started), [s.json for s in started]
    client.get(f"/api/builds/{started[0].json['id']}", headers=admin_headers)
    queued = _scrape(client, admin_headers)
    assert _value(queued, "kiln_queue_depth", queue="builds") == 2
    assert _value(queued, "kiln_builds", status="queued", failure_class="") == 2

    _run_like_a_worker(app, started[0].json["id"], fail=False)
    _run_like_a_worker(app, started[1].json["id"], fail=True)
    after = _scrape(client, admin_headers)
    assert _value(after, "kiln_builds_finished_total", status="succeeded", failure_class="") == 1
    assert _value(after, "kiln_builds_finished_total", status="failed", failure_class="user_error") == 1
    assert _value(after, "kiln_build_duration_seconds_count", status="succeeded") == 1
    assert _value(after, "kiln_build_stage_duration_seconds_count", stage="resolve") == 2
    assert _value(after, "kiln_build_cache_hit_ratio") == 0.0
    # Requests are counted by their URL rule, so one series serves every build id.
    route = "/api/builds/<build_id>"
    assert _value(after, "kiln_http_requests_total", method="GET", route=route, status="200") >= 1
    assert _value(after, "kiln_http_request_duration_seconds_count", method="GET", route=route) >= 1
    assert _value(after, "kiln_http_requests_total", method="GET", route="/metrics", status="200") \
        > _value(before, "kiln_http_requests_total", method="GET", route="/metrics", status="200")
    assert not any(dict(labels).get("route", "").startswith("/api/builds/" + started[0].json["id"])
                   for _, labels in after)


def test_metrics_token_and_refusals(app, client, admin_headers, someone_headers):
    assert client.get("/metrics").status_code == 401
    refused = client.get("/metrics", headers=someone_headers)
    assert refused.status_code == 403 and refused.json["error"]["code"] == "FORBIDDEN"
    app.config["KILN_METRICS_TOKEN"] = "prometheus-scrapes-with-this"
    try:
        assert client.get("/metrics", headers={"Authorization": "Bearer prometheus-scrapes-with-this"}).status_code == 200
        wrong = client.get("/metrics", headers={"Authorization": "Bearer not-the-token"})
        assert wrong.status_code == 401 and wrong.json["error"]["code"] == "UNAUTHORIZED"
    finally:
        app.config["KILN_METRICS_TOKEN"] = ""


def test_multiprocess_mode_sums_the_processes(app_config, tmp_path):
    """Under gunicorn (PROMETHEUS_MULTIPROC_DIR set) each process writes its own file; a scrape from any
    process sees the requests every process answered."""
    multiproc = tmp_path / "prometheus"
    multiproc.mkdir()
    script = textwrap.dedent("""
        import json, sys
        from app import create_app
        config = json.loads(sys.argv[1])
        config["KILN_METRICS_TOKEN"] = "t"
        app = create_app(config)
        client = app.test_client()
        for _ in range(int(sys.argv[2])):
            client.get("/api/version")
        if sys.argv[3] == "scrape":
            print(client.get("/metrics", headers={"Authorization": "Bearer t"}).get_data(as_text=True))
    """)
    import json

    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(multiproc)}
    config = json.dumps({k: v for k, v in app_config.items() if isinstance(v, (str, int, bool, type(None)))})
    subprocess.run([sys.executable, "-c", script, config, "3", "no"], cwd=ROOT, env=env, check=True)
    out = subprocess.run([sys.executable, "-c", script, config, "2", "scrape"], cwd=ROOT, env=env, check=True,
                         capture_output=True, text=True).stdout
    samples = _samples(out)
    assert _value(samples, "kiln_http_requests_total", method="GET", route="/api/version", status="200") == 5


def test_open_log_streams_are_counted(app, client, admin_headers, live_server_url):
    """Over a real HTTP server: an SSE log stream that is following a build counts in kiln_active_log_streams."""
    import requests

    build_id = client.post("/api/builds", headers=admin_headers, json={"recipe": RECIPE}).json["id"]

    def scrape():
        answer = requests.get(f"{live_server_url}/metrics", headers=admin_headers, timeout=30)
        assert answer.status_code == 200
        return _value(_samples(answer.text), "kiln_active_log_streams")

    before = scrape()
    with requests.get(f"{live_server_url}/api/streams/builds/{build_id}", headers=admin_headers, stream=True,
                      timeout=30) as stream:
        assert stream.status_code == 200
        for line in stream.iter_lines():
            if line.startswith(b"event: status"):
                break  # the stream is following the build now
        assert scrape() == before + 1
