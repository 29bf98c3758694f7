"""Factory workers: each `python worker.py` registers what it can do and heartbeats into Redis.

One Redis hash holds every worker (name -> JSON). A heartbeat rewrites the worker's entry with Redis's
own clock, so hosts with drifting clocks still agree on who is silent. A worker with no heartbeat for
its KILN_WORKER_LOST_AFTER seconds (set on the worker's host, beside its heartbeat interval) is shown as lost (its builds are the build reaper's business, which judges
them by their own per-build heartbeats); a lost entry is forgotten after KILN_WORKER_FORGET_AFTER. A worker
that stops cleanly removes its entry.

The statistics come from the builds table (the source of truth), the queue depths from RQ.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from flask import current_app
from sqlalchemy import func, select

from app import queues
from app.version import __version__
from app.engine.recipe import FORMATS
from app.engine.testing.vm import VMSettings, choose_accel
from app.extensions import db, redis
from app.models import Build, BuildStage
from app.models.base import utcnow
from app.models.builds import ACTIVE_STATUSES, FAILURE_CLASSES, TERMINAL_STATUSES, TEST_STAGE

REGISTRY_KEY = "kiln:factory-workers"
LOW_DISK_BYTES = 5 * 1024**3  # below this a worker cannot hold one image build's scratch space


def now_epoch() -> float:
    seconds, micros = redis.client.time()
    return seconds + micros / 1_000_000


def capabilities(config) -> dict:
    """What this host offers. The accelerator is the engine's own KVM probe (forced by KILN_QEMU_ACCEL)."""
    data_dir = config["KILN_DATA_DIR"]
    return {"formats": list(FORMATS), "accel": choose_accel(VMSettings.from_config(config)),
            "cores": os.cpu_count() or 1, "disk_free_bytes": shutil.disk_usage(data_dir).free,
            "data_dir": data_dir}


def register(name: str, worker_queues: list[str], caps: dict) -> dict:
    """The worker says how long a silence means it is lost: it knows its own heartbeat interval."""
    entry = {"name": name, "hostname": socket.gethostname(), "pid": os.getpid(), "queues": list(worker_queues),
             "version": __version__, "capabilities": caps, "started_at": now_epoch(),
             "lost_after": float(current_app.config["KILN_WORKER_LOST_AFTER"])}
    heartbeat(entry)
    return entry


def heartbeat(entry: dict) -> None:
    """Refresh the entry (free disk changes as builds come and go) and forget long-lost workers."""
    stamp = now_epoch()
    caps = entry["capabilities"]
    try:
        caps["disk_free_bytes"] = shutil.disk_usage(caps["data_dir"]).free
    except OSError:
        pass
    entry["last_heartbeat_at"] = stamp
    redis.client.hset(REGISTRY_KEY, entry["name"], json.dumps(entry))
    forget = float(current_app.config["KILN_WORKER_FORGET_AFTER"])
    for other in _entries():
        if stamp - other["last_heartbeat_at"] > forget:
            redis.client.hdel(REGISTRY_KEY, other["name"])


def unregister(name: str) -> None:
    redis.client.hdel(REGISTRY_KEY, name)


def _entries() -> list[dict]:
    found = []
    for raw in redis.client.hvals(REGISTRY_KEY):
        try:
            found.append(json.loads(raw))
        except ValueError:
            continue
    return found


def _at(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=timezone.utc)


@dataclass
class FactoryWorker:
    name: str
    hostname: str
    pid: int
    queues: list[str]
    version: str
    capabilities: dict
    started_at: datetime
    last_heartbeat_at: datetime
    seconds_since_heartbeat: float
    status: str  # online | lost
    active_builds: list[str] = field(default_factory=list)


def list_workers() -> list[FactoryWorker]:
    """Every registered worker, online ones first, with the builds it is running now."""
    default_lost_after = float(current_app.config["KILN_WORKER_LOST_AFTER"])
    now = now_epoch()
    running: dict[str, list[str]] = {}
    for build_id, worker_name in db.session.execute(
            select(Build.id, Build.worker_name).where(Build.status.in_(ACTIVE_STATUSES))):
        running.setdefault(worker_name or "", []).append(str(build_id))
    workers = []
    for entry in _entries():
        silent = max(now - entry["last_heartbeat_at"], 0.0)
        lost_after = float(entry.get("lost_after") or default_lost_after)
        workers.append(FactoryWorker(
            name=entry["name"], hostname=entry["hostname"], pid=entry["pid"], queues=entry["queues"],
            version=entry["version"], capabilities=entry["capabilities"], started_at=_at(entry["started_at"]),
            last_heartbeat_at=_at(entry["last_heartbeat_at"]), seconds_since_heartbeat=round(silent, 1),
            status="lost" if silent > lost_after else "online", active_builds=running.get(entry["name"], [])))
    workers.sort(key=lambda w: (w.status != "online", w.name))
    return workers


def queue_depths() -> dict[str, int]:
    return {name: queues.get_queue(name).count for name in queues.QUEUE_NAMES}


def _seconds(start, end) -> float | None:
    if start is None or end is None:
        return None
    return max((end - start).total_seconds(), 0.0)


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 1) if values else None


def stats(hours: int) -> dict:
    """Throughput and quality of the factory over the last `hours`, from the builds table."""
    since = utcnow() - timedelta(hours=hours)
    finished = db.session.execute(
        select(Build.status, Build.failure_class, Build.started_at, Build.finished_at)
        .where(Build.status.in_(TERMINAL_STATUSES), Build.finished_at >= since)).all()
    build_seconds = [s for status, _, start, end in finished if status == "succeeded"
                     for s in [_seconds(start, end)] if s is not None]
    test_seconds = list(db.session.scalars(
        select(BuildStage.duration).join(Build, Build.id == BuildStage.build_id)
        .where(BuildStage.name == TEST_STAGE[0], BuildStage.duration.is_not(None), Build.finished_at >= since)))
    ended = [row for row in finished if row.status != "cancelled"]
    failures = {cls: sum(1 for row in ended if row.status == "failed" and row.failure_class == cls)
                for cls in FAILURE_CLASSES}
    unclassified = sum(1 for row in ended if row.status == "failed" and row.failure_class not in FAILURE_CLASSES)
    if unclassified:
        failures["unclassified"] = unclassified
    by_status = {status: count for status, count in db.session.execute(
        select(Build.status, func.count()).group_by(Build.status))}
    return {
        "window_hours": hours,
        "queue_depths": queue_depths(),
        "builds_by_status": by_status,
        "builds_finished": len(finished),
        "jobs_per_hour": round(len(finished) / hours, 2),
        "mean_build_seconds": _mean(build_seconds),
        "mean_test_seconds": _mean(test_seconds),
        "failures_by_class": failures,
        "failure_rate_by_class": {cls: round(n / len(ended), 4) if ended else 0.0 for cls, n in failures.items()},
    }


def health_summary() -> dict:
    """One verdict for a status page or an alert: ok, degraded (something needs a look) or down (nothing
    can build)."""
    workers = list_workers()
    online = [w for w in workers if w.status == "online"]
    lost = [w for w in workers if w.status == "lost"]
    depths = queue_depths()
    problems = []
    if not online:
        problems.append("No factory worker is online: start `python worker.py` on a build host")
    for worker in lost:
        problems.append(f"Worker {worker.name} has not sent a heartbeat for {worker.seconds_since_heartbeat:.0f} s")
    for worker in online:
        if worker.capabilities.get("disk_free_bytes", LOW_DISK_BYTES) < LOW_DISK_BYTES:
            problems.append(f"Worker {worker.name} has less than 5 GB free in {worker.capabilities.get('data_dir')}")
        if worker.capabilities.get("accel") != "kvm":
            problems.append(f"Worker {worker.name} boots test VMs without KVM (TCG): tests run several times slower")
    serving = {q for w in online for q in w.queues}
    for name, depth in depths.items():
        if depth and name not in serving:
            problems.append(f"{depth} job(s) wait in the '{name}' queue and no online worker serves it")
    oldest = db.session.scalar(select(func.min(Build.queued_at)).where(Build.status == "queued"))
    status = "down" if not online else ("degraded" if problems else "ok")
    return {"status": status, "workers_online": len(online), "workers_lost": len(lost), "queue_depths": depths,
            "oldest_queued_seconds": round(_seconds(oldest, utcnow()), 1) if oldest else None,
            "problems": problems}
