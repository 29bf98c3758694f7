"""Events fixtures: a real HTTP receiver on loopback, the webhooks queue run by a real RQ worker, builds."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.builds.conftest import BuildFactory


class Receiver:
    """An HTTP server on 127.0.0.1 that records every request and answers `status` (settable per test)."""

    def __init__(self):
        self.requests: list[dict] = []
        self.status = 200
        self.headers: dict = {}
        self.body = b"ok"
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode()
                receiver.requests.append({"path": self.path, "headers": dict(self.headers.items()), "body": body})
                self.send_response(receiver.status)
                for key, value in receiver.headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(receiver.body)))
                self.end_headers()
                self.wfile.write(receiver.body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str = "/hook", host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def payloads(self) -> list[dict]:
        return [json.loads(r["body"]) for r in self.requests]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    rec = Receiver()
    yield rec
    rec.close()


@pytest.fixture
def allow_private(app, monkeypatch):
    """The receiver lives on 127.0.0.1: deliver there as a self-hoster who turned the setting on would."""
    monkeypatch.setitem(app.config, "KILN_WEBHOOK_ALLOW_PRIVATE", True)


@pytest.fixture
def run_webhook_jobs(app):
    """Run every job queued on `webhooks` with a real RQ worker (burst, in this process) until none is left."""
    from rq import SimpleWorker
    from rq.serializers import JSONSerializer

    from app.extensions import redis
    from app.queues import WEBHOOKS_QUEUE, webhooks_queue as _queue

    def run() -> None:
        with app.app_context():
            worker = SimpleWorker([_queue()], connection=redis.client, serializer=JSONSerializer)
            worker.work(burst=True)
            failed = _queue().failed_job_registry
            assert failed.count == 0, f"{WEBHOOKS_QUEUE} jobs failed: {failed.get_job_ids()}"

    return run


@pytest.fixture
def builds(app):
    return BuildFactory(app)


@pytest.fixture
def org_id(user):
    return user.default_org_id


@pytest.fixture(autouse=True)
def _fresh_tenant_per_request(app):
    """As in tests/builds: each test request gets a clean tenant cache (pytest-flask keeps one app context)."""
    from flask import g, request_started

    def _clear(sender, **extra):
        g.pop("current_org", None)
        g.pop("current_role", None)

    request_started.connect(_clear, app)
    yield
    request_started.disconnect(_clear, app)
