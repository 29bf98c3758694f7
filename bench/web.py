"""Load bench of one web process: live log streams, the build list with 10,000 builds, memory.

    .venv/bin/python bench/web.py [--db sqlite|postgresql|both] [--builds 10000] [--streams 200] [--websockets 50]

For each database it starts its own Redis (and PostgreSQL) on loopback, seeds one user with N builds,
starts the production web command (gunicorn with gunicorn.conf.py, one worker, as in the Procfile) and measures:
  - p50/p95 of GET /api/builds (default page) with no other traffic,
  - how many of S concurrent live log streams are answered (SSE /api/streams/builds/{id}, and W of them
    WebSocket /api/builds/{id}/logs/stream), what one more stream beyond them gets (the per-process cap,
    KILN_STREAMS_PER_PROCESS, answers 503 with Retry-After), and the web process's CPU while they wait,
  - p50/p95 and failures of GET /api/builds while those streams are held (thread starvation shows here),
  - resident memory (RSS) of the web process, idle and with the streams open.
Targets (issue 13): streams held with no starvation of other requests; p95 of the list under 100 ms.
All traffic stays on 127.0.0.1. Prints the figures; exits 0 (a bench, not a test).
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fixtures.services import free_port, postgres_server, redis_server  # noqa: E402

TIMEOUT = 10.0  # seconds a request may wait before it counts as starved


def seed(env: dict, builds: int) -> tuple[str, str]:
    """Schema, one user, N builds (one of them building, to stream from). Returns (token, streaming build id)."""
    os.environ.update(env)
    from sqlalchemy import insert, select

    from app import create_app
    from app.extensions import db, redis
    from app.models import Build, BuildStage, User
    from app.services import accounts, tokens
    from app.services.audit import Actor
    from app.services.builds.lifecycle import create_build

    app = create_app()
    with app.app_context():
        db.create_all()
        user = accounts.register_user("bench@example.com", "bench password 123", "Bench")
        db.session.commit()
        from app.models import Organization
        org = db.session.get(Organization, user.default_org_id)
        first = create_build(Actor(user=user), org, "owner", recipe={"name": "bench", "packages": ["openssh-server"]},
                             start=False)
        db.session.commit()
        template = {c.key: getattr(first, c.key) for c in Build.__table__.columns}
        stages = [{c.key: getattr(s, c.key) for c in BuildStage.__table__.columns}
                  for s in db.session.scalars(select(BuildStage).where(BuildStage.build_id == first.id))]
        import uuid
        statuses = ("succeeded", "failed", "cancelled", "succeeded", "pending")
        batch_b, batch_s = [], []
        for n in range(2, builds + 1):
            row = dict(template, id=uuid.uuid4(), number=n, status=statuses[n % len(statuses)])
            batch_b.append(row)
            batch_s.extend(dict(s, id=uuid.uuid4(), build_id=row["id"]) for s in stages)
            if len(batch_b) >= 1000:
                db.session.execute(insert(Build), batch_b)
                db.session.execute(insert(BuildStage), batch_s)
                batch_b, batch_s = [], []
        if batch_b:
            db.session.execute(insert(Build), batch_b)
            db.session.execute(insert(BuildStage), batch_s)
        # The streamed build is running (no worker here), so its streams stay open waiting for lines.
        first.status, first.stage = "building", "bootstrap"
        db.session.commit()
        token, _ = tokens.issue(app.config, redis.client, user.id, user.default_org_id)
        stream_id = str(first.id)
        db.session.remove()
        if db.engine.dialect.name == "postgresql":
            # A real install's 10,000 builds came over months, and autovacuum has analysed (and vacuumed) the
            # table since. Right after this bulk insert PostgreSQL has no statistics yet (it guesses 15 builds
            # for the org), so it sorted every build of the org for each page instead of reading 20 from the
            # index, and counted from the heap instead of the index alone: the bench measured that first minute.
            with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("VACUUM ANALYZE")
        db.engine.dispose()
    return token, stream_id


def rss_kb(pid: int) -> int:
    """RSS of a process and its children (the gunicorn master and its worker)."""
    total = 0
    pids = [pid] + [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    for p in pids:
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its children so far."""
    total = 0
    for p in [pid] + [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]:
        fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / os.sysconf("SC_CLK_TCK")


def probe_stream(port: int, token: str, build_id: str) -> str:
    """One more SSE stream beyond the others: its status line (and Retry-After when refused)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        conn.request("GET", f"/api/streams/builds/{build_id}", headers={"Authorization": f"Bearer {token}"})
        resp = conn.getresponse()
        retry = resp.getheader("Retry-After")
        return f"{resp.status}" + (f" (Retry-After: {retry})" if retry else "")
    except OSError as exc:
        return f"no answer ({exc.__class__.__name__})"
    finally:
        conn.close()


def timed_get(port: int, path: str, token: str) -> float | None:
    started = time.perf_counter()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
        conn.request("GET", path, headers={"Authorization": f"Bearer {token}"})
        resp = conn.getresponse()
        resp.read()
        conn.close()
        if resp.status != 200:
            return None
    except OSError:
        return None
    return time.perf_counter() - started


def list_latencies(port: int, token: str, n: int, concurrency: int = 4) -> tuple[list[float], int]:
    results: list[float | None] = []
    lock = threading.Lock()

    def worker(count: int) -> None:
        starved = 0
        for _ in range(count):
            t = timed_get(port, "/api/builds", token)
            with lock:
                results.append(t)
            starved = starved + 1 if t is None else 0
            if starved >= 3:  # the server does not answer at all: each further try would only wait TIMEOUT again
                return

    threads = [threading.Thread(target=worker, args=(n // concurrency,)) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ok = [r for r in results if r is not None]
    return ok, len(results) - len(ok)


class Streams:
    """S SSE clients on one build; each counts as held once its response headers arrived."""

    def __init__(self, port: int, token: str, build_id: str, count: int, websockets: int = 0):
        self.held = 0
        self.failed = 0
        self.ws_held = 0
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.conns: list[http.client.HTTPConnection] = []
        self.sockets: list = []
        self.threads = [threading.Thread(target=self._run, args=(port, token, build_id), daemon=True)
                        for _ in range(count - websockets)]
        self.threads += [threading.Thread(target=self._run_ws, args=(port, token, build_id), daemon=True)
                         for _ in range(websockets)]

    def _run_ws(self, port: int, token: str, build_id: str) -> None:
        import websocket

        try:
            ws = websocket.create_connection(f"ws://127.0.0.1:{port}/api/builds/{build_id}/logs/stream?token={token}",
                                             timeout=TIMEOUT * 3)
        except (OSError, websocket.WebSocketException):
            with self.lock:
                self.failed += 1
            return
        with self.lock:
            self.held += 1
            self.ws_held += 1
            self.sockets.append(ws)
        try:
            while not self.stop.is_set():
                ws.recv()
        except (OSError, websocket.WebSocketException):
            pass  # closed by close() below

    def _run(self, port: int, token: str, build_id: str) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT * 3)
        with self.lock:
            self.conns.append(conn)
        try:
            conn.request("GET", f"/api/streams/builds/{build_id}",
                         headers={"Authorization": f"Bearer {token}", "Accept": "text/event-stream"})
            resp = conn.getresponse()
            ok = resp.status == 200
        except OSError:
            ok = False
        with self.lock:
            if ok:
                self.held += 1
            else:
                self.failed += 1
        if ok:
            try:
                while not self.stop.is_set() and resp.readline():
                    pass
            except (OSError, ValueError, AttributeError, http.client.HTTPException):
                pass  # closed by close() below

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def close(self) -> None:
        self.stop.set()
        for ws in list(self.sockets):
            try:
                ws.close(timeout=0.5)
            except Exception:  # noqa: BLE001 - the bench is ending; a half-closed socket is fine
                pass
        for conn in list(self.conns):
            try:
                conn.sock and conn.sock.shutdown(2)
            except OSError:
                pass
            conn.close()


def _stop(web: subprocess.Popen) -> None:
    web.send_signal(signal.SIGQUIT)  # gunicorn's quick stop: open streams would hold a graceful one
    try:
        web.wait(15)
    except subprocess.TimeoutExpired:
        web.kill()
        web.wait()


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))] * 1000


def bench(kind: str, builds: int, streams: int, websockets: int, requests: int) -> dict:
    with ExitStack() as stack:
        redis_url = stack.enter_context(redis_server())
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kiln-webbench-")))
        database_url = stack.enter_context(postgres_server()) if kind == "postgresql" else f"sqlite:///{work / 'kiln.db'}"
        port = free_port()
        env = {
            "DATABASE_URL": database_url, "REDIS_URL": redis_url, "SECRET_KEY": "bench-secret-key",
            "KILN_INSTANCE_PATH": str(work / "instance"), "KILN_DATA_DIR": str(work / "data"),
            "KILN_RATE_LIMIT": "1000000 per minute", "ARGON2_TIME_COST": "1", "ARGON2_MEMORY_COST": "8192",
            "ARGON2_PARALLELISM": "1", "KILN_LOG_LEVEL": "WARNING",
            # Unlimited tier: the API rate then is KILN_RATE_LIMIT (a free org's 60 a minute would refuse the load).
            "KILN_DEFAULT_TIER": "enterprise",
        }
        started = time.monotonic()
        token, stream_id = seed(env, builds)
        print(f"  [{kind}] seeded {builds} builds in {time.monotonic() - started:.1f}s", flush=True)
        # The production web command (Procfile: gunicorn.conf.py), one worker.
        web = subprocess.Popen(
            [str(ROOT / ".venv/bin/gunicorn"), "-c", str(ROOT / "gunicorn.conf.py"), "--workers", "1",
             "--bind", f"127.0.0.1:{port}"],
            cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        stack.callback(_stop, web)
        deadline = time.time() + 60
        while timed_get(port, "/api/health", token) is None:
            if time.time() > deadline or web.poll() is not None:
                raise RuntimeError("the web process did not come up")
            time.sleep(0.3)
        list_latencies(port, token, 20)  # warm-up
        idle_rss = rss_kb(web.pid)
        cpu_from = cpu_seconds(web.pid)
        alone, alone_failed = list_latencies(port, token, requests)
        # CPU the web process spends per list request: unlike latency, hardly moved by other load on the machine.
        list_cpu_ms = (cpu_seconds(web.pid) - cpu_from) * 1000 / max(1, len(alone) + alone_failed)
        held = Streams(port, token, stream_id, streams, websockets)
        held.start()
        time.sleep(min(TIMEOUT, 3 + streams / 50))
        beyond = probe_stream(port, token, stream_id)
        idle_cpu_from, idle_from = cpu_seconds(web.pid), time.monotonic()
        time.sleep(5)  # the streams alone: what waiting costs the process
        streams_cpu = (cpu_seconds(web.pid) - idle_cpu_from) / (time.monotonic() - idle_from)
        during, during_failed = list_latencies(port, token, requests)
        streams_rss = rss_kb(web.pid)
        result = {
            "db": kind, "builds": builds,
            "list_p50_ms": pct(alone, 0.5), "list_p95_ms": pct(alone, 0.95), "list_failed": alone_failed,
            "list_cpu_ms": list_cpu_ms,
            "streams": streams, "streams_held": held.held, "streams_refused": held.failed,
            "websockets": websockets, "websockets_held": held.ws_held, "stream_beyond": beyond,
            "streams_cpu_percent": streams_cpu * 100,
            "list_with_streams_p50_ms": pct(during, 0.5), "list_with_streams_p95_ms": pct(during, 0.95),
            "list_with_streams_failed": during_failed,
            "rss_idle_mb": idle_rss / 1024, "rss_with_streams_mb": streams_rss / 1024,
        }
        held.close()
        return result


def main() -> int:
    # A SIGTERM (timeout, Ctrl-C in make) unwinds the ExitStacks, so no web server, Redis or PostgreSQL is left behind.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--builds", type=int, default=10_000)
    parser.add_argument("--streams", type=int, default=200, help="live log streams held at once")
    parser.add_argument("--websockets", type=int, default=50, help="how many of those are WebSockets (the rest SSE)")
    parser.add_argument("--requests", type=int, default=200, help="GET /api/builds requests per measurement")
    args = parser.parse_args()
    kinds = ("sqlite", "postgresql") if args.db == "both" else (args.db,)
    rows = []
    for kind in kinds:
        print(f"== web bench on {kind}", flush=True)
        rows.append(bench(kind, args.builds, args.streams, args.websockets, args.requests))
    print("\n== results (target: list p95 < 100 ms; every stream held, no failed list request while streaming)")
    for r in rows:
        print(f"{r['db']:>10}: {r['builds']} builds | GET /api/builds p50 {r['list_p50_ms']:.1f} ms, "
              f"p95 {r['list_p95_ms']:.1f} ms, failed {r['list_failed']}; web CPU {r['list_cpu_ms']:.1f} ms per request")
        print(f"{'':>10}  {r['streams']} log streams ({r['streams'] - r['websockets']} SSE, {r['websockets']} WebSocket): "
              f"held {r['streams_held']} ({r['websockets_held']} WebSocket), refused {r['streams_refused']}; "
              f"one more stream: {r['stream_beyond']}; web CPU while they wait {r['streams_cpu_percent']:.0f}%")
        print(f"{'':>10}  GET /api/builds while the streams are open: p50 {r['list_with_streams_p50_ms']:.1f} ms, "
              f"p95 {r['list_with_streams_p95_ms']:.1f} ms, failed/starved {r['list_with_streams_failed']}")
        print(f"{'':>10}  web process RSS: idle {r['rss_idle_mb']:.0f} MB, with streams {r['rss_with_streams_mb']:.0f} MB")
    load = os.getloadavg()
    print(f"(machine load average while benching: {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} on {os.cpu_count()} "
          "CPUs; latencies grow with it)")
    print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
