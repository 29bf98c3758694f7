"""Recipe validation under hostile input: bounded errors, no alias bombs, full-match patterns."""
from __future__ import annotations

import pytest

from app.engine.recipe import RecipeError, parse_recipe_text, validate_recipe

# About 600 bytes of YAML that stand for 9**8 (43 million) strings once the aliases are expanded.
ALIAS_BOMB = "\n".join([
    'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
    "b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]",
    "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]",
    "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]",
    "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]",
    "f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]",
    "g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]",
    "packages: [*g,*g,*g,*g,*g,*g,*g,*g,*g]",
])


def _error_of(text: str) -> RecipeError:
    with pytest.raises(RecipeError) as info:
        parse_recipe_text(text)
    return info.value


def test_an_alias_bomb_is_refused_with_a_short_error():
    assert len(ALIAS_BOMB) < 700
    err = _error_of(ALIAS_BOMB)
    assert len(str(err)) < 2000
    assert any("aliases" in m for messages in err.errors.values() for m in messages)


def test_a_self_referencing_yaml_node_is_refused():
    err = _error_of("packages: &p [nginx, *p]")
    assert "packages" in err.errors and len(str(err)) < 2000


def test_deep_nesting_is_refused_cleanly():
    err = _error_of("packages: " + "[" * 5000 + "]" * 5000)
    assert len(str(err)) < 2000
    with pytest.raises(RecipeError) as info:
        validate_recipe({"files": [{"content": _nested(200)}]})
    assert "files" in info.value.errors


def _nested(depth: int):
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("patch", [
    {"packages": ["x" * 1_000_000]},
    {"format": "y" * 1_000_000},
    {"tests": [{"type": "z" * 1_000_000}]},
    {"hostname": "h" * 1_000_000},
    {"users": [{"name": "u" * 1_000_000}]},
    {"services": {"enable": ["s" * 1_000_000]}},
    {"k" * 1_000_000: 1},
    {"packages": [["nested"] * 10_000]},
])
def test_a_rejected_value_is_never_echoed_in_full(patch):
    with pytest.raises(RecipeError) as info:
        validate_recipe(patch)
    assert len(str(info.value)) < 1000


def test_many_bad_fields_give_a_bounded_error():
    with pytest.raises(RecipeError) as info:
        validate_recipe({"packages": ["Bad Name"] * 5000})
    assert len(info.value.errors) <= 51 and len(str(info.value)) < 10_000


def test_a_yaml_date_is_an_error_not_a_crash():
    err = _error_of("packages: [2024-01-01]\nfirewall: {allow: [2024-01-01]}")
    assert "packages[0]" in err.errors and "firewall.allow[0]" in err.errors


def test_non_text_keys_are_named():
    err = _error_of("users: [{name: a, 1: b}]")
    assert "users" in err.errors


def test_oversized_recipe_text_is_refused():
    err = _error_of("commands: ['" + "x" * 300_000 + "']")
    assert "recipe" in err.errors


@pytest.mark.parametrize("patch,field", [
    ({"name": "web\n"}, "name"),
    ({"hostname": "web\n"}, "hostname"),
    ({"hostname": "web.example\n"}, "hostname"),
    ({"packages": ["nginx\n"]}, "packages[0]"),
    ({"users": [{"name": "admin\n"}]}, "users[0].name"),
    ({"users": [{"name": "admin", "groups": ["sudo\n"]}]}, "users[0].groups[0]"),
    ({"services": {"enable": ["ssh\n"]}}, "services.enable[0]"),
    ({"firewall": {"allow": ["22/tcp\n"]}}, "firewall.allow[0]"),
    ({"files": [{"path": "/etc/x", "mode": "0644\n"}]}, "files[0].mode"),
    ({"files": [{"path": "/etc/x", "owner": "root\n"}]}, "files[0].owner"),
    ({"users": [{"name": "a", "passwordHash": "$6$saltsalt$hashhashhash\n"}]}, "users[0].passwordHash"),
    ({"tests": [{"type": "http_responds", "params": {"url": "http://localhost/\n"}}]}, "tests[0].params.url"),
    ({"tests": [{"type": "package_installed", "params": {"package": "nginx\n"}}]}, "tests[0].params.package"),
])
def test_a_trailing_newline_does_not_pass(patch, field):
    with pytest.raises(RecipeError) as info:
        validate_recipe(patch)
    assert field in info.value.errors


def test_the_api_answers_an_alias_bomb_with_a_small_400(client, auth_headers):
    cid = client.post("/api/conversations", json={"name": "bomb"}, headers=auth_headers).json["id"]
    resp = client.put(f"/api/conversations/{cid}/recipe", json={"yaml": ALIAS_BOMB}, headers=auth_headers)
    assert resp.status_code == 400
    assert len(resp.data) < 5000
    assert resp.json["error"]["code"] == "VALIDATION_ERROR"
