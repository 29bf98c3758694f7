"""Lifecycle rules in one place, outbox events with the state change, the reaper, test-run requests."""
from __future__ import annotations



import pytest

from app.models.builds import BUILD_STATUSES, TRANSITIONS
from tests.builds.conftest import beat


def _load(app, build_id):
    from app.extensions import db
    from app.models import Build

    return db.session.get(Build, build_id)


def _events(app, build_id):
    from sqlalchemy import select

    from app.extensions import db
    from app.models import OutboxEvent

    return [e.type for e in db.session.scalars(select(OutboxEvent).where(OutboxEvent.entity_id == str(build_id))
                                               .order_by(OutboxEvent.created_at))]


def test_transition_table_is_enforced(app, builds, org_id):
    from app.services.builds.lifecycle import transition
    from app.services.errors import Conflict

    for source in BUILD_STATUSES:
        for target in BUILD_STATUSES:
            build_id = builds.create(org_id, status=source)
            with app.app_context():
                build = _load(app, build_id)
                if target in TRANSITIONS[source]:
                    transition(build, target)
                    assert _load(app, build_id).status == target
                else:
                    with pytest.raises(Conflict):
                        transition(build, target)
                    assert _load(app, build_id).status == source, (source, target)


def test_terminal_states_are_final_even_for_stale_objects(app, builds, org_id):
    """A worker holding an old copy of the row cannot overwrite a cancel (conditional UPDATE)."""
    from sqlalchemy import update

    from app.extensions import db
    from app.models import Build
    from app.services.builds.lifecycle import transition
    from app.services.errors import Conflict

    build_id = builds.create(org_id, status="building")
    with app.app_context():
        build = _load(app, build_id)
        assert build.status == "building"
        with db.engine.begin() as other:  # another process (the API) cancels meanwhile
            other.execute(update(Build).where(Build.id == build_id).values(status="cancelled"))
        with pytest.raises(Conflict):
            transition(build, "succeeded")
        assert _load(app, build_id).status == "cancelled"


def test_outbox_events_written_with_state_changes(app, builds, org_id):
    from app.extensions import db
    from app.services.builds import run

    build_id = builds.create(org_id, status="queued")
    with app.app_context():
        build = _load(app, build_id)
        assert run.begin_attempt(build, 1, "worker-1")
        assert _events(app, build_id) == ["build.started"]
        assert run.succeed(build, 1) == "succeeded"
        assert _events(app, build_id) == ["build.started", "build.completed"]
    failed = builds.create(org_id, status="building")
    with app.app_context():
        run.fail_attempt(_load(app, failed), 1, "unknown package foo", failure_class="user_error", code="user_error")
        assert _events(app, failed) == ["build.failed"]
        assert _load(app, failed).attempt == 1  # user errors are not retried
        db.session.rollback()


def test_cancel_writes_event_and_audit(client, auth_headers, builds, org_id, app):
    from sqlalchemy import select

    from app.extensions import db
    from app.models import AuditRecord

    build_id = builds.create(org_id, status="building")
    assert client.post(f"/api/builds/{build_id}/cancel", headers=auth_headers).status_code == 200
    with app.app_context():
        assert _events(app, build_id) == ["build.cancelled"]
        actions = db.session.scalars(select(AuditRecord.action).where(AuditRecord.entity_id == str(build_id))).all()
        assert "build.cancelled" in actions


def test_infrastructure_failures_retry_twice_then_fail(app, builds, org_id):
    from app import queues
    from app.services.builds import run

    build_id = builds.create(org_id, status="building")
    with app.app_context():
        for attempt in (1, 2):
            build = _load(app, build_id)
            assert run.fail_attempt(build, attempt, "mirror unreachable", failure_class="infrastructure",
                                    code="build_error", retryable=True) == "retried"
            build = _load(app, build_id)
            assert build.status == "queued" and build.attempt == attempt + 1
            assert queues.get_queue("builds").get_job_ids()[-1] == queues.build_job_id(build_id, attempt + 1)
            assert run.begin_attempt(build, attempt + 1, "worker-2")
        build = _load(app, build_id)
        assert run.fail_attempt(build, 3, "mirror unreachable", failure_class="infrastructure",
                                code="build_error", retryable=True) == "failed"
        build = _load(app, build_id)
        assert build.status == "failed" and build.attempt == 3
        assert [a["attempt"] for a in build.attempts] == [1, 2, 3]
        assert build.failure_class == "infrastructure"


def test_reaper_marks_silent_builds_worker_lost_and_retries(app, builds, org_id, client, auth_headers):
    from app.services.builds import reaper

    lost = builds.create(org_id, status="building", started_ago=600, worker_name="dead-worker")
    alive = builds.create(org_id, status="building", started_ago=600, worker_name="live-worker")
    fresh = builds.create(org_id, status="building", started_ago=1, worker_name="new-worker")
    # An earlier attempt still beating somewhere does not keep the current attempt alive.
    superseded = builds.create(org_id, status="building", started_ago=600, attempt=2, worker_name="w2")
    beat(app, alive, worker="live-worker")
    beat(app, superseded, attempt=1, worker="w1")
    with app.app_context():
        outcomes = dict(reaper.reap())
    assert outcomes == {str(lost): "retried", str(superseded): "retried"}
    body = client.get(f"/api/builds/{lost}", headers=auth_headers).json
    assert body["status"] == "queued" and body["attempt"] == 2
    assert body["attempts"][0]["failureCode"] == "worker_lost" and body["attempts"][0]["worker"] == "dead-worker"
    assert body["failureCode"] == "worker_lost"
    assert client.get(f"/api/builds/{alive}", headers=auth_headers).json["status"] == "building"
    assert client.get(f"/api/builds/{fresh}", headers=auth_headers).json["status"] == "building"


def test_reads_never_change_a_build_the_reaper_does(app, builds, org_id, client, auth_headers):
    """A GET (and a live stream) only reads; the workers' reaper fails the lost attempt."""
    from app.services.builds import reaper

    lost = builds.create(org_id, status="testing", started_ago=600, attempt=3)
    assert client.get(f"/api/builds/{lost}/status", headers=auth_headers).json["status"] == "testing"
    assert client.get(f"/api/builds/{lost}", headers=auth_headers).json["status"] == "testing"
    assert client.get(f"/api/streams/builds/{lost}?after=0", headers=auth_headers,
                      buffered=False).status_code == 200
    assert client.get(f"/api/builds/{lost}", headers=auth_headers).json["status"] == "testing"
    with app.app_context():
        assert dict(reaper.reap()) == {str(lost): "failed"}
    detail = client.get(f"/api/builds/{lost}", headers=auth_headers).json
    assert detail["status"] == "failed"
    assert detail["failureCode"] == "worker_lost" and detail["failureClass"] == "infrastructure"


def test_job_for_finished_or_stale_build_does_nothing(app, builds, org_id):
    from app.tasks.builds import run_build

    done = builds.create(org_id, status="succeeded")
    queued = builds.create(org_id, status="queued", attempt=2)
    with app.app_context():
        assert run_build(str(done), 1) == "skipped"
        assert run_build(str(queued), 1) == "skipped"  # attempt 1's job arriving late
        assert _load(app, queued).status == "queued"


def test_tests_endpoint_get_and_post(client, auth_headers, builds, org_id, app):
    build_id = builds.create(org_id, status="succeeded", image=b"iso")
    empty = client.get(f"/api/builds/{build_id}/tests", headers=auth_headers).json
    assert empty["status"] == "pending" and empty["tests"] == []
    bad = client.post(f"/api/builds/{build_id}/tests", headers=auth_headers,
                      json={"assertions": [{"type": "port_open", "params": {"port": 22}},
                                           {"type": "teleport", "params": {}},
                                           {"type": "port_open", "params": {"port": "x"}}]})
    assert bad.status_code == 400
    assert set(bad.json["error"]["details"]) == {"assertions[1]", "assertions[2]"}
    missing = client.post(f"/api/builds/{build_id}/tests", headers=auth_headers, json={})
    assert missing.status_code == 400 and "assertions" in missing.json["error"]["details"]
    ok = client.post(f"/api/builds/{build_id}/tests", headers=auth_headers,
                     json={"assertions": [{"type": "port_open", "params": {"port": 22}}]})
    assert ok.status_code == 202 and ok.json["status"] == "queued"
    from app import queues

    with app.app_context():
        assert queues.get_queue("tests").get_job_ids() == [f"tests-{ok.json['testRunId']}"]
    pending = client.get(f"/api/builds/{build_id}/tests", headers=auth_headers).json
    assert pending["status"] == "pending" and pending["testRunId"] == ok.json["testRunId"]
    # Not finished, or not bootable: 409.
    running = builds.create(org_id, status="building")
    assert client.post(f"/api/builds/{running}/tests", headers=auth_headers,
                       json={"assertions": [{"type": "boots", "params": {}}]}).status_code == 409
    rootfs = builds.create(org_id, status="succeeded", formats=["rootfs"], image=b"tar")
    assert client.post(f"/api/builds/{rootfs}/tests", headers=auth_headers,
                       json={"assertions": [{"type": "boots", "params": {}}]}).status_code == 409


def test_test_results_shape(client, auth_headers, builds, org_id, app):
    from app.extensions import db
    from app.models import TestCase, TestRun

    build_id = builds.create(org_id, status="succeeded", image=b"iso")
    with app.app_context():
        run = TestRun(build_id=build_id, status="failed", kind="default")
        db.session.add(run)
        db.session.flush()
        db.session.add(TestCase(test_run_id=run.id, position=0, description="SSH answers", status="failed",
                                duration=1.5, assertions=[{"type": "port_open", "params": {"port": 22},
                                                           "result": "failed", "message": "closed"}]))
        db.session.commit()
    body = client.get(f"/api/builds/{build_id}/tests", headers=auth_headers).json
    assert body["status"] == "failed"
    assert body["tests"] == [{"description": "SSH answers", "status": "failed", "duration": 1.5,
                              "assertions": [{"type": "port_open", "params": {"port": 22}, "result": "failed",
                                              "message": "closed"}]}]




def test_a_boot_the_emulator_failed_twice_is_not_blamed_on_the_image(app, builds, org_id):
    """The runner's `boots` error (two fresh VMs died before init in different ways, or QEMU failed twice)
    is an infrastructure failure of the attempt; a boot that failed the same way twice is the image's."""
    from app.extensions import db
    from app.models import TestCase, TestRun
    from app.services.builds.run import emulator_failure

    build_id = builds.create(org_id, status="succeeded", image=b"iso")
    with app.app_context():
        runs = {}
        for result in ("error", "failed"):
            run = TestRun(build_id=build_id, status="failed", kind="default")
            db.session.add(run)
            db.session.flush()
            db.session.add(TestCase(test_run_id=run.id, position=0, description="Boot verification", status="failed",
                                    duration=9.0, assertions=[{"type": "boots", "params": {}, "result": result,
                                                               "message": f"boot {result}: QEMU was killed"}]))
            runs[result] = run
        db.session.commit()
        assert emulator_failure(runs["error"]) == "boot error: QEMU was killed"
        assert emulator_failure(runs["failed"]) is None


def test_failure_callback_never_overwrites_finished_or_newer_attempts(app, builds, org_id):
    from rq.job import Job
    from rq.serializers import JSONSerializer

    from app.extensions import redis
    from app.tasks.builds import build_job_failed

    done = builds.create(org_id, status="succeeded")
    moved_on = builds.create(org_id, status="building", attempt=2)
    current = builds.create(org_id, status="building", attempt=2)
    with app.app_context():
        def job(build_id, attempt):
            return Job.create("app.tasks.builds.run_build", args=[str(build_id), attempt], connection=redis.client,
                              serializer=JSONSerializer)

        err = RuntimeError("horse died")
        build_job_failed(job(done, 1), redis.client, RuntimeError, err, None)
        build_job_failed(job(moved_on, 1), redis.client, RuntimeError, err, None)
        build_job_failed(job(current, 2), redis.client, RuntimeError, err, None)
        assert _load(app, done).status == "succeeded"
        assert _load(app, moved_on).status == "building" and _load(app, moved_on).attempt == 2
        now = _load(app, current)
        assert now.status == "queued" and now.attempt == 3 and now.attempts[-1]["failureCode"] == "job_failed"


def test_numbers_stay_unique_under_concurrent_creates(app, user, org_id):
    """Several requests creating builds at once in one org: every number once, no gaps."""
    import threading

    from sqlalchemy import select

    from app.extensions import db
    from app.models import Build, Organization, User
    from app.services.audit import Actor
    from app.services.builds import lifecycle
    from tests.builds.conftest import RECIPE

    errors = []

    def create(n):
        try:
            with app.app_context():
                person = db.session.get(User, user.id)
                org = db.session.get(Organization, org_id)
                for _ in range(n):
                    lifecycle.create_build(Actor(user=person), org, "owner", recipe=RECIPE, start=False)
                    db.session.commit()
                db.session.remove()
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=create, args=(3,)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    with app.app_context():
        numbers = sorted(db.session.scalars(select(Build.number).where(Build.org_id == org_id)))
    assert numbers == list(range(1, 13))


def test_an_attempt_the_reaper_requeued_cannot_finish_the_build(app, builds, org_id):
    """Attempt 1's worker stalled, the reaper re-queued the build and attempt 2 runs on another worker:
    attempt 1 waking up can no longer succeed, fail or cancel the build, nor move its stages or progress."""
    from app.services.builds import reaper, run

    build_id = builds.create(org_id, status="building", started_ago=600, worker_name="stalled")
    with app.app_context():  # attempt 1's worker process, with its own session
        stale = _load(app, build_id)
        with app.app_context():  # meanwhile: another worker's reaper, then attempt 2
            assert dict(reaper.reap()) == {str(build_id): "retried"}
            assert run.begin_attempt(_load(app, build_id), 2, "rescue")
        assert stale.attempt == 1 and stale.status == "building"
        assert run.succeed(stale, 1) == "skipped"
        assert run.fail_attempt(stale, 1, "late", failure_class="infrastructure", code="build_error",
                                retryable=True) == "skipped"
        assert run.finish_cancelled(stale, 1) == "skipped"
        run.set_stage(stale, 1, "package", "running")
        run.set_progress(stale, 1, 77)
    with app.app_context():
        now = _load(app, build_id)
        assert (now.status, now.attempt, now.worker_name, now.stage, now.progress) == \
            ("building", 2, "rescue", "resolve", 0)
        assert {s.name: s.status for s in now.stages}["package"] == "pending"
        assert run.succeed(now, 2) == "succeeded"
        assert _events(app, build_id) == ["build.started", "build.completed"]


def test_custom_test_runs_without_a_heartbeat_are_reaped(app, builds, org_id):
    """A custom test run beats like a build; one whose worker stopped ends as an error, a queued one whose job
    Redis lost is enqueued again, and a beating one is left alone."""
    from datetime import timedelta

    from app import queues
    from app.extensions import db, redis
    from app.models import TestRun
    from app.models.base import utcnow
    from app.services.builds import reaper, signals

    build_id = builds.create(org_id, status="succeeded", image=b"iso")
    with app.app_context():
        long_ago = utcnow() - timedelta(minutes=10)
        lost = TestRun(build_id=build_id, status="running", kind="custom", started_at=long_ago)
        beating = TestRun(build_id=build_id, status="running", kind="custom", started_at=long_ago)
        forgotten = TestRun(build_id=build_id, status="queued", kind="custom", created_at=long_ago)
        db.session.add_all([lost, beating, forgotten])
        db.session.commit()
        redis.client.set(signals.test_run_heartbeat_key(beating.id), "w", ex=60)
        outcomes = dict(reaper.reap())
        assert outcomes == {str(lost.id): "worker_lost", str(forgotten.id): "requeued"}
        db.session.expire_all()
        assert lost.status == "error" and "stopped responding" in lost.error and beating.status == "running"
        assert queues.get_queue("tests").get_job_ids() == [queues.test_run_job_id(forgotten.id)]


def test_a_builds_default_test_run_lives_on_its_attempts_heartbeat(app, builds, org_id):
    """The image tests of a testing build run under the attempt's heartbeat, not one of their own: the reaper
    leaves them alone while that attempt beats (it once failed live builds as test_error after the TTL), and
    ends a default run whose attempt is gone."""
    from datetime import timedelta

    from app.extensions import db
    from app.models import TestRun
    from app.models.base import utcnow
    from app.services.builds import reaper

    build_id = builds.create(org_id, status="testing", started_ago=600, attempt=2, worker_name="w")
    beat(app, build_id, attempt=2)
    with app.app_context():
        started = utcnow() - timedelta(minutes=5)
        current = TestRun(build_id=build_id, status="running", kind="default", started_at=started)
        # Attempt 1's run, left running when its worker died.
        earlier = TestRun(build_id=build_id, status="running", kind="default", started_at=started - timedelta(minutes=10))
        db.session.add_all([current, earlier])
        db.session.commit()
        assert dict(reaper.reap()) == {str(earlier.id): "worker_lost"}
        db.session.expire_all()
        assert current.status == "running" and earlier.status == "error"
        assert (_load(app, build_id).status, _load(app, build_id).attempt) == ("testing", 2)


def test_a_queued_build_whose_worker_died_holding_its_job_is_enqueued_again(app, builds, org_id):
    """A worker SIGKILLed after RQ handed it the job but before the build began leaves the job `started` with
    no one beating it: the reaper enqueues the build again (it used to stay queued until RQ's job timeout)."""
    from datetime import datetime, timedelta, timezone

    from rq.job import JobStatus

    from app import queues
    from app.extensions import db
    from app.models import Build
    from app.models.base import utcnow
    from app.services.builds import reaper

    build_id = builds.create(org_id, status="queued", attempt=2)
    with app.app_context():
        db.session.get(Build, build_id).queued_at = utcnow() - timedelta(minutes=5)
        db.session.commit()
        job = queues.enqueue_build(build_id, 2)
        queues.get_queue("builds").remove(job)  # the worker took it ...
        job.set_status(JobStatus.STARTED)
        job.heartbeat(datetime.now(timezone.utc) - timedelta(minutes=4), ttl=600)  # ... and died
        assert dict(reaper.reap()) == {str(build_id): "requeued"}
        assert queues.get_queue("builds").get_job_ids() == [queues.build_job_id(build_id, 2)]
        # A started job its worker still beats is left alone.
        job = queues.fetch_job(queues.build_job_id(build_id, 2))
        queues.get_queue("builds").remove(job)
        job.set_status(JobStatus.STARTED)
        job.heartbeat(datetime.now(timezone.utc), ttl=600)
        assert dict(reaper.reap()) == {}


def test_a_cancel_that_lands_as_the_attempt_finishes_keeps_the_build_cancelled_and_says_so(app, builds, org_id):
    """The API cancels while the worker is past its last check (the supervisor looks every half second): the
    worker's succeed() finds the build cancelled, closes it as cancelled, and the log says why it stopped."""
    from app.extensions import db
    from app.services.builds import logs, run
    from app.services.builds.lifecycle import transition
    from app.models.base import utcnow

    build_id = builds.create(org_id, status="testing", started_ago=60, worker_name="w")
    with app.app_context():  # the worker, with its own session
        worker_view = _load(app, build_id)
        with app.app_context():  # meanwhile: the API's cancel
            now = utcnow()
            transition(_load(app, build_id), "cancelled", cancel_requested_at=now, finished_at=now,
                       failure_reason="Cancelled by a user")
            db.session.commit()
        assert run.succeed(worker_view, 1) == "cancelled"
    with app.app_context():
        build = _load(app, build_id)
        assert build.status == "cancelled" and build.failure_reason == "Cancelled by a user"
        assert "attempt 1 stopped: the build was cancelled" in [line["message"] for line in logs.read(build)]
