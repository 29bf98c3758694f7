"""Assertion specs: the CLI form and parameter validation (against the recipe's own schema)."""
import pytest

from app.engine.testing import parse_assertion, validate_assertion


@pytest.mark.parametrize("spec, expected", [
    ("service_running:service=ssh", {"type": "service_running", "params": {"service": "ssh"}}),
    ("port_open:port=22,protocol=tcp", {"type": "port_open", "params": {"port": 22, "protocol": "tcp"}}),
    ("port_open:port=53", {"type": "port_open", "params": {"port": 53, "protocol": "tcp"}}),
    ("boots", {"type": "boots", "params": {"timeoutSeconds": 300}}),
    ("user_exists:user=admin,groups=sudo+docker",
     {"type": "user_exists", "params": {"user": "admin", "groups": ["sudo", "docker"]}}),
    (r"command_succeeds:command=echo a\,b,stdoutContains=a",
     {"type": "command_succeeds", "params": {"command": "echo a,b", "stdoutContains": "a"}}),
    ('command_succeeds:{"command": "printf %s,%s 1 2", "stdoutContains": "1,2"}',
     {"type": "command_succeeds", "params": {"command": "printf %s,%s 1 2", "stdoutContains": "1,2"}}),
    ("file_contains:path=/etc/motd,text=hello=world",
     {"type": "file_contains", "params": {"path": "/etc/motd", "text": "hello=world"}}),
])
def test_cli_form_parses(spec, expected):
    assert parse_assertion(spec) == expected


@pytest.mark.parametrize("spec, words", [
    ("", ["empty assertion"]),
    ("nginx_works", ["unknown assertion type 'nginx_works'", "service_running"]),
    ("service_running", ["service_running", "service", "Missing data"]),
    ("service_running:svc=ssh", ["no parameter 'svc'", "service"]),
    ("service_running:service=ssh,service=nginx", ["given twice"]),
    ("service_running:ssh", ["expected name=value", "'ssh'"]),
    ("port_open:port=http", ["port", "whole number", "'http'"]),
    ("port_open:port=70000", ["port", "65535"]),
    ("port_open:port=22,protocol=sctp", ["protocol", "tcp, udp"]),
    ("http_responds:url=ftp://example", ["url", "not an http(s) URL"]),
    ("file_exists:path=etc/motd", ["path", "absolute"]),
    ("command_succeeds:{not json}", ["not valid JSON"]),
])
def test_bad_specs_name_what_is_wrong(spec, words):
    with pytest.raises(ValueError) as err:
        parse_assertion(spec)
    for word in words:
        assert word in str(err.value)


def test_validate_assertion_rejects_unknown_params_and_non_objects():
    with pytest.raises(ValueError, match="params.colour"):
        validate_assertion({"type": "file_exists", "params": {"path": "/etc/motd", "colour": "red"}})
    with pytest.raises(ValueError, match="must be an object"):
        validate_assertion("service_running")
    assert validate_assertion({"type": "file_exists", "params": {"path": "/x"}}) == \
        {"type": "file_exists", "params": {"path": "/x"}}
