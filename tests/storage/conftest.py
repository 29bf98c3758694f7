"""A session-scoped SeaweedFS (real S3 on loopback, ~7 s to start) and stores over it."""
from __future__ import annotations

import uuid

import pytest

from tests.fixtures.s3 import seaweedfs_server

BUCKET = "kiln-storage-tests"


@pytest.fixture(scope="session")
def s3_server():
    with seaweedfs_server() as server:
        server.create_bucket(BUCKET)
        yield server


@pytest.fixture
def s3_env(s3_server, monkeypatch):
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    return s3_server


@pytest.fixture
def s3_store(s3_env):
    """An S3Storage under a fresh prefix of the session's bucket (what KILN_STORAGE_URL=s3://bucket/prefix makes)."""
    from app.storage import from_config

    return from_config({"KILN_STORAGE_URL": f"s3://{BUCKET}/t-{uuid.uuid4().hex[:12]}",
                        "KILN_S3_ENDPOINT_URL": s3_env.endpoint_url, "KILN_ARTIFACTS_DIR": "/nonexistent"})


@pytest.fixture
def s3_app(app, s3_store):
    """The test app reading and writing build files in S3 for one test."""
    previous = app.extensions["kiln.storage"]
    app.extensions["kiln.storage"] = s3_store
    yield app
    app.extensions["kiln.storage"] = previous


from tests.builds.conftest import builds, org_id  # noqa: E402,F401 - the builds suite's factories
