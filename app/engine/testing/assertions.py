"""Assertion specs: validation (the recipe's own schema is the single source of truth) and the CLI form."""
from __future__ import annotations

import json
from typing import Any

from marshmallow import ValidationError, fields

from app.engine.recipe import TEST_PARAMS, TestSchema

# Where each assertion type is checked.
FILESYSTEM_TYPES = ("package_installed", "file_exists", "file_contains", "user_exists", "service_enabled")
GUEST_TYPES = ("service_running", "command_succeeds", "http_responds", "port_open")
BOOT_TYPES = ("boots",)
ASSERTION_TYPES = tuple(TEST_PARAMS)


def _flatten(messages: Any, prefix: str = "") -> list[str]:
    if isinstance(messages, dict):
        out: list[str] = []
        for key, value in messages.items():
            out += _flatten(value, f"{prefix}.{key}" if prefix else str(key))
        return out
    if isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        return [f"{prefix}: {m}" if prefix else m for m in messages]
    if isinstance(messages, list):
        return [m for item in messages for m in _flatten(item, prefix)]
    return [f"{prefix}: {messages}" if prefix else str(messages)]


def validate_assertion(spec: Any) -> dict[str, Any]:
    """Return {"type", "params"} with defaults filled, or raise ValueError naming what is wrong."""
    if not isinstance(spec, dict):
        raise ValueError(f"an assertion must be an object with 'type' and 'params', got {type(spec).__name__}")
    kind = spec.get("type")
    try:
        loaded = TestSchema().load({"type": kind, "params": spec.get("params") or {}})
    except ValidationError as err:
        raise ValueError(f"invalid {kind or 'assertion'} assertion: " + "; ".join(_flatten(err.messages))) from None
    return {"type": loaded["type"], "params": dict(loaded["params"])}


def _split_unescaped(text: str, sep: str) -> list[str]:
    parts, current, escaped = [], [], False
    for ch in text:
        if escaped:
            current.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == sep:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


def _coerce(kind: str, name: str, raw: str) -> Any:
    field = TEST_PARAMS[kind].get(name)
    if field is None:
        known = ", ".join(TEST_PARAMS[kind]) or "none"
        raise ValueError(f"{kind} has no parameter {name!r} (parameters: {known})")
    if isinstance(field, fields.Integer):
        try:
            return int(raw)
        except ValueError:
            raise ValueError(f"{kind} parameter {name} must be a whole number, got {raw!r}") from None
    if isinstance(field, fields.List):
        # groups=sudo+docker: commas already separate parameters
        return [g for g in raw.split("+") if g]
    return raw


def parse_assertion(spec: str) -> dict[str, Any]:
    """Parse the CLI form: 'service_running:service=ssh', 'port_open:port=22,protocol=tcp'.

    A value may contain a comma escaped as '\\,'; the part after ':' may also be a JSON object
    ('command_succeeds:{"command": "echo a,b"}'). List values are joined with '+'
    ('user_exists:user=admin,groups=sudo+docker').
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError("empty assertion; expected TYPE or TYPE:name=value,...")
    kind, _, rest = spec.strip().partition(":")
    kind = kind.strip()
    if kind not in TEST_PARAMS:
        raise ValueError(f"unknown assertion type {kind!r}; one of: {', '.join(ASSERTION_TYPES)}")
    rest = rest.strip()
    params: dict[str, Any] = {}
    if rest.startswith("{"):
        try:
            params = json.loads(rest)
        except json.JSONDecodeError as err:
            raise ValueError(f"{kind} parameters are not valid JSON: {err.msg} at column {err.colno}") from None
        if not isinstance(params, dict):
            raise ValueError(f"{kind} parameters must be a JSON object")
    elif rest:
        for item in _split_unescaped(rest, ","):
            name, eq, value = item.partition("=")
            name = name.strip()
            if not eq or not name:
                raise ValueError(f"{kind}: expected name=value, got {item!r}")
            if name in params:
                raise ValueError(f"{kind}: parameter {name!r} given twice")
            params[name] = _coerce(kind, name, value)
    return validate_assertion({"type": kind, "params": params})


def describe(assertion: dict[str, Any]) -> str:
    """One-line human form, used by the CLI and in messages."""
    params = ", ".join(f"{k}={v}" for k, v in assertion.get("params", {}).items() if v not in (None, [], ""))
    return f"{assertion.get('type')}({params})"
