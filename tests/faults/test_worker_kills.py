"""20 workers SIGKILLed at random moments while they run real builds: every build ends succeeded or failed
(a lost attempt is retried as the next one), none is stuck, none is finished twice, and what the dead
workers left (processes, mounts, temp trees) is gone once the next worker has started.

The moments are seeded; the seed is printed, and KILN_FAULT_SEED=<seed> replays a run.
"""
from __future__ import annotations

import hashlib
import os
import random
import signal
import time
from pathlib import Path

import pytest

from tests.builds.workers import _procs_under, wait_for
from tests.faults.conftest import all_log_lines, audit_actions, build_rows, outbox_types, rootfs_recipe

pytestmark = pytest.mark.slow

BUILDS = 6
KILLS = 20
MAX_ATTEMPTS = 4


def _mounts_under(path: Path) -> list[str]:
    return [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()
            if line.split()[1].startswith(str(path) + "/")]


@pytest.mark.timeout(600)
def test_sigkilled_workers_lose_no_build_and_leave_nothing_behind(app, client, factory, workers, engine_data_dir,
                                                                  built_rootfs):
    seed = int(os.environ.get("KILN_FAULT_SEED") or time.time_ns() % 2**32)
    print(f"\nworker-kill fault seed: {seed} (replay with KILN_FAULT_SEED={seed})")
    rng = random.Random(seed)
    owner = factory.user(email="kills@example.com")
    headers = factory.headers(owner)
    build_ids = []
    for i in range(BUILDS):
        resp = client.post("/api/builds", json={"recipe": rootfs_recipe(f"k{i}")}, headers=headers)
        assert resp.status_code == 201, resp.get_data(as_text=True)
        build_ids.append(resp.json["id"])

    settings = {"KILN_BUILD_MAX_ATTEMPTS": MAX_ATTEMPTS}
    scratch = engine_data_dir / "workers"
    # A worker takes seconds to start (imports, the app): the next one starts while the current one works,
    # so there are two at a time and the kills come every few seconds, not every start-up.
    starting = [(f"kill-{n}", workers(f"kill-{n}", **settings)) for n in range(2)]
    killed = []
    for n in range(KILLS):
        name, worker = starting.pop(0)
        # Up once it holds its scratch space (reclaiming the dead ones' came first).
        wait_for(lambda: (scratch / name).is_dir() or worker.proc.poll() is not None, 180, f"{name} to start",
                 interval=0.1)
        assert worker.proc.poll() is None, worker.log_path.read_text()[-3000:]
        if n + 2 < KILLS:
            starting.append((f"kill-{n + 2}", workers(f"kill-{n + 2}", **settings)))
        time.sleep(rng.uniform(0.2, 8.0))
        running = {i[:8]: (b.status, b.stage, b.attempt) for i, b in build_rows(app, build_ids).items()
                   if b.worker_name == name and b.status in ("building", "testing")}
        # Half the time only the Python processes die (the OOM killer, `kill -9`): the engine's commands,
        # in sessions of their own, live on; else the whole tree goes, as when a container dies.
        whole_tree = rng.random() < 0.5
        worker.kill(signal.SIGKILL) if whole_tree else worker.kill_python()
        killed.append(name)
        print(f"kill {n}: {name}, {'whole tree' if whole_tree else 'python only'}, was running {running}", flush=True)

    last = workers("survivor", **settings)

    def finished():
        rows = build_rows(app, build_ids)
        return rows if all(b.is_terminal for b in rows.values()) else None

    rows = wait_for(finished, 300, "every build to finish after the kills", interval=2)
    assert last.proc.poll() is None, last.log_path.read_text()[-3000:]

    # Nothing of the dead workers is left: the survivor reclaimed their scratch at its start or on its timer.
    wait_for(lambda: not any((scratch / name).exists() for name in killed), 60,
             "the survivor to reclaim every dead worker's scratch")
    for name in killed:
        assert _procs_under(scratch / name) == [] and _mounts_under(scratch / name) == [], name
    for cache in ("results", "base"):
        # The cache entries the dead workers were making (staging dirs, with mmdebstrap's mounts and commands).
        directory = engine_data_dir / "cache" / cache
        assert [p.name for p in directory.iterdir() if p.name.startswith(".tmp-")] == [], cache
        assert _procs_under(directory) == [] and _mounts_under(directory) == [], cache

    outcomes = {}
    for build_id, build in rows.items():
        history = build.attempts or []
        lost = [a for a in history if a["failureCode"] == "worker_lost"]
        assert [a["attempt"] for a in history] == list(range(1, len(history) + 1)), (build_id, history)
        assert len(lost) == len(history), (build_id, history)  # nothing but the kills went wrong
        events = outbox_types(app, build_id)
        actions = audit_actions(app, build_id)
        # Finished once: one terminal event and one terminal state, whatever the attempts did.
        assert events.count("build.completed") + events.count("build.failed") == 1, (build_id, events)
        assert events.count("build.started") <= build.attempt, (build_id, events)
        assert actions.count("build.retry_scheduled") == len(history) - (build.status == "failed"), actions
        if build.status == "succeeded":
            assert len(history) == build.attempt - 1 and events[-1] == "build.completed"
            # An attempt killed after the engine stored its result leaves the next one a cached result to reuse.
            assert {s.status for s in build.stages} == ({"skipped"} if build.cached else {"succeeded"}), \
                [(s.name, s.status) for s in build.stages]
            images = [a for a in build.artifacts if a.kind == "rootfs"]
            assert len(images) == 1 and len({a.filename for a in build.artifacts}) == len(build.artifacts)
            path = Path(app.config["KILN_ARTIFACTS_DIR"]) / images[0].path
            assert hashlib.sha256(path.read_bytes()).hexdigest() == images[0].sha256
        else:
            assert build.status == "failed", (build_id, build.status)
            assert build.failure_code == "worker_lost" and build.attempt == MAX_ATTEMPTS == len(history)
            assert events[-1] == "build.failed"
            assert not any(s.status == "running" for s in build.stages)
        lines = all_log_lines(client, headers, build_id)
        seqs = [line["seq"] for line in lines]
        # In order and nothing twice. Not necessarily gap-free: a worker killed between taking a seq and
        # writing its line leaves that seq unused (seen once in about ten runs on a loaded machine).
        assert seqs == sorted(set(seqs)) and seqs[0] == 1, build_id
        started = [line["message"] for line in lines if " started on " in line["message"]]
        assert len(started) <= events.count("build.started"), (build_id, started)
        outcomes[build_id] = (build.status, build.attempt)
    print("outcomes:", sorted(outcomes.values()))
    assert sum(len(b.attempts or []) for b in rows.values()) > 0, "no kill hit a running build"
