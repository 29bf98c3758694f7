"""apply_operations: the one path by which planners change recipes."""
from __future__ import annotations

import copy

import pytest

from app.engine.recipe import DEFAULT_RECIPE
from app.planner import OPERATION_TOOLS, apply_operations
from app.planner.operations import SPECS


def test_tools_cover_every_operation():
    names = [t["function"]["name"] for t in OPERATION_TOOLS]
    assert names == list(SPECS)
    for tool in OPERATION_TOOLS:
        assert tool["type"] == "function"
        params = tool["function"]["parameters"]
        assert params["type"] == "object" and set(params["required"]) <= set(params["properties"])


def test_add_packages_enables_services_and_keeps_input(index_for):
    recipe = copy.deepcopy(DEFAULT_RECIPE)
    new, desc = apply_operations(recipe, [{"op": "add_packages", "packages": ["openssh-server", "redis-server"]}],
                                 index_for=index_for)
    assert recipe == DEFAULT_RECIPE
    assert new["packages"] == ["openssh-server", "redis-server"]
    assert new["services"]["enable"] == ["ssh", "redis-server"]
    assert desc == ["Added openssh-server (service ssh enabled) and redis-server (service redis-server enabled)."]


def test_removing_a_package_removes_its_service_and_tests(index_for):
    recipe, _ = apply_operations(DEFAULT_RECIPE, [
        {"op": "add_packages", "packages": ["nginx", "openssh-server"]},
        {"op": "add_test", "type": "service_running", "params": {"service": "nginx"}},
        {"op": "add_test", "type": "http_responds", "params": {"url": "http://localhost/"}},
        {"op": "add_test", "type": "package_installed", "params": {"package": "nginx"}},
        {"op": "add_test", "type": "service_running", "params": {"service": "ssh"}},
    ], index_for=index_for)
    new, desc = apply_operations(recipe, [{"op": "remove_packages", "packages": ["nginx"]}], index_for=index_for)
    assert new["packages"] == ["openssh-server"]
    assert new["services"]["enable"] == ["ssh"]
    assert new["tests"] == [{"type": "service_running", "params": {"service": "ssh"}}]
    assert "Removed nginx" in desc[0] and "3 tests" in desc[0]


def test_release_switch_rechecks_packages(index_for):
    recipe, _ = apply_operations(DEFAULT_RECIPE, [{"op": "add_packages", "packages": ["fastfetch", "valkey-server", "htop"]}],
                                 index_for=index_for)
    new, desc = apply_operations(recipe, [{"op": "set", "field": "release", "value": "Debian 12"}], index_for=index_for)
    assert new["release"] == "bookworm"
    # fastfetch is not in bookworm: dropped and said so; valkey is Redis there, so it is swapped.
    assert new["packages"] == ["redis-server", "htop"]
    assert any("fastfetch" in d and "not available in bookworm" in d for d in desc)
    assert any("valkey-server is called redis-server in bookworm" in d for d in desc)


def test_password_is_stored_hashed(index_for):
    new, _ = apply_operations(DEFAULT_RECIPE, [{"op": "add_user", "name": "ann", "password": "s3cret"}], index_for=index_for)
    assert new["users"][0]["passwordHash"].startswith("$6$")
    assert "s3cret" not in str(new)


@pytest.mark.parametrize("op,message", [
    ({"op": "frobnicate"}, "unknown operation 'frobnicate'"),
    ({"packages": ["x"]}, "must be an object with an \"op\" name"),
    ({"op": "add_packages"}, "add_packages: missing argument 'packages'"),
    ({"op": "add_packages", "packages": []}, "add_packages: packages must not be empty"),
    ({"op": "add_packages", "packages": [1]}, "add_packages: every item of packages"),
    ({"op": "add_packages", "packages": ["Not A Package"]}, "not a valid Debian package name"),
    ({"op": "add_packages", "packages": ["foobarbaz-not-real"]}, "no package 'foobarbaz-not-real' in Debian trixie"),
    ({"op": "set", "field": "colour", "value": "red"}, "set: field must be one of"),
    ({"op": "set", "field": "format", "value": "vhdx"}, "set: format must be one of"),
    ({"op": "set", "field": "timezone", "value": "Mars/Olympus"}, "not a known timezone"),
    ({"op": "set", "field": "locale", "value": "xx_YY.UTF-8"}, "locale"),
    ({"op": "set", "field": "keyboard", "value": "klingon"}, "keyboard"),
    ({"op": "open_ports", "ports": ["99999"]}, "not a port"),
    ({"op": "add_user", "name": "root"}, "root always exists"),
    ({"op": "add_user", "name": "bob", "sshKeys": ["ssh-ed25519 AAAA"]}, "users[0].sshKeys[0]"),
    ({"op": "add_user", "name": "bob", "passwordHash": "plain"}, "passwordHash"),
    ({"op": "add_file", "path": "etc/motd", "content": "x"}, "files[0].path"),
    ({"op": "add_test", "type": "port_open", "params": {"port": "eighty"}}, "add_test"),
    ({"op": "remove_tests"}, "give a type, a subject, or all=true"),
])
def test_bad_operations_name_the_problem(index_for, op, message):
    with pytest.raises(ValueError) as err:
        apply_operations(DEFAULT_RECIPE, [op], index_for=index_for)
    assert message in str(err.value)


def test_nothing_is_half_applied(index_for):
    recipe = copy.deepcopy(DEFAULT_RECIPE)
    with pytest.raises(ValueError):
        apply_operations(recipe, [{"op": "add_packages", "packages": ["nginx"]},
                                  {"op": "set", "field": "release", "value": "sid"}], index_for=index_for)
    assert recipe == DEFAULT_RECIPE


def test_index_unavailable_is_a_clear_error():
    def broken(release):
        raise OSError("mirror unreachable")

    with pytest.raises(ValueError, match="package index is unavailable"):
        apply_operations(DEFAULT_RECIPE, [{"op": "add_packages", "packages": ["nginx"]}], index_for=broken)
    new, _ = apply_operations(DEFAULT_RECIPE, [{"op": "set", "field": "hostname", "value": "box"}], index_for=broken)
    assert new["hostname"] == "box"
