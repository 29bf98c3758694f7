"""A build's log: every line in `build.log` (JSON Lines, in the build's directory) as it is written, and
in a bounded Redis stream for live readers.

Every line carries `seq`, an integer that only grows within a build (attempts and custom test runs
included). The stream entry id is `<seq>-0`, so "everything after seq N" is one XRANGE and a reconnecting
client resumes exactly where it stopped. The stream is trimmed to KILN_BUILD_LOG_MAXLEN and expires after
the build; the file keeps every line, so a reader the stream no longer serves reads the file instead, and
the archived log (the `log` artifact, with its sha256) is the whole log.

While Redis is unreachable a line still gets the next seq (from the file) and goes to the file; it waits
in this process and joins the stream, in order, before the next line once Redis is back, so a live reader
following `?after=` sees no gap and nothing twice.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import redis as redis_lib
from flask import current_app

from app.extensions import redis
from app.services.builds import files
from app.services.builds.files import artifacts_dir

LOG_FILENAME = "build.log"
# How long the stream stays in Redis once the log is archived (live readers finish from Redis).
ARCHIVED_STREAM_TTL = 3600
# INCR, XADD and the file write of one line happen together, so a process writes its lines in seq order
# (the engine's reader threads and the cancel watch write to the same build).
_append_lock = threading.Lock()
# build id -> lines of this process written to the file while Redis was unreachable, waiting for the stream.
_offline: dict[str, list[dict]] = {}
# One download of an archived log at a time (it happens outside _append_lock: a store call can take seconds).
_fetch_lock = threading.Lock()


def _reset_locks() -> None:
    """RQ forks a work horse while the worker's reaper thread may be appending (holding a lock): the child gets
    fresh locks, or its first log line would wait forever for a thread that does not exist in it."""
    global _append_lock, _fetch_lock
    _append_lock, _fetch_lock = threading.Lock(), threading.Lock()


os.register_at_fork(after_in_child=_reset_locks)
log = logging.getLogger("kiln.builds")


def stream_key(build_id) -> str:
    return f"kiln:build:{build_id}:log"


def seq_key(build_id) -> str:
    return f"kiln:build:{build_id}:logseq"


def log_path(build) -> Path:
    return artifacts_dir(build) / LOG_FILENAME


def log_key(build) -> str:
    return f"{files.build_prefix(build.org_id, build.id)}{LOG_FILENAME}"


def _ensure_local(build, path: Path) -> None:
    """A host writing to a build's log for the first time (a custom test run after the build, elsewhere) starts
    from the archived log in the shared store, so the lines it adds and archives follow the earlier ones."""
    store = files.store()
    if path.exists() or not store.shared:
        return
    with _fetch_lock:
        if path.exists():
            return
        try:
            store.get_file(log_key(build), path)
        except files.ObjectMissing:
            pass
        except files.StorageError:
            log.exception("build %s: the archived log could not be fetched", build.id)


def _from_store(build, after: int, limit: int) -> list[dict]:
    """Lines of the archived log in the shared store (the web process of another host has no local file)."""
    store = files.store()
    if not store.shared:
        return []
    try:
        chunks = store.iter_range(log_key(build))
    except files.ObjectMissing:
        return []
    lines: list[dict] = []
    pending = b""
    for chunk in chunks:
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for raw in complete:
            if raw.strip() and (item := json.loads(raw))["seq"] > after:
                lines.append(item)
                if len(lines) >= limit:
                    return lines
    if pending.strip() and (item := json.loads(pending))["seq"] > after:
        lines.append(item)
    return lines[:limit]


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def append(build, stage: str | None, level: str, message: str, *, client=None) -> int:
    """Append one line to the file and the stream; returns its seq."""
    client = client or redis.client
    path = log_path(build)
    _ensure_local(build, path)
    with _append_lock:
        try:
            _catch_up(build.id, client)
            seq = int(client.incr(seq_key(build.id)))
            if seq == 1 and (last := _last_seq_on_disk(path)):
                # The counter expired with the stream after an earlier archive: go on from the file's last line.
                seq = int(client.incrby(seq_key(build.id), last))
            online = True
        except (redis_lib.ConnectionError, redis_lib.TimeoutError):
            waiting = _offline.get(str(build.id))
            seq = max(_last_seq_on_disk(path), waiting[-1]["seq"] if waiting else 0) + 1
            online = False
        line = {"seq": seq, "timestamp": _now_iso(), "level": level or "info", "stage": stage or None,
                "message": message}
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a", encoding="utf-8") as out:
                out.write(json.dumps(line, ensure_ascii=False) + "\n")
        except OSError:
            log.exception("build %s: log line %s not written to %s", build.id, seq, path)
        if online:
            try:
                _to_stream(build.id, line, client)
                return seq
            except (redis_lib.ConnectionError, redis_lib.TimeoutError):
                pass
        if not _offline.get(str(build.id)):
            log.warning("build %s: Redis unreachable; log lines from %s wait in %s for the stream", build.id, seq, path)
        _offline.setdefault(str(build.id), []).append(line)
    return seq


def _to_stream(build_id, line: dict, client) -> None:
    maxlen = int(current_app.config["KILN_BUILD_LOG_MAXLEN"])
    try:
        client.xadd(stream_key(build_id), {**line, "stage": line["stage"] or ""}, id=f"{line['seq']}-0",
                    maxlen=maxlen, approximate=True)
    except redis_lib.ResponseError:
        # Another process wrote a later line first; live readers get this one from the file.
        log.warning("build %s: log line %s is out of order for the stream", build_id, line["seq"])


def _catch_up(build_id, client) -> None:
    """Redis is back: the counter moves past the lines written while it was away, and they join the stream in
    order (if it goes away again halfway, the rest keep waiting)."""
    waiting = _offline.get(str(build_id))
    if not waiting:
        return
    last = waiting[-1]["seq"]
    counter = int(client.get(seq_key(build_id)) or 0)
    if counter < last:
        client.incrby(seq_key(build_id), last - counter)
    while waiting:
        _to_stream(build_id, waiting[0], client)
        waiting.pop(0)
    del _offline[str(build_id)]


def _entry(fields: dict) -> dict:
    def s(key: str) -> str:
        value = fields.get(key.encode(), fields.get(key, b""))
        return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)

    return {"seq": int(s("seq")), "timestamp": s("timestamp"), "level": s("level"), "stage": s("stage") or None,
            "message": s("message")}


def _from_redis(build_id, after: int, limit: int, client) -> tuple[list[dict], int | None]:
    """Lines after `after` from the stream, and the first seq the stream still holds (None when empty)."""
    first = client.xrange(stream_key(build_id), count=1)
    if not first:
        return [], None
    first_seq = int(first[0][0].split(b"-")[0])
    entries = client.xrange(stream_key(build_id), min=f"{after + 1}-0", count=limit)
    return [_entry(fields) for _id, fields in entries], first_seq


def _from_file(path: Path, after: int, limit: int) -> list[dict]:
    lines: list[dict] = []
    if not path.is_file():
        return lines
    with path.open("r", encoding="utf-8") as fh:
        for raw in fh:
            if not raw.strip():
                continue
            item = json.loads(raw)
            if item["seq"] <= after:
                continue
            lines.append(item)
            if len(lines) >= limit:
                break
    return lines


def _last_seq_on_disk(path: Path) -> int:
    if not path.is_file():
        return 0
    with path.open("rb") as fh:
        fh.seek(0, 2)
        fh.seek(max(0, fh.tell() - 65536))
        tail = fh.read().splitlines()
    for raw in reversed(tail):
        try:
            return int(json.loads(raw)["seq"])
        except (ValueError, KeyError, TypeError):
            continue
    return 0


def read(build, after: int = 0, limit: int = 1000, *, client=None) -> list[dict]:
    """Lines with seq > after, oldest first, with no gap: the stream while it still holds the line after
    the cursor, else the file."""
    client = client or redis.client
    after = max(0, int(after or 0))
    lines, first_seq = _from_redis(build.id, after, limit, client)
    if first_seq is not None and first_seq <= after + 1:
        return lines
    path = log_path(build)
    if not path.is_file():
        return _from_store(build, after, limit) or lines
    return _from_file(path, after, limit) or lines


def iter_all(build, *, client=None) -> Iterator[dict]:
    after = 0
    while True:
        batch = read(build, after, 2000, client=client)
        if not batch:
            return
        yield from batch
        after = batch[-1]["seq"]


def wait_for_lines(build_id, after: int, timeout: float, *, client=None) -> bool:
    """Block up to `timeout` seconds for a line after `after`; True when one arrived."""
    client = client or redis.client
    result = client.xread({stream_key(build_id): f"{after}-0"}, count=1, block=max(1, int(timeout * 1000)))
    return bool(result)


def archive(build, *, client=None) -> tuple[Path, int, str] | None:
    """Make `build.log` whole and ordered (the file, plus any line only the stream holds); return
    (path, size, sha256), or None when the build has no log. The stream then expires."""
    client = client or redis.client
    path = log_path(build)
    _ensure_local(build, path)
    by_seq: dict[int, dict] = {}
    if path.is_file():
        with path.open("r", encoding="utf-8") as fh:
            for raw in fh:
                if raw.strip():
                    item = json.loads(raw)
                    by_seq[item["seq"]] = item
    after = 0
    try:
        while True:
            batch, _first = _from_redis(build.id, after, 2000, client)
            if not batch:
                break
            for item in batch:
                by_seq.setdefault(item["seq"], item)
            after = batch[-1]["seq"]
    except (redis_lib.ConnectionError, redis_lib.TimeoutError):
        # Redis is away at the build's end: every line this process wrote is in the file already.
        log.warning("build %s: Redis unreachable; archiving the log from %s alone", build.id, path)
    if not by_seq:
        return None
    digest = hashlib.sha256()
    tmp = path.with_suffix(".log.tmp")
    try:
        with tmp.open("w", encoding="utf-8") as out:
            for seq in sorted(by_seq):
                line = json.dumps(by_seq[seq], ensure_ascii=False) + "\n"
                out.write(line)
                digest.update(line.encode())
        tmp.replace(path)
    except OSError as err:
        # A full disk must not keep the build from finishing: the stream keeps the lines (it is not set to
        # expire), and the next archive (a custom test run's end) tries again.
        tmp.unlink(missing_ok=True)
        log.warning("build %s: log not archived to %s: %s", build.id, path, err)
        return None
    try:
        client.expire(stream_key(build.id), ARCHIVED_STREAM_TTL)
        client.expire(seq_key(build.id), ARCHIVED_STREAM_TTL)
    except (redis_lib.ConnectionError, redis_lib.TimeoutError):
        pass  # the stream then stays until the build is deleted; the archive is whole either way
    return path, path.stat().st_size, digest.hexdigest()


def forget(build_id, *, client=None) -> None:
    client = client or redis.client
    client.delete(stream_key(build_id), seq_key(build_id))


def as_text(line: dict) -> str:
    stage = f" [{line['stage']}]" if line.get("stage") else ""
    return f"{line['timestamp']} {line['level'].upper():7}{stage} {line['message']}"


def last_seq(build, *, client=None) -> int:
    client = client or redis.client
    value = client.get(seq_key(build.id))
    return int(value) if value else 0
