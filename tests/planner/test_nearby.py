"""Requests it cannot do or does not understand: the reason, and the closest things from the catalog."""
from __future__ import annotations

import pytest

from app.engine.recipe import DEFAULT_RECIPE
from app.planner import plan
from app.planner.answers import CAPABILITIES
from app.planner.catalog import ALIASES
from app.planner.nearby import nearby, out_of_scope
from app.planner.roles import ROLES


@pytest.mark.parametrize("key", list(ROLES))
def test_every_role_is_proposed_for_its_related_words(key):
    role = ROLES[key]
    assert role.related, f"{key} has no related words in roles.toml"
    assert any(role.label in [n.what for n in nearby(f"I want {w}")] for w in role.related)


def test_catalog_phrases_are_never_out_of_scope():
    phrases = set(ALIASES) | {p for r in ROLES.values() for p in r.phrases}
    assert [p for p in phrases if out_of_scope(p)] == []
    for text in ("a file share for the windows machines", "samba for our windows clients", "add a share for windows",
                 "set the hostname to armada", "add python3-armor", "harm reduction", "create user ami"):
        assert out_of_scope(text) is None, text


@pytest.mark.parametrize("message", ["install windows 11", "make it an arm64 image", "upload it to azure",
                                     "convert it to vhdx", "enable secure boot", "send me a message when it is built",
                                     "start the build", "a media server", "a blog", "secure it", "zzzqqq xxyyz"])
def test_the_reply_says_why_and_is_never_the_help_list_alone(index_for, message):
    result = plan(message, DEFAULT_RECIPE, index_for=index_for)
    assert not result.changed
    assert CAPABILITIES not in result.reply
    assert any(w in result.reply for w in ("cannot", "not a package", "not packages", "does not", "do not", "only")), \
        result.reply
    assert any(w in result.reply for w in ("Nearby:", "The closest things I can do:", "I change the recipe:")), result.reply


def test_a_greeting_gets_the_list_of_what_it_understands(index_for):
    result = plan("hi there!", DEFAULT_RECIPE, index_for=index_for)
    assert CAPABILITIES in result.reply and not result.changed
