"""The acceptance conversation of issue #6, turn by turn, from the default recipe."""
from __future__ import annotations

import copy

from app.engine.recipe import DEFAULT_RECIPE, validate_recipe
from app.planner import plan

CAROL_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGm8c5lrLUg1HlnC4GVtUpfxW6k06Ofq9KzOYu0VxY3a carol@host"


def test_acceptance_conversation(index_for):
    recipe = copy.deepcopy(DEFAULT_RECIPE)

    def say(message):
        nonlocal recipe
        before = copy.deepcopy(recipe)
        result = plan(message, recipe, index_for=index_for)
        assert recipe == before, "plan() must not modify its input"
        assert validate_recipe(result.recipe) == result.recipe
        recipe = result.recipe
        return result

    r = say("Create a Debian server with SSH and Docker")
    assert r.changed
    assert {"openssh-server", "docker.io"} <= set(recipe["packages"])
    assert {"ssh", "docker"} <= set(recipe["services"]["enable"])
    assert "openssh-server" in r.reply and "docker.io" in r.reply

    r = say("add nginx and open port 80 and 443")
    assert "nginx" in recipe["packages"] and "nginx" in recipe["services"]["enable"]
    assert recipe["firewall"]["enabled"] is True
    assert {"80/tcp", "443/tcp"} <= set(recipe["firewall"]["allow"])
    assert "22/tcp" in recipe["firewall"]["allow"], "enabling the firewall must keep SSH reachable"
    assert "80/tcp" in r.reply and "443/tcp" in r.reply

    r = say("switch to bookworm")
    assert recipe["release"] == "bookworm"
    assert {"openssh-server", "docker.io", "nginx"} <= set(recipe["packages"])
    assert "bookworm" in r.reply

    r = say("make the hostname api-gw and the timezone America/New_York")
    assert recipe["hostname"] == "api-gw"
    assert recipe["timezone"] == "America/New_York"

    r = say(f"create user carol in the sudo group with key {CAROL_KEY}")
    carol = next(u for u in recipe["users"] if u["name"] == "carol")
    assert carol["groups"] == ["sudo"]
    assert carol["sshKeys"] == [CAROL_KEY]
    assert carol["passwordHash"] is None

    r = say("drop nginx")
    assert "nginx" not in recipe["packages"]
    assert "nginx" not in recipe["services"]["enable"]
    assert {"openssh-server", "docker.io"} <= set(recipe["packages"])
    assert "Removed nginx" in r.reply

    r = say("I'd like a qcow2 image instead")
    assert recipe["format"] == "qcow2"

    r = say("install htop, jq and tmux")
    assert {"htop", "jq", "tmux"} <= set(recipe["packages"])

    before = copy.deepcopy(recipe)
    r = say("install foobarbaz-not-real")
    assert recipe == before and not r.changed
    assert r.refused and "foobarbaz-not-real" in r.refused[0]
    assert "foobarbaz-not-real" not in recipe["packages"]

    r = say("what packages are in it?")
    assert not r.changed and r.operations == []
    for name in ("openssh-server", "docker.io", "htop", "jq", "tmux"):
        assert name in r.reply

    # The typo turn, in the same conversation and in a fresh one.
    r = say("Set up a Debain box with dockr")
    assert "docker.io" in recipe["packages"]
    fresh = plan("Set up a Debain box with dockr", DEFAULT_RECIPE, index_for=index_for)
    assert fresh.recipe["packages"] == ["docker.io"]
    assert "docker" in fresh.recipe["services"]["enable"]
    assert fresh.recipe["release"] == "trixie"
    assert "dockr" in fresh.reply  # says how it read the typo


def test_same_input_same_output(index_for):
    message = "Create a Debian 12 server with SSH, nginx and redis, open port 80, hostname web1"
    a = plan(message, DEFAULT_RECIPE, index_for=index_for)
    b = plan(message, DEFAULT_RECIPE, index_for=index_for)
    assert (a.recipe, a.reply, a.operations, a.refused) == (b.recipe, b.reply, b.operations, b.refused)
