"""The optional LLM planner against a real local HTTP server speaking the chat-completions protocol.

The server is a fake of an EXTERNAL service (an OpenAI-compatible endpoint); our own code runs for real.
"""
from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from app.engine.recipe import DEFAULT_RECIPE
from app.planner import OPERATION_TOOLS, BuiltinPlanner, PlannerSettings, get_planner
from tests.planner.fake_llm import FakeLLM


@pytest.fixture
def llm():
    fake = FakeLLM()
    yield fake
    fake.close()


@pytest.fixture
def planner(llm, index_for):
    return get_planner(PlannerSettings(llm_url=llm.url, llm_model="tiny-test", llm_api_key="sk-test", llm_timeout=5),
                       index_for=index_for)


def test_without_settings_the_builtin_planner_is_used(index_for):
    assert isinstance(get_planner(PlannerSettings(), index_for=index_for), BuiltinPlanner)
    assert isinstance(get_planner(PlannerSettings(llm_url="http://127.0.0.1:9/v1"), index_for=index_for), BuiltinPlanner)


def test_settings_come_from_the_app_config_and_a_bad_timeout_is_named():
    settings = PlannerSettings.from_config({"KILN_LLM_URL": " http://llm/v1 ", "KILN_LLM_MODEL": "m",
                                            "KILN_LLM_TIMEOUT": "2.5"})
    assert settings == PlannerSettings(llm_url="http://llm/v1", llm_model="m", llm_timeout=2.5)
    with pytest.raises(ValueError, match="KILN_LLM_TIMEOUT must be a number of seconds, got 'soon'"):
        PlannerSettings.from_config({"KILN_LLM_TIMEOUT": "soon"})


def test_tool_calls_are_applied(planner, llm):
    llm.reply_tools(("add_packages", {"packages": ["nginx", "openssh-server"]}),
                    ("open_ports", {"ports": ["80/tcp", 443]}),
                    ("set", {"field": "hostname", "value": "web01"}),
                    content="Done: nginx with SSH, ports open.")
    history = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    result = planner.plan("a web server with ssh, ports 80 and 443, hostname web01", DEFAULT_RECIPE, history)
    assert result.changed
    assert {"nginx", "openssh-server"} <= set(result.recipe["packages"])
    assert {"80/tcp", "443/tcp", "22/tcp"} <= set(result.recipe["firewall"]["allow"])
    assert result.recipe["hostname"] == "web01"
    assert result.operations[0] == {"op": "add_packages", "packages": ["nginx", "openssh-server"]}
    assert result.reply.startswith("Done: nginx with SSH")
    assert "Added nginx" in result.reply  # the exact changes are stated too

    sent = llm.requests[0]
    assert sent["path"] == "/v1/chat/completions"
    assert sent["headers"]["Authorization"] == "Bearer sk-test"
    assert sent["json"]["model"] == "tiny-test"
    assert sent["json"]["tools"] == OPERATION_TOOLS
    messages = sent["json"]["messages"]
    assert messages[0]["role"] == "system" and "release: trixie" in messages[0]["content"]
    assert [m["content"] for m in messages[1:]] == ["hi", "hello", "a web server with ssh, ports 80 and 443, hostname web01"]


def test_passwords_from_the_model_are_hashed_before_they_are_recorded(planner, llm):
    llm.reply_tools(("add_user", {"name": "ann", "groups": ["sudo"], "password": "hunter2"}))
    result = planner.plan("user ann with sudo, password hunter2", DEFAULT_RECIPE, [])
    assert result.recipe["users"][0]["passwordHash"].startswith("$6$")
    assert "hunter2" not in str(result.operations) and "hunter2" not in str(result.recipe)


def test_text_answer_changes_nothing(planner, llm):
    llm.reply_text("It has no packages yet.")
    result = planner.plan("what packages are in it?", DEFAULT_RECIPE, [])
    assert not result.changed and result.operations == []
    assert result.reply == "It has no packages yet."


@pytest.mark.parametrize("reply", [
    (500, b'{"error": "overloaded"}'),
    (200, b"this is not json"),
    (200, b'{"choices": []}'),
    (200, json.dumps({"choices": [{"message": {"role": "assistant", "content": None, "tool_calls": [
        {"id": "1", "type": "function", "function": {"name": "add_packages", "arguments": "{not json"}}]}}]}).encode()),
], ids=["http-500", "garbage", "no-choices", "bad-arguments-json"])
def test_errors_fall_back_to_builtin(planner, llm, caplog, reply):
    llm.replies.append(reply)
    with caplog.at_level(logging.WARNING, logger="kiln.planner"):
        result = planner.plan("add nginx", DEFAULT_RECIPE, [])
    assert result.recipe["packages"] == ["nginx"]  # the built-in planner did it
    assert any("falling back to the built-in planner" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("call", [
    ("install_everything", {"packages": ["nginx"]}),                 # unknown operation
    ("add_packages", {"packages": "nginx"}),                          # wrong type
    ("add_packages", {"packages": ["foobarbaz-not-real"]}),           # not in the index
    ("set", {"field": "release", "value": "bullseye"}),               # invalid value
    ("add_user", {"name": "Bad Name"}),                               # invalid user
    ("add_packages", {"packages": ["nginx"], "extra": True}),         # unknown argument
], ids=["unknown-op", "wrong-type", "unknown-package", "bad-release", "bad-user", "extra-arg"])
def test_invalid_tool_calls_fall_back(planner, llm, caplog, call):
    llm.reply_tools(("add_packages", {"packages": ["htop"]}), call)
    with caplog.at_level(logging.WARNING, logger="kiln.planner"):
        result = planner.plan("add redis", DEFAULT_RECIPE, [])
    # Nothing of the model's half-valid answer is applied; the built-in planner's reading is.
    assert result.recipe["packages"] == ["redis-server"]
    assert any("falling back" in r.getMessage() for r in caplog.records)


def test_connection_refused_falls_back(index_for, caplog):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    planner = get_planner(PlannerSettings(llm_url=f"http://127.0.0.1:{port}/v1", llm_model="m"), index_for=index_for)
    with caplog.at_level(logging.WARNING, logger="kiln.planner"):
        result = planner.plan("switch to bookworm", DEFAULT_RECIPE, [])
    assert result.recipe["release"] == "bookworm"
    assert any("falling back" in r.getMessage() for r in caplog.records)


def test_timeout_falls_back(index_for, caplog):
    stall = threading.Event()

    class Slow(BaseHTTPRequestHandler):
        def do_POST(self):
            stall.wait(5)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        planner = get_planner(PlannerSettings(llm_url=f"http://127.0.0.1:{server.server_address[1]}/v1",
                                              llm_model="m", llm_timeout=0.5), index_for=index_for)
        with caplog.at_level(logging.WARNING, logger="kiln.planner"):
            result = planner.plan("add git", DEFAULT_RECIPE, [])
        assert result.recipe["packages"] == ["git"]
        assert any("falling back" in r.getMessage() for r in caplog.records)
    finally:
        stall.set()
        server.shutdown()
        server.server_close()


def test_the_model_applies_a_role_from_the_same_catalog_as_the_builtin_planner(planner, llm, index_for):
    from app.planner import plan

    llm.reply_tools(("set_firewall", {"enabled": True}), ("apply_role", {"role": "mail-relay", "open": True}))
    by_model = planner.plan("a mail relay reachable from outside, with a firewall", DEFAULT_RECIPE, [])
    by_builtin = plan("turn on the firewall and a mail relay reachable from outside", DEFAULT_RECIPE, index_for=index_for)
    assert by_model.recipe == by_builtin.recipe
    assert "25/tcp" in by_model.recipe["firewall"]["allow"]
    tool = next(t for t in OPERATION_TOOLS if t["function"]["name"] == "apply_role")
    assert "mail-relay" in tool["function"]["parameters"]["properties"]["role"]["enum"]
    assert "mail-relay: a mail relay (Postfix)" in llm.requests[0]["json"]["messages"][0]["content"]


def test_the_model_restores_a_version(planner, llm):
    v2 = {**DEFAULT_RECIPE, "packages": ["nginx"]}
    v3 = {**DEFAULT_RECIPE, "packages": ["nginx", "htop"]}
    llm.reply_tools(("restore_version", {"number": 2}))
    result = planner.plan("undo", v3, [], {1: DEFAULT_RECIPE, 2: v2, 3: v3})
    assert result.recipe["packages"] == ["nginx"]
    assert "Restored version 2: removed package htop" in result.reply


@pytest.mark.parametrize("call", [("apply_role", {"role": "space-station"}), ("restore_version", {"number": 7})],
                         ids=["unknown-role", "unknown-version"])
def test_an_invalid_role_or_version_from_the_model_falls_back(planner, llm, caplog, call):
    llm.reply_tools(call)
    with caplog.at_level(logging.WARNING, logger="kiln.planner"):
        result = planner.plan("add htop", DEFAULT_RECIPE, [], {1: DEFAULT_RECIPE})
    assert result.recipe["packages"] == ["htop"]
    assert any("falling back" in r.getMessage() for r in caplog.records)
