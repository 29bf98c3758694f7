"""Site administrators: the first account is one, the CLI grants and revokes, everyone else gets 403."""
from __future__ import annotations

from app.extensions import db
from app.models import User

OPS_API = ["/api/factory-workers", "/api/factory-workers/stats", "/api/factory-workers/health-summary"]


def _is_admin(app, email):
    with app.app_context():
        return User.by_email(email).is_site_admin


def test_first_account_is_site_admin_and_later_ones_are_not(app, client):
    first = client.post("/api/auth/register", json={"email": "a@example.com", "password": "correct horse battery",
                                                    "name": "A"})
    second = client.post("/api/auth/register", json={"email": "b@example.com", "password": "correct horse battery",
                                                     "name": "B"})
    assert first.status_code == 201 and second.status_code == 201
    assert first.json["user"]["isSiteAdmin"] is True
    assert second.json["user"]["isSiteAdmin"] is False
    assert _is_admin(app, "a@example.com") and not _is_admin(app, "b@example.com")


def test_ops_api_refuses_everyone_but_site_admins(client, admin_headers, someone_headers, factory, someone):
    for url in OPS_API:
        assert client.get(url, headers=admin_headers).status_code == 200, url
        refused = client.get(url, headers=someone_headers)
        assert refused.status_code == 403, url
        assert refused.json["error"]["code"] == "FORBIDDEN"
        assert "site administrator" in refused.json["error"]["message"]
        assert client.get(url).status_code == 401


def test_api_key_of_a_site_admin_is_refused(app, client, site_admin, admin_headers):
    created = client.post(f"/api/organizations/{site_admin.default_org_id}/api-keys", headers=admin_headers,
                          json={"name": "ci", "scopes": ["admin"]})
    assert created.status_code == 201, created.json
    key = created.json["key"]
    answer = client.get("/api/factory-workers", headers={"Authorization": f"Bearer {key}"})
    assert answer.status_code == 403
    assert "not an API key" in answer.json["error"]["message"]


def test_cli_grant_and_revoke(app, someone, site_admin, client, factory):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["kiln", "admin", "grant", someone.email])
    assert result.exit_code == 0, result.output
    assert "now a site administrator" in result.output
    assert _is_admin(app, someone.email)
    assert client.get("/api/factory-workers", headers=factory.headers(someone)).status_code == 200

    listed = runner.invoke(args=["kiln", "admin", "list"])
    assert listed.output.split() == sorted([someone.email, site_admin.email])

    result = runner.invoke(args=["kiln", "admin", "revoke", someone.email])
    assert result.exit_code == 0, result.output
    assert not _is_admin(app, someone.email)
    assert client.get("/api/factory-workers", headers=factory.headers(someone)).status_code == 403


def test_cli_refuses_unknown_email_and_the_last_admin(app, site_admin):
    runner = app.test_cli_runner()
    unknown = runner.invoke(args=["kiln", "admin", "grant", "nobody@example.com"])
    assert unknown.exit_code != 0 and "No account with the email 'nobody@example.com'" in unknown.output
    last = runner.invoke(args=["kiln", "admin", "revoke", site_admin.email])
    assert last.exit_code != 0 and "last site administrator" in last.output
    assert _is_admin(app, site_admin.email)


def test_ops_page_is_for_site_admins(app, client, site_admin, someone):
    def login(user):
        from flask import g

        g.pop("_login_user", None)  # pytest-flask shares one `g` across the test's requests
        with app.app_context():
            session_id = db.session.get(User, user.id).get_id()
        with client.session_transaction() as sess:
            sess.clear()
            sess["_user_id"] = session_id
            sess["_fresh"] = True

    login(someone)
    assert client.get("/ops/workers").status_code == 403
    login(site_admin)
    page = client.get("/ops/workers")
    assert page.status_code == 200 and b"Factory workers" in page.data
    assert b'id="factory-workers"' in page.data
    fragment = client.get("/ops/workers", headers={"HX-Request": "true"})
    assert fragment.data.lstrip().startswith(b"<section id=\"factory-workers\"")
