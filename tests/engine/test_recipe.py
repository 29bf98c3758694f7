import json

import pytest

from app.engine.recipe import (
    DEFAULT_RECIPE, RecipeError, canonical_json, dump_yaml, parse_recipe_text, recipe_hash, validate_recipe,
)

ED25519 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl me@host"


def errors_of(data: dict) -> dict[str, list[str]]:
    with pytest.raises(RecipeError) as info:
        validate_recipe(data)
    return info.value.errors


def test_defaults_fill_an_empty_recipe():
    assert validate_recipe({}) == DEFAULT_RECIPE
    assert DEFAULT_RECIPE["release"] == "trixie" and DEFAULT_RECIPE["format"] == "iso"


@pytest.mark.parametrize("patch,field", [
    ({"packages": ["openssh-server", "ok", "foo bar"]}, "packages[2]"),
    ({"packages": ["Upper"]}, "packages[0]"),
    ({"format": "vhd"}, "format"),
    ({"release": "sid"}, "release"),
    ({"architecture": "arm64"}, "architecture"),
    ({"timezone": "Mars/Olympus"}, "timezone"),
    ({"locale": "en_XX.UTF-8"}, "locale"),
    ({"keyboard": "qwertz-xx"}, "keyboard"),
    ({"hostname": "-bad-"}, "hostname"),
    ({"hostname": "a" * 64}, "hostname"),
    ({"users": [{"name": "Admin"}]}, "users[0].name"),
    ({"users": [{"name": "a", "sshKeys": ["ssh-ed25519 notbase64!!"]}]}, "users[0].sshKeys[0]"),
    ({"users": [{"name": "a", "sshKeys": ["ssh-dss AAAAB3NzaC1kc3MAAACBAP"]}]}, "users[0].sshKeys[0]"),
    ({"users": [{"name": "a", "sshKeys": ["ssh-rsa " + ED25519.split()[1]]}]}, "users[0].sshKeys[0]"),
    ({"users": [{"name": "a", "passwordHash": "hunter2"}]}, "users[0].passwordHash"),
    ({"users": [{"name": "a", "groups": ["Bad Group"]}]}, "users[0].groups[0]"),
    ({"files": [{"path": "etc/motd"}]}, "files[0].path"),
    ({"files": [{"path": "/etc/../shadow"}]}, "files[0].path"),
    ({"files": [{"path": "/etc/x", "mode": "0999"}]}, "files[0].mode"),
    ({"files": [{"path": "/etc/x", "owner": "bad owner"}]}, "files[0].owner"),
    ({"services": {"enable": ["ssh; rm -rf /"]}}, "services.enable[0]"),
    ({"firewall": {"enabled": True, "allow": ["22/xyz"]}}, "firewall.allow[0]"),
    ({"firewall": {"enabled": True, "allow": ["22/tcp", 70000]}}, "firewall.allow[1]"),
    ({"tests": [{"type": "port_open", "params": {"port": "ssh"}}]}, "tests[0].params.port"),
    ({"tests": [{"type": "port_open", "params": {}}]}, "tests[0].params.port"),
    ({"tests": [{"type": "service_running", "params": {"service": "ssh", "extra": 1}}]}, "tests[0].params.extra"),
    ({"tests": [{"type": "reboots"}]}, "tests[0].type"),
    ({"commands": [""]}, "commands[0]"),
    ({"colour": "blue"}, "colour"),
])
def test_each_bad_field_is_named(patch, field):
    assert field in errors_of(patch)


def test_every_bad_field_is_reported_at_once():
    errors = errors_of({"packages": ["foo bar"], "format": "vhd", "timezone": "Nowhere/Town",
                        "firewall": {"enabled": True, "allow": ["22/xyz", 70000]}})
    assert {"packages[0]", "format", "timezone", "firewall.allow[0]", "firewall.allow[1]"} <= set(errors)
    assert errors["packages[0]"] == ['"foo bar" is not a valid Debian package name']


def test_good_values_are_normalized():
    recipe = validate_recipe({
        "packages": ["openssh-server", "openssh-server", "docker.io"],
        "timezone": "Europe/Berlin", "locale": "en_US.UTF-8", "keyboard": "de",
        "users": [{"name": "admin", "groups": ["sudo"], "sshKeys": [ED25519],
                   "passwordHash": "$6$saltsalt$0123456789abcdefghijABCDEFGHIJ./"}],
        "firewall": {"enabled": True, "allow": ["22/tcp", 80, "53/udp"]},
        "files": [{"path": "/etc/motd", "content": "hi\n", "mode": "644"}],
        "tests": [{"type": "port_open", "params": {"port": 22}}],
    })
    assert recipe["packages"] == ["openssh-server", "docker.io"]
    assert recipe["firewall"]["allow"] == ["22/tcp", "80/tcp", "53/udp"]
    assert recipe["files"][0] == {"path": "/etc/motd", "content": "hi\n", "mode": "0644", "owner": "root"}
    assert recipe["tests"][0]["params"] == {"port": 22, "protocol": "tcp"}


def test_yaml_and_json_give_the_same_recipe_and_hash():
    yaml_text = "name: web\npackages: [nginx]\nfiles:\n  - path: /etc/x\n    mode: 0600\n"
    json_text = json.dumps({"name": "web", "packages": ["nginx"], "files": [{"path": "/etc/x", "mode": "0600"}]})
    a, b = parse_recipe_text(yaml_text), parse_recipe_text(json_text)
    assert a == b and a["files"][0]["mode"] == "0600"
    assert recipe_hash(a) == recipe_hash(b)


def test_hash_is_stable_and_key_order_independent():
    a = validate_recipe({"name": "x", "packages": ["curl"], "hostname": "h"})
    b = validate_recipe({"hostname": "h", "packages": ["curl"], "name": "x"})
    assert canonical_json(a) == canonical_json(b)
    assert recipe_hash(a) == recipe_hash(b)
    assert recipe_hash(a) != recipe_hash(validate_recipe({"name": "x", "packages": ["wget"], "hostname": "h"}))
    # The known value pins the canonical form: changing it would invalidate every cached result.
    assert recipe_hash(validate_recipe({})) == recipe_hash(DEFAULT_RECIPE)


def test_dump_yaml_round_trips_in_field_order():
    recipe = validate_recipe({"name": "web", "packages": ["nginx"],
                              "files": [{"path": "/etc/motd", "content": "line1\nline2\n"}]})
    text = dump_yaml(recipe)
    assert text.index("name:") < text.index("release:") < text.index("packages:") < text.index("tests:")
    assert parse_recipe_text(text) == recipe


@pytest.mark.parametrize("text", ["", "just a string", "packages: [a, b", "- 1\n- 2\n"])
def test_unparseable_text_is_a_recipe_error(text):
    with pytest.raises(RecipeError) as info:
        parse_recipe_text(text)
    assert "recipe" in info.value.errors
