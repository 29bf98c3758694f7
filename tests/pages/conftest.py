"""Realistic data for looking at every page: a team org with members, API keys, several conversations with a
real chat history, and builds in every state over the last weeks (rows as a worker leaves them, with artifacts
and test results, so no image is built)."""
from __future__ import annotations

import hashlib
import os
from datetime import timedelta

import pytest

from tests.conftest import PASSWORD, _Snapshot

LONG_NAME = "Edge router for the Rotterdam warehouse with WireGuard, nftables and a very long descriptive name"


@pytest.fixture(autouse=True)
def _push_request_context():
    """pytest-flask's one request context per test would share `g` between the data setup and the pages."""
    yield


@pytest.fixture(scope="session")
def package_indexes(app):
    """The chat planner reads the real Debian package index (the app's engine settings); load it once."""
    from app.engine.packages import get_index
    from app.engine.settings import EngineSettings

    assert get_index("trixie", EngineSettings.from_config(app.config)).exists("openssh-server")


class Workspace:
    """Everything one person in a busy team org sees. Ids are kept for the pages' URLs."""

    def __init__(self, app):
        self.app = app
        from app.extensions import db
        from app.models import Membership, Organization, User
        from app.services import accounts, apikeys, structure
        from app.services.audit import Actor

        with app.app_context():
            password_hash = accounts.hash_password(PASSWORD)
            people = {}
            for email, name in (("alice@example.com", "Alice Lindqvist"), ("bob@example.com", "Bob Okafor"),
                                ("carol@example.com", "Carol Nakamura-Fitzgerald"), ("dan@example.com", "Dan Ruiz")):
                user = User(email=email, name=name, password_hash=password_hash)
                db.session.add(user)
                db.session.flush()
                personal = accounts.create_organization(Actor(user=user), f"{name}'s workspace", owner=user,
                                                        personal=True)
                user.default_org_id = personal.id
                people[email] = user
            alice = people["alice@example.com"]
            org = accounts.create_organization(Actor(user=alice), "Acme Platform Engineering", owner=alice)
            for email, role in (("bob@example.com", "admin"), ("carol@example.com", "member"),
                                ("dan@example.com", "viewer")):
                db.session.add(Membership(org_id=org.id, user_id=people[email].id, role=role))
            alice.default_org_id = org.id  # she lands in the team org when she logs in
            actor = Actor(user=alice)
            unit = structure.create_unit(actor, org, "Infrastructure", description="Servers, networks and images")
            structure.create_team(actor, unit, "Edge platform")
            structure.create_group(actor, org, "On-call")
            key, _ = apikeys.create_key(actor, org, name="ci-deploy", description="GitHub Actions: nightly images",
                                        scopes=["builds:read", "builds:write"])
            apikeys.create_key(actor, org, name="grafana-readonly", scopes=["builds:read"])
            db.session.commit()
            self.user = _Snapshot(id=alice.id, email=alice.email, name=alice.name, default_org_id=org.id,
                                  password=PASSWORD)
            self.org_id, self.key_id = org.id, key.id
            self.org = db.session.get(Organization, org.id)
        self._conversations()
        self._builds()

    def keep_alive(self, build_id):
        """The heartbeat a live worker keeps renewing (attempt 1), so the build looks as alive as it is shown."""
        from app.services.builds import signals

        with self.app.app_context():
            signals.beat(signals.heartbeat_key(build_id, 1), "worker-1.kiln.internal")

    def _conversations(self):
        from app.extensions import db
        from app.models import Organization, User
        from app.services import conversations
        from app.services.audit import Actor

        with self.app.app_context():
            alice = db.session.get(User, self.user.id)
            org = db.session.get(Organization, self.org_id)
            actor = Actor(user=alice)
            planner = conversations.chat_planner(self.app.config)

            def say(conversation, text):
                turn = conversations.start_turn(actor, org, conversation, text)
                return conversations.finish_turn(actor, turn, conversations.plan_turn(turn, planner))

            conv = say(None, "Create a Debian server with SSH and Docker").conversation
            for text in ("add nginx and open port 80 and 443", "add a user carol in the sudo group",
                         "set the hostname to edge-1 and the timezone to Europe/Amsterdam"):
                say(conv, text)
            self.conversation_id = conv.id
            long = conversations.create_conversation(actor, org, LONG_NAME)
            say(long, "install wireguard-tools nftables and htop")
            self.long_conversation_id = long.id
            for name in ("CI runner image", "Kiosk for the front desk", "Postgres replica"):
                conversations.create_conversation(actor, org, name)
            db.session.commit()
            self.version_id = conversations.current_version(conv).id

    def _builds(self):
        from app.extensions import db
        from app.models import Conversation

        with self.app.app_context():
            recipe = db.session.get(Conversation, self.conversation_id).version().recipe
        self.succeeded_id = self.build("succeeded", recipe=recipe, days_ago=0, seconds=412, artifacts=True,
                                       tests=True, cached_stages=("resolve", "bootstrap"))
        self.failed_id = self.build("failed", recipe=recipe, days_ago=1, seconds=95, failure=True)
        self.running_id = self.build("building", recipe=recipe, days_ago=0, seconds=70)
        # History for the 30-day chart and the duration sparklines.
        for days_ago, status, seconds in ((2, "succeeded", 380), (3, "succeeded", 455), (3, "failed", 60),
                                          (6, "succeeded", 402), (9, "cancelled", 30), (12, "succeeded", 520),
                                          (20, "succeeded", 610), (27, "failed", 140)):
            self.build(status, recipe=recipe, days_ago=days_ago, seconds=seconds)
        self.build("succeeded", recipe={"name": "ci-runner", "release": "bookworm", "format": "qcow2",
                                        "packages": ["git", "docker.io"]}, days_ago=4, seconds=300, artifacts=True)

    def build(self, status, *, recipe, days_ago, seconds, artifacts=False, tests=False, failure=False,
              cached_stages=()):
        """A build row as the worker leaves it: stages with durations, artifacts, test results."""
        from app.engine.recipe import recipe_hash, validate_recipe
        from app.models import Build, BuildArtifact, BuildStage, TestCase, TestRun
        from app.models.base import utcnow
        from app.extensions import db
        from app.services.builds import files as build_files, lifecycle, plan as build_plan

        with self.app.app_context():
            normalized = validate_recipe(recipe)
            formats = [normalized["format"]]
            finished = utcnow() - timedelta(days=days_ago, minutes=5)
            started = finished - timedelta(seconds=seconds)
            running = status in ("building", "testing")
            build = Build(org_id=self.org_id, name=normalized["name"], recipe=normalized,
                          recipe_hash=recipe_hash(normalized), formats=formats, status=status, attempt=1, attempts=[],
                          conversation_id=self.conversation_id, recipe_version_id=self.version_id,
                          created_by_id=self.user.id, queued_at=started - timedelta(seconds=4), started_at=started,
                          finished_at=None if running else finished, created_at=started - timedelta(seconds=5),
                          progress=45 if running else 100, cached=bool(cached_stages),
                          worker_name="worker-1.kiln.internal")
            if running:
                build.stage, build.stage_display = "configure", "Config Agent"
            if failure:
                build.failure_reason = ("recipe command 2 failed with exit code 100: apt-get install -y "
                                        "nonexistent-package-with-a-long-name")
                build.failure_class, build.failure_code, build.failure_stage = "user_error", "user_error", "configure"
            lifecycle.insert_numbered(build)
            plan = build_plan.stage_plan(formats)
            clock = started
            share = seconds / len(plan)
            configure = [n for n, _ in plan].index("configure")
            for position, (name, display) in enumerate(plan):
                stage = BuildStage(build_id=build.id, position=position, name=name, display_name=display)
                if name in cached_stages:
                    stage.status, stage.duration = "skipped", 0.2  # the cached result stood in for it
                elif (running or failure) and position > configure:
                    stage.status = "pending"
                elif running and position == configure:
                    stage.status, stage.started_at = "running", clock
                elif failure and position == configure:
                    stage.status, stage.duration = "failed", share
                else:
                    stage.status, stage.duration = "succeeded", share * (0.5 + position % 3 * 0.5)
                if stage.duration is not None:
                    stage.started_at, stage.finished_at = clock, clock + timedelta(seconds=stage.duration)
                    clock = stage.finished_at
                db.session.add(stage)
            if artifacts:
                directory = build_files.artifacts_dir(build)
                directory.mkdir(parents=True, exist_ok=True)
                for kind, filename, body in (
                        (formats[0], f"{normalized['name']}-{normalized['release']}-amd64.{formats[0]}", b"\0" * 4096),
                        ("manifest", "packages.manifest.json", b'{"packages": []}'),
                        ("log", "build.log", _archived_log(started, formats[0]))):
                    (directory / filename).write_bytes(body)
                    db.session.add(BuildArtifact(build_id=build.id, kind=kind, filename=filename,
                                                 path=os.path.relpath(directory / filename, build_files.artifacts_root()),
                                                 size=len(body) * 187_000, sha256=hashlib.sha256(body).hexdigest()))
            if tests:
                run = TestRun(build_id=build.id, status="passed", kind="default", assertions=[],
                              created_at=finished, started_at=finished, finished_at=finished)
                db.session.add(run)
                db.session.flush()
                for position, (description, assertions) in enumerate((
                        ("boots to a login prompt", [{"type": "boots", "result": "passed", "message": ""}]),
                        ("sshd listens on port 22", [{"type": "port_open", "params": {"port": 22},
                                                       "result": "passed", "message": "tcp/22 open"}]),
                        ("nginx is active", [{"type": "service_active", "params": {"name": "nginx"},
                                              "result": "passed", "message": "active (running)"}]))):
                    db.session.add(TestCase(test_run_id=run.id, position=position, description=description,
                                            status="passed", duration=1.5 + position, assertions=assertions))
            db.session.commit()
            if running or failure:
                from app.services.builds import logs as buildlogs

                for stage, level, message in _LOG[: 6 if running else None]:
                    buildlogs.append(build, stage, level, message)
            build_id = build.id
        if running:
            self.keep_alive(build_id)
        return build_id


_LOG = [
    ("resolve", "info", "checking 6 package(s) against Debian trixie"),
    ("resolve", "info", "resolved 312 packages (148.2 MiB to download)"),
    ("bootstrap", "info", "base layer: cache hit (sha256 3f5a0c9e1b7d2f4a6c8e0b1d3f5a7c9e1b3d5f7a9c1e3b5d7f9a1c3e5b7d9f1a)"),
    ("bootstrap", "info", "overlay mounted on /var/lib/kiln/tmp/build-7f3e/rootfs"),
    ("configure", "info", "apt-get install -y openssh-server docker.io nginx sudo ca-certificates curl"),
    ("configure", "warning", "debconf: unable to initialize frontend: Dialog (falling back to Noninteractive)"),
    ("configure", "error", "E: Unable to locate package nonexistent-package-with-a-long-name"),
]


def _archived_log(started, fmt) -> bytes:
    """build.log as the job archives it: one JSON line per log line."""
    import json

    lines = [{"seq": n, "timestamp": (started + timedelta(seconds=n)).strftime("%Y-%m-%dT%H:%M:%SZ"), "level": level,
              "stage": stage, "message": message} for n, (stage, level, message) in enumerate(_LOG[:6], 1)]
    lines.append({"seq": 7, "timestamp": lines[-1]["timestamp"], "level": "info", "stage": "package",
                  "message": f"wrote image.{fmt}"})
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


@pytest.fixture
def workspace(app, package_indexes):
    return Workspace(app)
