"""The workers page in Chromium: two real `python worker.py` processes register, one is killed and shows as
lost on the page without a reload (htmx polling), the other stays online."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.builds.workers import WorkerProcess
from tests.conftest import PASSWORD
from tests.fixtures.browser import login


# Two worker processes starting (each probes KVM before it registers): most of a minute on a shared machine.
pytestmark = pytest.mark.slow


@pytest.fixture
def two_workers(app, engine_data_dir, tmp_path, monkeypatch):
    # WorkerProcess passes this process's environment on: beat every second, lost after three silent ones.
    monkeypatch.setenv("KILN_WORKER_HEARTBEAT_INTERVAL", "1")
    monkeypatch.setenv("KILN_WORKER_LOST_AFTER", "3")
    workers = [WorkerProcess(app, engine_data_dir, tmp_path / f"{name}.log", name, ("default",))
               for name in ("factory-a", "factory-b")]
    yield workers
    for worker in workers:
        worker.stop()


def test_workers_page_shows_both_workers_and_one_going_lost(app, page, site_admin, two_workers, client,
                                                            admin_headers):
    login(page, site_admin.email, PASSWORD)
    page.goto("/ops/workers")
    rows = page.locator("#factory-workers tr[data-worker]")
    # Registration waits for each worker's KVM probe: allow the two processes time to start.
    for name in ("factory-a", "factory-b"):
        page.locator(f'tr[data-worker="{name}"][data-status="online"]').wait_for(timeout=90_000)
    assert rows.count() == 2

    listed = client.get("/api/factory-workers", headers=admin_headers).json
    assert {w["name"]: w["status"] for w in listed["workers"]} == {"factory-a": "online", "factory-b": "online"}
    worker_a = next(w for w in listed["workers"] if w["name"] == "factory-a")
    assert worker_a["pid"] == two_workers[0].proc.pid
    assert worker_a["queues"] == ["default"]
    assert worker_a["capabilities"]["accel"] in ("kvm", "tcg")
    assert worker_a["capabilities"]["cores"] >= 1 and worker_a["capabilities"]["diskFreeBytes"] > 0
    assert set(worker_a["capabilities"]["formats"]) == {"iso", "qcow2", "rootfs", "oci"}

    two_workers[1].kill()  # SIGKILL: no goodbye, the heartbeats just stop
    page.locator('tr[data-worker="factory-b"][data-status="lost"]').wait_for(timeout=30_000)
    assert page.locator('tr[data-worker="factory-a"]').get_attribute("data-status") == "online"
    assert "1 online · 1 lost" in page.locator(".ops-health").inner_text()
    assert page.locator(".ops-problems").inner_text().count("factory-b") == 1
    summary = client.get("/api/factory-workers/health-summary", headers=admin_headers).json
    assert summary["workersOnline"] == 1 and summary["workersLost"] == 1 and summary["status"] == "degraded"
    assert page.console_errors == []
    # Readable at desktop, tablet and phone widths: the page never scrolls sideways (the table scrolls in its box).
    shots = Path(os.environ.get("KILN_SCREENSHOT_DIR", "."))
    for width in (1280, 768, 390):
        page.set_viewport_size({"width": width, "height": 900})
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), width
        if os.environ.get("KILN_SCREENSHOT_DIR"):
            page.screenshot(path=str(shots / f"ops-workers-{width}.png"), full_page=True)
