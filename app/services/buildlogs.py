"""Build log lines: a bounded Redis stream while a build runs, an archived file (`build.log`) once it ends.

Every line carries `seq`, an integer that only grows within a build (attempts included). The stream entry
id is `<seq>-0`, so "everything after seq N" is one XRANGE and a reconnecting client resumes exactly where
it stopped. The archive is JSON Lines (one `{"seq","timestamp","level","stage","message"}` per line) so a
reader can resume from it the same way after Redis trimmed or expired the stream.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from flask import current_app

from app.extensions import redis

LOG_FILENAME = "build.log"
# How long the stream stays in Redis after the archive is written (live readers finish from Redis).
ARCHIVED_STREAM_TTL = 3600


def stream_key(build_id) -> str:
    return f"kiln:build:{build_id}:log"


def seq_key(build_id) -> str:
    return f"kiln:build:{build_id}:logseq"


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def append(build_id, stage: str | None, level: str, message: str, *, client=None) -> int:
    """Append one line; returns its seq. One writer per build (the job), so INCR then XADD keeps ids ordered."""
    client = client or redis.client
    seq = int(client.incr(seq_key(build_id)))
    fields = {"seq": seq, "timestamp": _now_iso(), "level": level or "info", "stage": stage or "",
              "message": message}
    maxlen = int(current_app.config.get("KILN_BUILD_LOG_MAXLEN", 50000))
    client.xadd(stream_key(build_id), fields, id=f"{seq}-0", maxlen=maxlen, approximate=True)
    return seq


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


def archive_path(build) -> Path:
    from app.services.builds import artifacts_dir

    return artifacts_dir(build) / LOG_FILENAME


def _from_archive(path: Path, after: int, limit: int) -> list[dict]:
    lines: list[dict] = []
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


def read(build, after: int = 0, limit: int = 1000, *, client=None) -> list[dict]:
    """Lines with seq > after, oldest first, with no gap when it can be avoided.

    Redis answers while it still holds the line after the cursor; once the stream was trimmed past the
    cursor (or expired) the archived file answers instead.
    """
    client = client or redis.client
    after = max(0, int(after or 0))
    lines, first_seq = _from_redis(build.id, after, limit, client)
    if first_seq is not None and first_seq <= after + 1:
        return lines
    path = archive_path(build)
    if path.is_file():
        return _from_archive(path, after, limit)
    return lines  # still running and trimmed: the best the stream has


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
    """Write the whole stream to `build.log` (JSON Lines); return (path, size, sha256), or None if no lines.

    Lines already in an earlier archive of this build (an earlier attempt) are kept: the file is rewritten
    from the old file + whatever Redis holds beyond it.
    """
    import hashlib

    client = client or redis.client
    path = archive_path(build)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".log.tmp")
    digest = hashlib.sha256()
    count = 0
    with tmp.open("w", encoding="utf-8") as out:
        last = 0
        if path.is_file():
            with path.open("r", encoding="utf-8") as old:
                for raw in old:
                    if raw.strip():
                        item = json.loads(raw)
                        last = item["seq"]
                        line = json.dumps(item, ensure_ascii=False) + "\n"
                        out.write(line)
                        digest.update(line.encode())
                        count += 1
        while True:
            batch, _first = _from_redis(build.id, last, 2000, client)
            if not batch:
                break
            for item in batch:
                line = json.dumps(item, ensure_ascii=False) + "\n"
                out.write(line)
                digest.update(line.encode())
                count += 1
            last = batch[-1]["seq"]
    if count == 0:
        tmp.unlink(missing_ok=True)
        return None
    tmp.replace(path)
    client.expire(stream_key(build.id), ARCHIVED_STREAM_TTL)
    client.expire(seq_key(build.id), ARCHIVED_STREAM_TTL)
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

