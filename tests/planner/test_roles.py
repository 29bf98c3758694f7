"""The role catalog is one reviewed data file; a mistake in it is named when it is loaded."""
from __future__ import annotations

import pytest

from app.engine.recipe import DEFAULT_RECIPE
from app.planner import apply_operations
from app.planner.roles import ROLES, load

ISSUE_ROLES = {"web-server", "lamp", "lemp", "postgresql-server", "mariadb-server", "redis-server", "file-share",
               "nfs-server", "dns-server", "dns-resolver", "dns-dhcp", "vpn-wireguard", "vpn-openvpn", "mail-relay",
               "node-exporter", "zabbix-agent", "container-host", "podman-host", "ci-agent", "kiosk", "router", "dev-box"}


def test_the_catalog_covers_the_roles_people_ask_for():
    assert ISSUE_ROLES <= set(ROLES)


@pytest.mark.parametrize("role", sorted(ROLES))
@pytest.mark.parametrize("release", ["trixie", "bookworm"])
def test_every_role_applies_on_both_releases(index_for, role, release):
    """Every package of every role exists in the release's index, and the result is a valid recipe."""
    recipe = {**DEFAULT_RECIPE, "release": release, "firewall": {"enabled": True, "allow": []}}
    new, lines = apply_operations(recipe, [{"op": "apply_role", "role": role, "open": True}], index_for=index_for)
    spec = ROLES[role]
    assert set(spec.ports) <= set(new["firewall"]["allow"])
    assert {t["params"].get("port") for t in new["tests"] if t["type"] == "port_open"} == \
        {int(p.split("/")[0]) for p in spec.ports}
    assert lines


@pytest.mark.parametrize("text,error", [
    ('[[role]]\nkey = "x"\nlabel = "X"\nphrases = ["x"]\n', "role x: missing packages"),
    ('[[role]]\nkey = "x"\nlabel = "X"\nphrases = ["x"]\npackages = ["a"]\nport = ["1/tcp"]\n', "role x: unknown port"),
    ('[[role]]\nkey = "x"\nlabel = "X"\nphrases = ["x"]\npackages = ["a"]\ntests = [{type = "pings"}]\n',
     "unknown test type 'pings'"),
    ('[[ask]]\nkey = "db"\nphrases = ["db"]\nquestion = "Which?"\n', "ask db: missing choices"),
])
def test_mistakes_in_the_file_are_named(tmp_path, text, error):
    path = tmp_path / "roles.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match=error):
        load(path)
