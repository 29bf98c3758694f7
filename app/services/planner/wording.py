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


def describe_test(test: dict) -> str:
    t, p = test.get("type"), test.get("params") or {}
    if t == "boots":
        return f"the image boots (within {p.get('timeoutSeconds', 300)} s)"
    if t == "service_running":
        return f"service {p.get('service')} is running"
    if t == "service_enabled":
        return f"service {p.get('service')} is enabled"
    if t == "port_open":
        return f"port {p.get('port')}/{p.get('protocol') or 'tcp'} is open"
    if t == "http_responds":
        text = f"{p.get('url')} answers with status {p.get('status') or 200}"
        return text + (f" and contains {p['contains']!r}" if p.get("contains") else "")
    if t == "command_succeeds":
        text = f"command `{p.get('command')}` succeeds"
        return text + (f" and prints {p['stdoutContains']!r}" if p.get("stdoutContains") else "")
    if t == "package_installed":
        return f"package {p.get('package')} is installed"
    if t == "file_exists":
        return f"{p.get('path')} exists"
    if t == "file_contains":
        return f"{p.get('path')} contains {p.get('text')!r}"
    if t == "user_exists":
        groups = p.get("groups") or []
        return f"user {p.get('user')} exists" + (f" in {human_list(groups)}" if groups else "")
    return f"{t} {p}"


def url_port(url: str) -> int | None:
    try:
        parts = urlsplit(url)
        if parts.hostname not in ("localhost", "127.0.0.1", "::1"):
            return None
        return parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return None
