"""Faults of the services Kiln depends on: a stopped Redis gives a clean 503 in the error envelope."""
from __future__ import annotations

import shutil
import subprocess
import tempfile

import pytest

from tests.conftest import PASSWORD
from tests.fixtures.services import _wait_port, free_port


@pytest.fixture
def own_redis():
    """A Redis of this test only, so the test can stop it (the session's Redis serves everyone else)."""
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="kiln-redis-fault-")
    proc = subprocess.Popen([shutil.which("redis-server"), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", workdir],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    _wait_port(port, proc, "redis-server")
    yield f"redis://127.0.0.1:{port}/0", proc
    if proc.poll() is None:
        proc.terminate()
        proc.wait(10)
    shutil.rmtree(workdir, ignore_errors=True)


def test_auth_answers_503_when_redis_is_down(app, app_config, factory, own_redis):
    from app import create_app

    url, proc = own_redis
    user = factory.user(email="redis-down@example.com")
    faulty = create_app({**app_config, "REDIS_URL": url, "RATELIMIT_STORAGE_URI": url})
    client = faulty.test_client()
    login = client.post("/api/auth/login", json={"email": user.email, "password": PASSWORD})
    assert login.status_code == 200
    bearer = {"Authorization": f"Bearer {login.json['token']}"}
    assert client.get("/api/auth/me", headers=bearer).status_code == 200

    proc.terminate()
    proc.wait(10)
    for resp in (client.post("/api/auth/login", json={"email": user.email, "password": PASSWORD}),
                 client.get("/api/auth/me", headers=bearer)):
        assert resp.status_code == 503, resp.get_data(as_text=True)
        error = resp.json["error"]
        assert error["code"] == "SERVICE_UNAVAILABLE" and "Redis" in error["message"] and error["traceId"]
        assert resp.headers["Retry-After"] == "5"
