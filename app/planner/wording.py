"""Plain-words helpers shared by the operations, the planner and its answers."""
from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit


def human_list(items: list[str]) -> str:
    items = [str(i) for i in items]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def normalize_port(value: Any) -> str:
    text = str(value).strip().lower().replace(" ", "")
    m = re.fullmatch(r"(\d{1,5})(?:/(tcp|udp))?", text)
    if not m or not 1 <= int(m.group(1)) <= 65535:
        raise ValueError(f"{value!r} is not a port like 80, 80/tcp or 53/udp (1-65535)")
    return f"{int(m.group(1))}/{m.group(2) or 'tcp'}"


# How each test type reads in a reply; optional parts are added only when the parameter is set.
_TEST_WORDS = {
    "boots": "the image boots (within {timeoutSeconds} s)", "service_running": "service {service} is running",
    "service_enabled": "service {service} is enabled", "port_open": "port {port}/{protocol} is open",
    "http_responds": "{url} answers with status {status}", "command_succeeds": "command `{command}` succeeds",
    "package_installed": "package {package} is installed", "file_exists": "{path} exists",
    "file_contains": "{path} contains {text!r}", "user_exists": "user {user} exists",
}
_TEST_EXTRAS = {"http_responds": ("contains", " and contains {!r}"), "command_succeeds": ("stdoutContains", " and prints {!r}"),
                "user_exists": ("groups", " in {}")}
_TEST_DEFAULTS = {"timeoutSeconds": 300, "protocol": "tcp", "status": 200}


def describe_test(test: dict) -> str:
    t, p = test.get("type"), test.get("params") or {}
    if t not in _TEST_WORDS:
        return f"{t} {p}"
    values = _TEST_DEFAULTS | {k: v for k, v in p.items() if v not in (None, "")}
    text = _TEST_WORDS[t].format_map(_Missing(values))
    key, extra = _TEST_EXTRAS.get(t, (None, ""))
    if key and p.get(key):
        text += extra.format(human_list(p[key]) if isinstance(p[key], list) else p[key])
    return text


class _Missing(dict):
    def __missing__(self, key):  # a parameter the test lacks reads as "None", as before
        return None


def url_port(url: str) -> int | None:
    try:
        parts = urlsplit(url)
        if parts.hostname not in ("localhost", "127.0.0.1", "::1"):
            return None
        return parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return None


def describe_changes(before: dict, after: dict) -> str:
    """What differs between two recipes, in words: "added nginx; removed docker.io; hostname web01 -> web02"."""
    parts: list[str] = []
    for key, label in (("packages", "package"), ("users", "user"), ("files", "file"), ("tests", "test"),
                       ("commands", "command")):
        name = {"users": lambda u: u["name"], "files": lambda f: f["path"], "tests": describe_test}.get(key, str)
        old, new = [name(x) for x in before.get(key, [])], [name(x) for x in after.get(key, [])]
        added, removed = [x for x in new if x not in old], [x for x in old if x not in new]
        if added:
            parts.append(f"added {label}{'s' if len(added) > 1 else ''} {human_list(added)}")
        if removed:
            parts.append(f"removed {label}{'s' if len(removed) > 1 else ''} {human_list(removed)}")
    for key in ("release", "format", "hostname", "timezone", "locale", "keyboard", "name"):
        if before.get(key) != after.get(key):
            parts.append(f"{key} {before.get(key)} -> {after.get(key)}")
    if before.get("services") != after.get("services"):
        parts.append(f"enabled services {human_list(after['services']['enable']) or 'none'}")
    if before.get("firewall") != after.get("firewall"):
        fw = after["firewall"]
        parts.append("firewall " + (f"on, allowing {human_list(fw['allow']) or 'nothing'}" if fw["enabled"] else "off"))
    return "; ".join(parts)
