"""Reply time of the built-in planner per chat turn, offline, over the conversations of its specification.

    .venv/bin/python bench/planner.py [--rounds N]

The package indexes come from the engine's cache (KILN_DATA_DIR, else instance/data; downloaded once
when missing) and are loaded before timing. Target: p95 under 200 ms per turn on 2 cores (issue 18).
"""
from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.engine.packages import get_index  # noqa: E402
from app.engine.recipe import DEFAULT_RECIPE, validate_recipe  # noqa: E402
from app.engine.settings import EngineSettings  # noqa: E402
from app.planner import plan  # noqa: E402
from tests.planner.test_conversations_spec import SPEC  # noqa: E402

TARGET_MS = 200


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="times to replay every conversation (default 3)")
    args = parser.parse_args()
    settings = EngineSettings.from_config(os.environ)
    indexes = {release: get_index(release, settings) for release in ("trixie", "bookworm")}
    for index in indexes.values():
        index.exists("openssh-server")  # load (or download) before timing

    def index_for(release):
        return indexes[release]

    times: list[float] = []
    slowest: tuple[float, str] = (0.0, "")
    for _ in range(args.rounds):
        for case in SPEC.values():
            recipe = validate_recipe(copy.deepcopy(DEFAULT_RECIPE))
            versions, history = {1: recipe}, []
            for message in case.turns:
                started = time.perf_counter()
                result = plan(message, recipe, index_for=index_for, history=list(history), versions=dict(versions))
                elapsed = (time.perf_counter() - started) * 1000
                times.append(elapsed)
                slowest = max(slowest, (elapsed, message))
                history += [{"role": "user", "content": message}, {"role": "assistant", "content": result.reply}]
                if result.changed:
                    versions[max(versions) + 1] = result.recipe
                recipe = result.recipe
    p95 = statistics.quantiles(times, n=20)[-1]
    print(f"planner: {len(times)} turns ({len(SPEC)} conversations x {args.rounds}), "
          f"median {statistics.median(times):.1f} ms, p95 {p95:.1f} ms, max {max(times):.1f} ms "
          f"({slowest[1]!r})")
    print(f"planner reply time p95: {p95:.1f} ms (target < {TARGET_MS} ms): {'ok' if p95 < TARGET_MS else 'TOO SLOW'}")
    return 0 if p95 < TARGET_MS else 1


if __name__ == "__main__":
    sys.exit(main())
