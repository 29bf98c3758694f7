"""The Redis keys a worker and the API talk through: heartbeats and the cancel flag.

A heartbeat belongs to one attempt of a build (or to one test run): an earlier attempt that is still
beating somewhere can never make the reaper believe the current attempt is alive.
"""
from __future__ import annotations

from flask import current_app

from app.extensions import redis

CANCEL_KEY = "kiln:build:{}:cancel"
HEARTBEAT_KEY = "kiln:build:{}:heartbeat:{}"
TEST_RUN_HEARTBEAT_KEY = "kiln:testrun:{}:heartbeat"
# The cancel flag outlives any realistic build, so a job that starts late still sees it.
CANCEL_TTL = 7 * 24 * 3600


def heartbeat_key(build_id, attempt: int) -> str:
    return HEARTBEAT_KEY.format(build_id, int(attempt))


def test_run_heartbeat_key(test_run_id) -> str:
    return TEST_RUN_HEARTBEAT_KEY.format(test_run_id)


def beat(key: str, worker_name: str) -> None:
    redis.client.set(key, worker_name, ex=int(current_app.config["KILN_BUILD_HEARTBEAT_TTL"]))


def alive(key: str) -> bool:
    return bool(redis.client.exists(key))


def clear(*keys: str) -> None:
    if keys:
        redis.client.delete(*keys)


def request_cancel(build_id) -> None:
    client = redis.client
    client.set(CANCEL_KEY.format(build_id), "1", ex=CANCEL_TTL)
    client.publish(CANCEL_KEY.format(build_id), "1")


def cancel_requested(build_id) -> bool:
    return bool(redis.client.exists(CANCEL_KEY.format(build_id)))


def forget_build(build_id, attempts: int) -> None:
    clear(CANCEL_KEY.format(build_id), *(heartbeat_key(build_id, n) for n in range(1, int(attempts) + 1)))
