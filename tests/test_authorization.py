"""Authorization matrix: EVERY route of the app × caller (anonymous, viewer, member, admin, owner, API keys)
× own/other organization, plus the share permissions of a conversation.

Routes come from `app.url_map`, so a route added without an expectation fails here by name. The expectation
is derived from the view's `kiln_permission` when it has one, otherwise read from tests/authz_table.py.
Requests use random ids for objects: authorization runs before the lookup, so an allowed caller gets
anything but 401/403 (typically 404) and a refused one gets 401/403 (or, for pages, the log-in redirect).
No answer may be a 5xx.
"""
from __future__ import annotations

import functools
import re
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from marshmallow import fields as mf
from marshmallow import validate as mv

from app.services.permissions import role_allows, scopes_allow
from tests import authz_table
from tests.authz_table import BODIES, TABLE

ROLES = ("viewer", "member", "admin", "owner")
KEYS = {"key:read": ["builds:read", "conversations:read"],
        "key:write": ["builds:write", "conversations:write"],
        "key:admin": ["admin"]}
CALLERS = ("anonymous", *ROLES, *KEYS)
IGNORED_METHODS = {"HEAD", "OPTIONS"}


# Routes and their expectations ---------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def _route_app():
    """An app built at collection time only to read its URL map (no database or Redis is touched)."""
    import tempfile

    from app import create_app

    return create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": "sqlite://", "SECRET_KEY": "collect",
                       "KILN_DATA_DIR": tempfile.mkdtemp(prefix="kiln-authz-")})


def _routes() -> list[tuple[str, str, str]]:
    app = _route_app()
    found = []
    for rule in app.url_map.iter_rules():
        for method in sorted((rule.methods or set()) - IGNORED_METHODS):
            found.append((method, rule.rule, rule.endpoint))
    return sorted(found, key=lambda r: (r[1], r[0]))


def _view(app, endpoint: str, method: str):
    view = app.view_functions[endpoint]
    view_class = getattr(view, "view_class", None)
    if view_class is not None:  # MethodView: the per-method function carries the decorators
        return getattr(view_class, method.lower(), view)
    return view


def _unwrap_attr(fn, name: str):
    seen = set()
    while fn is not None and id(fn) not in seen:
        seen.add(id(fn))
        if name in getattr(fn, "__dict__", {}):
            return getattr(fn, name)
        fn = getattr(fn, "__wrapped__", None)
    return None


def expectation(app, method: str, rule: str, endpoint: str):
    if (method, rule) in TABLE:
        return TABLE[(method, rule)]
    view = _view(app, endpoint, method)
    if _unwrap_attr(view, "kiln_site_admin"):
        return authz_table.SiteAdmin(page=not rule.startswith("/api/"))
    permission = _unwrap_attr(view, "kiln_permission")
    if permission is None:
        return None
    if not rule.startswith("/api/"):
        return authz_table.Page(permission)
    return authz_table.Perm(permission, _unwrap_attr(view, "kiln_org_arg"))


ROUTES = _routes()


def test_every_route_has_an_expectation():
    app = _route_app()
    missing = [f"{m} {r}  ({e})" for m, r, e in ROUTES if expectation(app, m, r, e) is None]
    assert not missing, ("Routes without an authorization expectation: give the view a permission decorator "
                         "(kiln_permission) or add them to tests/authz_table.py TABLE:\n  " + "\n  ".join(missing))


def test_declared_permissions_match_the_table():
    """A view's decorator and the table must agree: weakening either one alone fails here."""
    app = _route_app()
    wrong = []
    for method, rule, endpoint in ROUTES:
        pinned = TABLE.get((method, rule))
        if pinned is None or pinned.kind not in ("perm", "page"):
            continue
        view = _view(app, endpoint, method)
        declared = _unwrap_attr(view, "kiln_permission")
        if declared is None:
            continue  # views that check inside (streams, chat and build pages): the matrix exercises them
        declared_org = _unwrap_attr(view, "kiln_org_arg")
        if declared != pinned.permission or (pinned.kind == "perm" and declared_org != pinned.org_arg):
            wrong.append(f"{method} {rule}: view declares {declared!r} (org arg {declared_org!r}), table says {pinned}")
    assert not wrong, "Permission declarations differ from tests/authz_table.py:\n  " + "\n  ".join(wrong)


def test_table_has_no_stale_entries():
    live = {(m, r) for m, r, _ in ROUTES}
    stale = sorted(f"{m} {r}" for m, r in (*TABLE, *authz_table.SETTINGS) if (m, r) not in live)
    assert not stale, "tests/authz_table.py lists routes that no longer exist:\n  " + "\n  ".join(stale)


# Request building -----------------------------------------------------------------------------------

def _sample(field):
    """A value that passes the field's own validation (so refusals come from authorization, not the body)."""
    validators = field.validators if hasattr(field, "validators") else []
    for v in validators:
        if isinstance(v, mv.OneOf):
            return list(v.choices)[0]
    if isinstance(field, mf.Nested):
        return _body_for(field.schema)
    if isinstance(field, mf.List):
        return [_sample(field.inner)]
    if isinstance(field, (mf.Dict, mf.Raw)) and not isinstance(field, (mf.String, mf.Number, mf.Boolean)):
        return {}
    if isinstance(field, mf.UUID):
        return str(uuid.uuid4())
    if isinstance(field, mf.Email):
        return "someone@example.com"
    if isinstance(field, (mf.DateTime, mf.AwareDateTime)):
        return (datetime.now(timezone.utc) + timedelta(days=1)).isoformat()
    if isinstance(field, mf.Boolean):
        return True
    if isinstance(field, mf.Number):
        low = next((v.min for v in validators if isinstance(v, mv.Range) and v.min is not None), 1)
        return max(low, 1)
    minimum = next((v.min for v in validators if isinstance(v, mv.Length) and v.min), 1)
    name = (field.data_key or field.name or "").lower()
    if "email" in name:
        return "someone@example.com"
    return "x" * max(minimum, 8)


def _body_for(schema) -> dict:
    schema = schema() if isinstance(schema, type) else schema
    return {(f.data_key or name): _sample(f) for name, f in schema.fields.items()
            if f.required and not f.dump_only}


def request_parts(app, method: str, rule: str, endpoint: str) -> dict:
    """json body and query string for this route, from its smorest arguments (or BODIES)."""
    if (method, rule) in BODIES:
        return dict(BODIES[(method, rule)])
    parts: dict = {}
    view = _view(app, endpoint, method)
    doc = _unwrap_attr(view, "_apidoc") or {}
    for param in doc.get("arguments", {}).get("parameters", []):
        location = param.get("in") or param.get("location")
        body = _body_for(param["schema"])
        if location == "json":
            parts["json"] = body
        elif location in ("query", "querystring"):
            parts["query"] = body
    return parts


def fill_url(rule: str, org_arg: str | None, org_id) -> str:
    def value(match):
        converter, name = match.group(1), match.group(2)
        if name == org_arg:
            return str(org_id)
        if converter == "int":
            return "1"
        if converter == "path":
            return "css/app.css"
        if name == "token":
            return "no-such-token"
        if name == "action":
            return "revoke"
        return str(uuid.uuid4())

    return re.sub(r"<(?:(\w+)(?:\([^)]*\))?:)?(\w+)>", value, rule)


# The world: one org the caller is in (A), one they are not (B) -------------------------------------

class World:
    def __init__(self, app):
        from app.extensions import db, redis
        from app.models import Membership, Organization, User
        from app.services import apikeys, tokens
        from app.services.audit import Actor

        self.app = app
        with app.app_context():
            self.org_a = Organization(name="A", slug=f"a-{uuid.uuid4().hex[:8]}", plan=app.config["KILN_DEFAULT_TIER"])
            self.org_b = Organization(name="B", slug=f"b-{uuid.uuid4().hex[:8]}", plan=app.config["KILN_DEFAULT_TIER"])
            db.session.add_all([self.org_a, self.org_b])
            db.session.flush()
            self.users, self.tokens, self.keys = {}, {}, {}
            for role in ROLES:
                user = User(email=f"{role}@example.com", name=role.title(), password_hash="unused",
                            default_org_id=self.org_a.id)
                db.session.add(user)
                db.session.flush()
                db.session.add(Membership(org_id=self.org_a.id, user_id=user.id, role=role))
                self.users[role] = user.id
            owner = db.session.get(User, self.users["owner"])
            for name, scopes in KEYS.items():
                _, raw = apikeys.create_key(Actor(user=owner), self.org_a, name=name, scopes=scopes)
                self.keys[name] = raw
            db.session.commit()
            self.a, self.b = self.org_a.id, self.org_b.id
            for role, user_id in self.users.items():
                self.tokens[role] = tokens.issue(app.config, redis.client, user_id, self.a)[0]


def _session_id(app, user_id) -> str:
    from app.extensions import db
    from app.models import User

    with app.app_context():
        return db.session.get(User, user_id).get_id()


def _call(client, world: World, caller: str, method: str, url: str, parts: dict, *, page: bool,
          tenant=None, url_rule: str = ""):
    from flask import g

    headers = {}
    g.pop("_login_user", None)  # pytest-flask shares one `g` across the test's requests
    with client.session_transaction() as sess:
        sess.clear()
        if page and caller in ROLES:
            sess["_user_id"] = _session_id(client.application, world.users[caller])
            sess["_fresh"] = True
            sess["org_id"] = str(world.a)
    if not page and caller in ROLES:
        headers["Authorization"] = f"Bearer {world.tokens[caller]}"
    if caller in KEYS:
        headers["Authorization"] = f"Bearer {world.keys[caller]}"
    if tenant is not None:
        headers["X-Tenant-ID"] = str(tenant)
    if url_rule in authz_table.WEBSOCKET_ROUTES:
        headers.update({"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
                        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
    kwargs = {"headers": headers, "query_string": parts.get("query")}
    if method not in ("GET", "DELETE"):
        if page:
            kwargs["data"] = {}
        else:
            kwargs["json"] = parts.get("json", {})
    resp = client.open(url, method=method, **kwargs)
    status, location = resp.status_code, resp.headers.get("Location", "")
    resp.close()
    return status, location


def _refused(status: int, location: str, page: bool) -> bool:
    if page:
        return status in (401, 403) or (status in (301, 302, 303) and "/login" in location)
    return status in (401, 403)


def _allowed_for(expect, caller: str) -> bool:
    """Whether `caller` acting in its own org passes this route's authorization."""
    kind = expect.kind
    if kind == "public":
        return True
    if kind == "site_admin":
        return False  # nobody in the world is a site administrator
    if caller == "anonymous":
        return False
    if kind == "login":
        return True
    if kind == "user":
        return caller in ROLES
    if kind == "siteadmin":
        return False
    if kind == "page":
        if caller not in ROLES:
            return False  # pages follow the browser session; an API key is not a log-in
        return expect.permission is None or role_allows(caller, expect.permission)
    if kind == "perm":
        if caller in KEYS:
            scopes = KEYS[caller]
            role = "admin" if "admin" in scopes else "member"
            return scopes_allow(scopes, expect.permission) and role_allows(role, expect.permission)
        return role_allows(caller, expect.permission)
    raise AssertionError(f"unknown expectation {expect!r}")


@pytest.mark.parametrize("route", ROUTES, ids=[f"{m} {r}" for m, r, _ in ROUTES])
def test_route_authorization(app, client, monkeypatch, route):
    method, rule, endpoint = route
    for key, value in authz_table.SETTINGS.get((method, rule), {}).items():
        monkeypatch.setitem(app.config, key, value)
    expect = expectation(app, method, rule, endpoint)
    if expect is None:
        pytest.fail(f"{method} {rule} has no authorization expectation (see test_every_route_has_an_expectation)")
    world = World(app)
    page = (not rule.startswith("/api/") and expect.kind in ("page", "public")) or getattr(expect, "page", False) is True
    parts = request_parts(app, method, rule, endpoint)
    org_arg = getattr(expect, "org_arg", None)
    problems = []
    for caller in CALLERS:
        url = fill_url(rule, org_arg, world.a)
        tenant = world.a if (org_arg is None and expect.kind in ("perm", "page") and caller in ROLES and not page) else None
        status, location = _call(client, world, caller, method, url, parts, page=page, tenant=tenant, url_rule=rule)
        allowed = _allowed_for(expect, caller)
        if status >= 500:
            problems.append(f"{caller}: answered {status}")
        elif expect.kind == "public":
            continue
        elif allowed and _refused(status, location, page):
            problems.append(f"{caller}: expected access, got {status} {location}".rstrip())
        elif not allowed and not _refused(status, location, page):
            problems.append(f"{caller}: expected a refusal, got {status}")
        elif not allowed and not page and caller == "anonymous" and status != 401:
            problems.append(f"anonymous: expected 401, got {status}")
        # The same caller in an org they do not belong to is refused, whatever their role in their own.
        if allowed and expect.kind in ("perm", "page") and expect.permission and caller != "anonymous":
            if page and caller not in ROLES:
                continue
            other_url = fill_url(rule, org_arg, world.b)
            tenant = None if org_arg else world.b
            status, location = _call(client, world, caller, method, other_url, parts, page=page, tenant=tenant,
                                     url_rule=rule)
            if status != 403:
                problems.append(f"{caller} in another org: expected 403, got {status}")
    assert not problems, f"{method} {rule} ({expect}):\n  " + "\n  ".join(problems)


# Share permissions ----------------------------------------------------------------------------------
# (role in the org, how the conversation reaches the caller) -> effective access: None | view | edit

SHARE_CASES = [
    ("member", "creator", "edit"),
    ("member", None, None),
    ("admin", None, "edit"),
    ("owner", None, "edit"),
    ("member", "user:view", "view"),
    ("member", "user:edit", "edit"),
    ("member", "group:view", "view"),
    ("member", "group:edit+organization:view", "edit"),
    ("member", "team:edit", "edit"),
    ("member", "unit-via-team:view", "view"),
    ("member", "unit:edit", "edit"),
    ("member", "organization:view", "view"),
    ("viewer", "user:edit", "view"),
    ("viewer", "organization:edit", "view"),
    ("viewer", None, None),
]


@pytest.mark.parametrize("role,reach,level", SHARE_CASES, ids=[f"{r}-{s}-{lv}" for r, s, lv in SHARE_CASES])
def test_share_permissions(app, client, role, reach, level):
    from app.extensions import db, redis
    from app.models import Membership, Organization, User
    from app.models.orgs import ConversationShare, Group, GroupMember, Team, TeamMember, Unit, UnitMember
    from app.services import conversations, tokens
    from app.services.audit import Actor

    with app.app_context():
        org = Organization(name="S", slug=f"s-{uuid.uuid4().hex[:8]}")
        db.session.add(org)
        db.session.flush()
        creator = User(email="creator@example.com", name="Creator", password_hash="unused", default_org_id=org.id)
        caller = User(email="caller@example.com", name="Caller", password_hash="unused", default_org_id=org.id)
        db.session.add_all([creator, caller])
        db.session.flush()
        db.session.add_all([Membership(org_id=org.id, user_id=creator.id, role="member"),
                            Membership(org_id=org.id, user_id=caller.id, role=role)])
        # Made by the chat feature's own service, so its API sees a complete conversation (version 1 included).
        convo = conversations.create_conversation(Actor(user=caller if reach == "creator" else creator), org, "c")
        for part in (reach or "").split("+"):
            if not part or part == "creator":
                continue
            target, permission = part.split(":")
            if target == "user":
                target_id = caller.id
            elif target == "organization":
                target_id = org.id
            elif target == "group":
                row = Group(org_id=org.id, name="g")
                db.session.add(row)
                db.session.flush()
                db.session.add(GroupMember(group_id=row.id, user_id=caller.id))
                target_id = row.id
            else:
                unit = Unit(org_id=org.id, name="u")
                db.session.add(unit)
                db.session.flush()
                target_id = unit.id
                if target == "unit":
                    db.session.add(UnitMember(unit_id=unit.id, user_id=caller.id))
                else:
                    team = Team(org_id=org.id, unit_id=unit.id, name="t")
                    db.session.add(team)
                    db.session.flush()
                    db.session.add(TeamMember(team_id=team.id, user_id=caller.id))
                    target, target_id = ("team", team.id) if target == "team" else ("unit", unit.id)
            db.session.add(ConversationShare(org_id=org.id, conversation_id=convo.id, target_type=target,
                                             target_id=target_id, permission=permission, created_by_id=creator.id))
        db.session.commit()
        org_id, convo_id, caller_id = org.id, convo.id, caller.id
        token = tokens.issue(app.config, redis.client, caller_id, org_id)[0]
    headers = {"Authorization": f"Bearer {token}", "X-Tenant-ID": str(org_id)}
    # Reading: the share list of the conversation (and the conversation itself) is visible from view up.
    expected_read = 404 if level is None else 200
    assert client.get(f"/api/conversations/{convo_id}/shares", headers=headers).status_code == expected_read
    if ("GET", "/api/conversations/<conversation_id>") in {(m, r) for m, r, _ in ROUTES}:
        assert client.get(f"/api/conversations/{convo_id}", headers=headers).status_code == expected_read
    # Changing who it is shared with needs edit access; a viewer's role is refused before the lookup.
    resp = client.post(f"/api/conversations/{convo_id}/shares", headers=headers,
                       json={"targetType": "organization", "permission": "view"})
    if role == "viewer":
        assert resp.status_code == 403
    else:
        assert resp.status_code == {None: 404, "view": 403, "edit": 201 if "organization" not in (reach or "") else 200}[level]
