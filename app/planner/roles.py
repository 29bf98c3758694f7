"""The server-role catalog (roles.toml): what people call a server -> packages, services, ports, tests.

Both planners use it: the built-in one matches the phrases, the LLM names a role in `apply_role`.
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from app.engine.recipe import TEST_TYPES

ROLES_FILE = Path(__file__).with_name("roles.toml")


@dataclass(frozen=True)
class Role:
    key: str
    label: str
    phrases: tuple[str, ...]
    packages: tuple[tuple[str, ...], ...]
    services: tuple[str, ...] = ()
    ports: tuple[str, ...] = ()
    users: tuple[dict, ...] = ()
    files: tuple[dict, ...] = ()
    tests: tuple[dict, ...] = ()
    note: str = ""
    related: tuple[str, ...] = ()  # words that make it the closest match, never enough to apply it


@dataclass(frozen=True)
class Ask:
    key: str
    phrases: tuple[str, ...]
    question: str
    choices: tuple[str, ...] = field(default_factory=tuple)
    related: tuple[str, ...] = ()


def _check(entry: dict, where: str, required: tuple[str, ...], known: set[str]) -> None:
    missing = [k for k in required if not entry.get(k)]
    unknown = sorted(set(entry) - known)
    if missing or unknown:
        raise ValueError(f"{ROLES_FILE.name} {where}: " + "; ".join(
            ([f"missing {', '.join(missing)}"] if missing else []) + ([f"unknown {', '.join(unknown)}"] if unknown else [])))


def load(path: Path = ROLES_FILE) -> tuple[dict[str, Role], dict[str, Ask]]:
    data = tomllib.loads(path.read_text())
    roles: dict[str, Role] = {}
    for i, entry in enumerate(data.get("role", [])):
        where = f"role {entry.get('key') or i + 1}"
        _check(entry, where, ("key", "label", "phrases", "packages"), set(Role.__dataclass_fields__))
        for test in entry.get("tests", []):
            if test.get("type") not in TEST_TYPES:
                raise ValueError(f"{ROLES_FILE.name} {where}: unknown test type {test.get('type')!r}")
        if entry["key"] in roles:
            raise ValueError(f"{ROLES_FILE.name} {where}: the key is used twice")
        roles[entry["key"]] = Role(
            key=entry["key"], label=entry["label"], phrases=tuple(p.lower() for p in entry["phrases"]),
            packages=tuple((p,) if isinstance(p, str) else tuple(p) for p in entry["packages"]),
            services=tuple(entry.get("services", ())), ports=tuple(entry.get("ports", ())),
            users=tuple(entry.get("users", ())), files=tuple(entry.get("files", ())),
            tests=tuple(entry.get("tests", ())), note=entry.get("note", ""),
            related=tuple(w.lower() for w in entry.get("related", ())))
    asks: dict[str, Ask] = {}
    for i, entry in enumerate(data.get("ask", [])):
        _check(entry, f"ask {entry.get('key') or i + 1}", ("key", "phrases", "question", "choices"),
               set(Ask.__dataclass_fields__))
        asks[entry["key"]] = Ask(entry["key"], tuple(p.lower() for p in entry["phrases"]), entry["question"],
                                 tuple(entry["choices"]), tuple(w.lower() for w in entry.get("related", ())))
    return roles, asks


ROLES, ASKS = load()
