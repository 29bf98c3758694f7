"""The billing page in headless Chromium: each usage bar shows the API's numbers, warnings appear at 80% and
100%, and the page holds at desktop and phone widths (screenshots in KILN_TEST_SCREENSHOTS or a tmp dir)."""
from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest

from tests.conftest import PASSWORD
from tests.fixtures.browser import login

pytestmark = pytest.mark.browser
MB = 1024 * 1024
GEOMETRY = (Path(__file__).resolve().parent.parent / "fixtures" / "layout.js").read_text()


def test_usage_bars_match_the_api(browser, live_server_url, client, auth_headers, user, billing, org_id,
                                  tmp_path_factory):
    billing.put_on(org_id, billing.tier(concurrent_builds=4, storage_mb=10, members=1, builds_per_month=40,
                                        build_minutes_per_month=100, llm_tokens_per_month=5000))
    billing.build(org_id, status="queued")
    billing.build(org_id, status="succeeded", ran=timedelta(minutes=3), artifact_size=9 * MB)
    api = {row["key"]: row for row in client.get("/api/billing/plan-summary", headers=auth_headers)
           .get_json()["limits"]}
    shots = Path(os.environ.get("KILN_TEST_SCREENSHOTS") or tmp_path_factory.mktemp("billing-shots"))
    shots.mkdir(parents=True, exist_ok=True)
    for width, height in ((1280, 900), (390, 844)):
        context = browser.new_context(base_url=live_server_url, viewport={"width": width, "height": height})
        page = context.new_page()
        errors = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        try:
            login(page, user.email, PASSWORD)
            page.goto("/billing")
            rows = page.eval_on_selector_all("#billing-usage .usage-row", """rows => rows.map(r => {
                const bar = r.querySelector('progress');
                return {key: r.dataset.limit, text: r.innerText, value: bar ? bar.value : null,
                        max: bar ? bar.max : null, state: r.className};
            })""")
            assert [r["key"] for r in rows] == list(api)
            for row in rows:
                expected = api[row["key"]]
                if expected["limit"] is None:
                    assert row["value"] is None and "unlimited" in row["text"]
                    continue
                assert row["max"] == expected["limit"]
                assert row["value"] == min(expected["used"], expected["limit"])
                assert f"{expected['percentage']:g}%" in row["text"]
                assert f"usage-{expected['state']}" in row["state"]
            # 90% of storage warns; 1 member of 1 is at the limit.
            warnings = page.locator(".quota-warning").all_inner_texts()
            assert any("Nearly at the limit" in w and "artifact storage" in w for w in warnings)
            assert any("Limit reached" in w and "members" in w for w in warnings)
            assert "5,000" in page.locator(".token-balance").inner_text()
            assert page.locator("svg.balance-chart").count() == 1
            geometry = page.evaluate(GEOMETRY)
            assert geometry["scrollWidth"] <= geometry["width"] + 1, geometry["overflow"]
            assert geometry["overlaps"] == []
            page.screenshot(path=str(shots / f"billing-{width}.png"), full_page=True, animations="disabled")
            assert errors == []
        finally:
            context.close()
