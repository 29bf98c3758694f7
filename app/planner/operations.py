"""Recipe operations: the one way any planner (built-in or LLM) changes a recipe.

Each operation is a dict {"op": name, ...args}. `apply_operations` checks every operation against
the same JSON schemas that OPERATION_TOOLS hands to a language model, applies them to a copy, and
validates the result with the engine's recipe validator, so nothing is ever half-applied.
"""
from __future__ import annotations

import copy
from typing import Any, Callable

from app.engine.recipe import RecipeError, TEST_TYPES, validate_recipe

from .edits import HANDLERS, Work
from .roles import ROLES

# ---- operation schemas (also the LLM tool definitions) --------------------------------------

_STR_LIST = {"type": "array", "items": {"type": "string"}, "minItems": 1}
_PORT_LIST = {"type": "array", "items": {"type": ["string", "integer"]}, "minItems": 1,
              "description": "port rules like \"80/tcp\", \"53/udp\" or 8080 (tcp)"}

SPECS: dict[str, tuple[str, dict[str, dict], list[str]]] = {
    "add_packages": ("Install Debian packages (real package names of the recipe's release, e.g. openssh-server, "
                     "docker.io, nginx). Known services are enabled automatically.",
                     {"packages": _STR_LIST}, ["packages"]),
    "remove_packages": ("Remove packages; their services and the tests that check them go too.",
                        {"packages": _STR_LIST}, ["packages"]),
    "set": ("Set a single recipe setting.",
            {"field": {"type": "string", "enum": ["release", "format", "hostname", "timezone", "locale", "keyboard", "name"]},
             "value": {"type": "string", "description": "release: trixie|bookworm; format: iso|qcow2|oci|rootfs; "
                                                        "timezone: IANA name like Europe/Berlin; locale like de_DE.UTF-8; "
                                                        "keyboard: XKB layout like de"}},
            ["field", "value"]),
    "add_user": ("Create a user, or add groups/SSH keys/a password to an existing one.",
                 {"name": {"type": "string"}, "groups": {"type": "array", "items": {"type": "string"}},
                  "sshKeys": {"type": "array", "items": {"type": "string"}, "description": "full public key lines"},
                  "password": {"type": "string", "description": "plain password; only its SHA-512 crypt hash is stored"},
                  "passwordHash": {"type": "string", "description": "an existing crypt(3) hash such as $6$..."}},
                 ["name"]),
    "remove_user": ("Delete a user.", {"name": {"type": "string"}}, ["name"]),
    "remove_user_from_groups": ("Take a user out of groups.", {"name": {"type": "string"}, "groups": _STR_LIST},
                                ["name", "groups"]),
    "open_ports": ("Allow ports through the firewall (enables it, keeping installed services reachable).",
                   {"ports": _PORT_LIST}, ["ports"]),
    "close_ports": ("Stop allowing ports through the firewall.", {"ports": _PORT_LIST}, ["ports"]),
    "set_firewall": ("Turn the firewall on or off; with `allow`, allow exactly those ports and nothing else.",
                     {"enabled": {"type": "boolean"}, "allow": {"type": "array", "items": {"type": ["string", "integer"]}}},
                     ["enabled"]),
    "add_file": ("Create or replace a file in the image.",
                 {"path": {"type": "string"}, "content": {"type": "string"},
                  "mode": {"type": "string", "description": "octal, default 0644"},
                  "owner": {"type": "string", "description": "default root"}},
                 ["path", "content"]),
    "remove_file": ("Remove a file from the recipe.", {"path": {"type": "string"}}, ["path"]),
    "add_test": ("Add a test the built image must pass.",
                 {"type": {"type": "string", "enum": list(TEST_TYPES)},
                  "params": {"type": "object", "description": "boots{timeoutSeconds} service_running{service} "
                             "port_open{port,protocol} http_responds{url,status,contains} command_succeeds{command,stdoutContains} "
                             "package_installed{package} file_exists{path} file_contains{path,text} user_exists{user,groups} "
                             "service_enabled{service}"}},
                 ["type"]),
    "remove_tests": ("Remove tests: of a type, and/or whose parameters mention `subject`; or all of them.",
                     {"type": {"type": "string", "enum": list(TEST_TYPES)}, "subject": {"type": "string"},
                      "all": {"type": "boolean"}}, []),
    "enable_services": ("Enable systemd services at boot.", {"services": _STR_LIST}, ["services"]),
    "disable_services": ("Disable systemd services at boot.", {"services": _STR_LIST}, ["services"]),
    "add_command": ("Run a shell command at the end of the build, inside the image.", {"command": {"type": "string"}},
                    ["command"]),
    "remove_command": ("Remove a build command.", {"command": {"type": "string"}}, ["command"]),
    "apply_role": ("Make the server fit a role from the role catalog: its packages, services, tests, and (with open) "
                   "its ports opened in the firewall. Prefer this to single packages when the user names a role.",
                   {"role": {"type": "string", "enum": list(ROLES), "description": "; ".join(
                       f"{k}: {r.label}" for k, r in ROLES.items())},
                    "open": {"type": "boolean", "description": "the user asked for access (open, reachable, allow)"},
                    "url": {"type": "string", "description": "kiosk: the page to show"}},
                   ["role"]),
    "restore_version": ("Make an earlier recipe version (by number) the recipe again: undo, go back, start over "
                        "(version 1 is the starting recipe).", {"number": {"type": "integer"}}, ["number"]),
}

OPERATION_TOOLS: list[dict] = [
    {"type": "function", "function": {
        "name": name, "description": desc,
        "parameters": {"type": "object", "properties": props, "required": required, "additionalProperties": False}}}
    for name, (desc, props, required) in SPECS.items()
]

_PY_TYPES = {"string": str, "integer": int, "boolean": bool, "array": list, "object": dict}


def _type_ok(value: Any, types: str | list[str]) -> bool:
    for t in [types] if isinstance(types, str) else types:
        if isinstance(value, _PY_TYPES[t]) and not (t == "integer" and isinstance(value, bool)):
            return True
    return False


def check_operation(op: Any, position: int = 0) -> tuple[str, dict]:
    """-> (name, args) or ValueError naming the operation and the bad argument."""
    if not isinstance(op, dict) or not isinstance(op.get("op"), str):
        raise ValueError(f"operation {position + 1} must be an object with an \"op\" name")
    name = op["op"]
    if name not in SPECS:
        raise ValueError(f"unknown operation {name!r}; known: {', '.join(SPECS)}")
    _, props, required = SPECS[name]
    args = {k: v for k, v in op.items() if k != "op"}
    for key in args:
        if key not in props:
            raise ValueError(f"{name}: unknown argument {key!r}")
    for key in required:
        if key not in args or args[key] is None:
            raise ValueError(f"{name}: missing argument {key!r}")
    for key, value in args.items():
        spec = props[key]
        if value is None and key not in required:
            continue
        if not _type_ok(value, spec["type"]):
            raise ValueError(f"{name}: {key} must be of type {spec['type']}")
        if "enum" in spec and value not in spec["enum"]:
            raise ValueError(f"{name}: {key} must be one of {', '.join(spec['enum'])}, not {value!r}")
        if spec["type"] == "array":
            if spec.get("minItems") and len(value) < spec["minItems"]:
                raise ValueError(f"{name}: {key} must not be empty")
            for item in value:
                if not _type_ok(item, spec["items"]["type"]):
                    raise ValueError(f"{name}: every item of {key} must be of type {spec['items']['type']}")
        if spec["type"] == "string" and key not in ("content", "value") and not value.strip():
            raise ValueError(f"{name}: {key} must not be empty")
    return name, args


assert set(HANDLERS) == set(SPECS)


def apply_operations(recipe: dict, operations: list[dict], *, index_for: Callable,
                     versions: dict[int, dict] | None = None) -> tuple[dict, list[str]]:
    """Apply operations to a copy of `recipe` -> (new validated recipe, descriptions).

    Raises ValueError naming the operation for an unknown operation, bad arguments, or a result
    the recipe validator rejects; the input recipe is never modified.
    """
    if not isinstance(operations, list):
        raise ValueError("operations must be a list")
    try:
        work = Work(copy.deepcopy(validate_recipe(recipe)), index_for, versions)
    except RecipeError as err:
        raise ValueError(f"the current recipe is invalid: {err}") from None
    descriptions: list[str] = []
    for i, op in enumerate(operations):
        name, args = check_operation(op, i)
        descriptions += HANDLERS[name](work, **args)
    try:
        result = validate_recipe(work.r)
    except RecipeError as err:
        raise ValueError(f"the change would make the recipe invalid: {err}") from None
    return result, descriptions
