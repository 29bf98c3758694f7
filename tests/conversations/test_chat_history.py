"""Through POST /api/chat the planner sees the conversation's versions and messages: undo, questions, answers."""
from __future__ import annotations


def test_undo_restores_the_previous_version_as_a_new_version(chat):
    cid = chat("add nginx")["conversationId"]
    chat("add htop", cid)
    undone = chat("undo the last change", cid)
    assert undone["changed"] is True and undone["recipeVersion"] == 4
    assert undone["recipe"]["packages"] == ["nginx"]
    assert "Restored version 2" in undone["response"] and "htop" in undone["response"]
    back = chat("go back to version 1", cid)
    assert back["recipe"]["packages"] == [] and back["recipeVersion"] == 5
    asked = chat("what changed between version 2 and 3", cid)
    assert asked["changed"] is False and asked["recipeVersion"] == 5
    assert "added package htop" in asked["response"]


def test_a_question_the_assistant_asks_is_completed_by_the_next_message(chat):
    first = chat("add a database")
    assert first["changed"] is False and "PostgreSQL, MariaDB (MySQL) or Redis?" in first["response"]
    answered = chat("postgres", first["conversationId"])
    assert answered["changed"] is True and answered["recipe"]["packages"] == ["postgresql"]


def test_a_correction_across_turns(chat):
    cid = chat("add mysql")["conversationId"]
    fixed = chat("no wait, PostgreSQL not MySQL", cid)
    assert fixed["recipe"]["packages"] == ["postgresql"]
    assert "Removed mariadb-server" in fixed["response"] and "Added postgresql" in fixed["response"]
