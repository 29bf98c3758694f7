"""Planner fixtures: the real Debian package indexes (trixie and bookworm), loaded once per session.

The indexes are cached under KILN_TEST_DATA_DIR when set (shared with the engine tests), else in
the app's default data directory, so after the first download the planner tests take seconds.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from app.engine.packages import get_index
from app.engine.recipe import DEFAULT_RECIPE
from app.engine.settings import EngineSettings, host_mirror


@pytest.fixture(scope="session")
def index_for():
    configured = os.environ.get("KILN_TEST_DATA_DIR")
    data_dir = Path(configured).resolve() if configured else EngineSettings.from_config(os.environ).data_dir
    settings = EngineSettings(data_dir=data_dir, mirror=host_mirror())
    indexes = {release: get_index(release, settings) for release in ("trixie", "bookworm")}
    for index in indexes.values():
        assert index.exists("openssh-server")  # downloads (or loads) the index now, once

    def lookup(release: str):
        return indexes[release]

    return lookup


@pytest.fixture
def converse(index_for):
    """converse("msg1", "msg2", start=recipe) -> list of PlanResult, each turn starting from the last recipe."""
    from app.planner import plan

    def run(*messages: str, start: dict | None = None):
        recipe = start if start is not None else DEFAULT_RECIPE
        results = []
        for message in messages:
            result = plan(message, recipe, index_for=index_for)
            results.append(result)
            recipe = result.recipe
        return results

    return run
