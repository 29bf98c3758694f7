"""The recipe: schema, validation with field paths, canonical form and hash.

Validation names every bad field with a path like `packages[3]` or
`users[0].sshKeys[1]`, so the chat, the editor and the API can point at it.
"""
from __future__ import annotations

import base64
import binascii
import copy
import functools
import hashlib
import json
import re
import zoneinfo
from pathlib import Path, PurePosixPath
from typing import Any

import yaml
from marshmallow import (
    RAISE, Schema, ValidationError, fields, post_load, pre_load, validate, validates_schema,
)

RELEASES = ("trixie", "bookworm")
FORMATS = ("iso", "rootfs", "oci", "qcow2")
BOOTABLE_FORMATS = ("iso", "qcow2")

PACKAGE_RE = re.compile(r"^[a-z0-9][a-z0-9+.-]{1,127}\Z")  # Debian policy 5.6.1 (length: ours)
HOST_LABEL_RE = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)\Z")
USER_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}\Z")
SERVICE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9@._:\\-]{0,254}\Z")
PORT_RE = re.compile(r"^([0-9]{1,5})(?:/(tcp|udp))?\Z")
MODE_RE = re.compile(r"^0?[0-7]{3,4}\Z")
CRYPT_RE = re.compile(r"^\$(?:1|5|6|2[aby]|y|gy|7)\$[./A-Za-z0-9$=,]{8,}\Z")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
SSH_KEY_TYPES = {
    "ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com",
}

DEFAULT_RECIPE: dict[str, Any] = {
    "name": "debian",
    "distribution": "debian",
    "release": "trixie",
    "architecture": "amd64",
    "format": "iso",
    "packages": [],
    "hostname": "debian",
    "timezone": "Etc/UTC",
    "locale": "C.UTF-8",
    "keyboard": "us",
    "users": [],
    "services": {"enable": [], "disable": []},
    "firewall": {"enabled": False, "allow": []},
    "files": [],
    "commands": [],
    "tests": [],
}
FIELD_ORDER = list(DEFAULT_RECIPE)


class RecipeError(Exception):
    """A recipe failed validation; .errors maps field path -> messages."""

    def __init__(self, errors: dict[str, list[str]]):
        self.errors = errors
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()))


# ---- host-derived vocabularies -------------------------------------------------------

@functools.cache
def _timezones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


@functools.cache
def _locales() -> frozenset[str] | None:
    supported = Path("/usr/share/i18n/SUPPORTED")
    if not supported.is_file():
        return None
    names = {line.split()[0] for line in supported.read_text().splitlines() if line.strip() and not line.startswith("#")}
    return frozenset(names | {"C.UTF-8", "C", "POSIX"})


LOCALE_RE = re.compile(r"^(?:C|POSIX|C\.UTF-8|[a-z]{2,3}_[A-Z]{2}(?:\.(?:UTF-8|ISO-8859-\d+))?(?:@[a-z]+)?)\Z")


@functools.cache
def _keyboard_layouts() -> frozenset[str] | None:
    rules = Path("/usr/share/X11/xkb/rules/base.lst")
    if not rules.is_file():
        return None
    layouts: set[str] = set()
    section = None
    for line in rules.read_text(errors="replace").splitlines():
        if line.startswith("!"):
            section = line[1:].strip()
        elif section == "layout" and line.strip():
            layouts.add(line.split()[0])
    return frozenset(layouts)


KEYBOARD_RE = re.compile(r"^[a-z]{2,3}(?:-[a-z0-9_]+)?\Z")


# ---- field validators ------------------------------------------------------------------

SHOWN_CHARS = 40  # a rejected value is quoted only this far: an error never grows with the input


def _shown(value: Any) -> str:
    """A rejected value as a short quote for an error message (never the whole of a huge or nested value)."""
    if isinstance(value, str):
        return json.dumps(value if len(value) <= SHOWN_CHARS else value[:SHOWN_CHARS] + "…", ensure_ascii=False)
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, (int, float)):
        text = repr(value)
        return text if len(text) <= SHOWN_CHARS else "a number"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"a {type(value).__name__} value"


def _one_of(choices: tuple[str, ...] | list[str], what: str) -> Any:
    def check(value: str) -> None:
        if value not in choices:
            raise ValidationError(f"unknown {what} {_shown(value)}; one of: {', '.join(choices)}")
    return check


def _check_package(value: str) -> None:
    if not isinstance(value, str) or not PACKAGE_RE.match(value):
        raise ValidationError(f"{_shown(value)} is not a valid Debian package name")


def _check_hostname(value: str) -> None:
    if len(value) > 253 or not all(HOST_LABEL_RE.match(label) for label in value.split(".")):
        raise ValidationError(f"{_shown(value)} is not a valid hostname (RFC 1123: letters, digits, hyphens; labels of 1-63 characters)")


def _check_timezone(value: str) -> None:
    if value not in _timezones():
        raise ValidationError(f"{_shown(value)} is not a known timezone (e.g. Europe/Berlin, Etc/UTC)")


def _check_locale(value: str) -> None:
    known = _locales()
    ok = value in known if known is not None else bool(LOCALE_RE.match(value))
    if not ok:
        raise ValidationError(f"{_shown(value)} is not a supported locale (e.g. en_US.UTF-8)")


def _check_keyboard(value: str) -> None:
    layouts = _keyboard_layouts()
    layout = value.split("-", 1)[0] if layouts is None else value
    ok = layout in layouts if layouts is not None else bool(KEYBOARD_RE.match(value))
    if not ok:
        raise ValidationError(f"{_shown(value)} is not a known keyboard layout (e.g. us, de, fr)")


def _check_user_name(value: str) -> None:
    if not USER_RE.match(value):
        raise ValidationError(f"{_shown(value)} is not a valid user name (lowercase letters, digits, _ and -, starting with a letter or _, at most 32)")


def _check_group_name(value: str) -> None:
    if not USER_RE.match(value):
        raise ValidationError(f"{_shown(value)} is not a valid group name")


def check_ssh_key(value: str) -> None:
    parts = value.strip().split()
    if len(parts) < 2:
        raise ValidationError("not an SSH public key: expected '<type> <base64> [comment]'")
    key_type, blob = parts[0], parts[1]
    if key_type not in SSH_KEY_TYPES:
        raise ValidationError(f"unsupported SSH key type {_shown(key_type)} (use ssh-ed25519, ssh-rsa or ecdsa-sha2-*)")
    try:
        raw = base64.b64decode(blob, validate=True)
    except (binascii.Error, ValueError):
        raise ValidationError("SSH key data is not valid base64") from None
    # The blob starts with the key type as a length-prefixed string; a mismatch means a mangled key.
    if len(raw) < 4:
        raise ValidationError("SSH key data is too short")
    n = int.from_bytes(raw[:4], "big")
    if raw[4:4 + n].decode("ascii", "replace") != key_type:
        raise ValidationError(f"SSH key data does not match its type {key_type}")
    minimum = {"ssh-ed25519": 51, "ssh-rsa": 200}.get(key_type, 60)
    if len(raw) < minimum:
        raise ValidationError("SSH key data is truncated")


def _check_password_hash(value: str) -> None:
    if not CRYPT_RE.match(value):
        raise ValidationError("passwordHash must be a crypt(3) hash such as $6$... or $y$... (or null), never a plain password")


def _check_service(value: str) -> None:
    if not SERVICE_RE.match(value) or ".." in value:
        raise ValidationError(f"{_shown(value)} is not a valid systemd unit name")


def _check_port(value: Any) -> None:
    text = str(value)
    m = PORT_RE.match(text)
    if not m or isinstance(value, bool):
        raise ValidationError(f"{_shown(value)} is not a port rule like 22/tcp, 80 or 53/udp")
    if not 1 <= int(m.group(1)) <= 65535:
        raise ValidationError(f"port {m.group(1)} is out of range 1-65535")


def _check_abs_path(value: str) -> None:
    p = PurePosixPath(value)
    if not value.startswith("/") or value == "/" or ".." in p.parts or "\0" in value or value.endswith("/"):
        raise ValidationError(f"{_shown(value)} must be an absolute file path (like /etc/motd) without '..'")


def _check_mode(value: str) -> None:
    if not MODE_RE.match(str(value)):
        raise ValidationError(f"{_shown(value)} is not an octal file mode like 0644")


def _check_owner(value: str) -> None:
    parts = value.split(":")
    if len(parts) > 2 or not all(USER_RE.match(p) for p in parts):
        raise ValidationError(f"{_shown(value)} is not an owner like root or www-data:www-data")


def _check_url(value: str) -> None:
    if not re.match(r"^https?://[^\s/]+(/\S*)?\Z", value):
        raise ValidationError(f"{_shown(value)} is not an http(s) URL")


def _check_command(value: str) -> None:
    if not value.strip():
        raise ValidationError("command must not be empty")


# ---- schemas ---------------------------------------------------------------------------

class _Strict(Schema):
    class Meta:
        unknown = RAISE


class UserSchema(_Strict):
    name = fields.String(required=True, validate=_check_user_name)
    groups = fields.List(fields.String(validate=_check_group_name), load_default=list)
    sshKeys = fields.List(fields.String(validate=check_ssh_key), load_default=list)
    passwordHash = fields.String(allow_none=True, load_default=None, validate=_check_password_hash)


class ServicesSchema(_Strict):
    enable = fields.List(fields.String(validate=_check_service), load_default=list)
    disable = fields.List(fields.String(validate=_check_service), load_default=list)


class FirewallSchema(_Strict):
    enabled = fields.Boolean(load_default=False)
    allow = fields.List(fields.Raw(validate=_check_port), load_default=list)

    @post_load
    def _normalize(self, data: dict, **_: Any) -> dict:
        data["allow"] = [str(p) if "/" in str(p) else f"{p}/tcp" for p in data["allow"]]
        return data


class FileSchema(_Strict):
    path = fields.String(required=True, validate=_check_abs_path)
    content = fields.String(load_default="")
    mode = fields.String(load_default="0644", validate=_check_mode)
    owner = fields.String(load_default="root", validate=_check_owner)

    @pre_load
    def _mode_as_text(self, data: Any, **_: Any) -> Any:
        # YAML turns 0644 into the integer 420 and 644 into 644; only accept the string or octal-looking int.
        if isinstance(data, dict) and isinstance(data.get("mode"), int) and not isinstance(data.get("mode"), bool):
            data = dict(data)
            data["mode"] = str(data["mode"])
        return data

    @post_load
    def _normalize(self, data: dict, **_: Any) -> dict:
        data["mode"] = "0" + data["mode"] if len(data["mode"]) == 3 else data["mode"]
        return data


def _req(kind: Any, **kw: Any) -> Any:
    return kind(required=True, **kw)


TEST_PARAMS: dict[str, dict[str, fields.Field]] = {
    "boots": {"timeoutSeconds": fields.Integer(validate=validate.Range(1, 3600), load_default=300)},
    "service_running": {"service": _req(fields.String, validate=_check_service)},
    "port_open": {
        "port": _req(fields.Integer, strict=True, validate=validate.Range(1, 65535)),
        "protocol": fields.String(validate=validate.OneOf(["tcp", "udp"]), load_default="tcp"),
    },
    "http_responds": {
        "url": _req(fields.String, validate=_check_url),
        "status": fields.Integer(validate=validate.Range(100, 599), load_default=200),
        "contains": fields.String(load_default=None, allow_none=True),
    },
    "command_succeeds": {
        "command": _req(fields.String, validate=_check_command),
        "stdoutContains": fields.String(load_default=None, allow_none=True),
    },
    "package_installed": {
        "package": _req(fields.String, validate=_check_package),
        "version": fields.String(load_default=None, allow_none=True),
    },
    "file_exists": {"path": _req(fields.String, validate=_check_abs_path)},
    "file_contains": {"path": _req(fields.String, validate=_check_abs_path), "text": _req(fields.String)},
    "user_exists": {
        "user": _req(fields.String, validate=_check_user_name),
        "groups": fields.List(fields.String(validate=_check_group_name), load_default=list),
    },
    "service_enabled": {"service": _req(fields.String, validate=_check_service)},
}
TEST_TYPES = tuple(TEST_PARAMS)
_PARAM_SCHEMAS = {t: Schema.from_dict(p, name=f"{t}Params")(unknown=RAISE) for t, p in TEST_PARAMS.items()}


class TestSchema(_Strict):
    type = fields.String(required=True, validate=_one_of(TEST_TYPES, "test type"))
    params = fields.Dict(keys=fields.String(), load_default=dict)

    @validates_schema
    def _check_params(self, data: dict, **_: Any) -> None:
        schema = _PARAM_SCHEMAS.get(data.get("type", ""))
        if schema is None:
            return
        try:
            schema.load(data.get("params") or {})
        except ValidationError as err:
            raise ValidationError({"params": err.messages}) from None

    @post_load
    def _fill(self, data: dict, **_: Any) -> dict:
        data["params"] = dict(_PARAM_SCHEMAS[data["type"]].load(data.get("params") or {}))
        return data


def _dedupe(items: list) -> list:
    return list(dict.fromkeys(items))


class RecipeSchema(_Strict):
    name = fields.String(load_default=DEFAULT_RECIPE["name"], validate=validate.Regexp(NAME_RE, error="name must be 1-64 letters, digits, '.', '_' or '-'"))
    distribution = fields.String(load_default="debian", validate=validate.OneOf(["debian"], error="only 'debian' is supported"))
    release = fields.String(load_default="trixie", validate=validate.OneOf(RELEASES, error="release must be one of: {choices}"))
    architecture = fields.String(load_default="amd64", validate=validate.OneOf(["amd64"], error="only amd64 is supported"))
    format = fields.String(load_default="iso", validate=_one_of(FORMATS, "format"))
    packages = fields.List(fields.Raw(validate=_check_package), load_default=list)
    hostname = fields.String(load_default="debian", validate=_check_hostname)
    timezone = fields.String(load_default="Etc/UTC", validate=_check_timezone)
    locale = fields.String(load_default="C.UTF-8", validate=_check_locale)
    keyboard = fields.String(load_default="us", validate=_check_keyboard)
    users = fields.List(fields.Nested(UserSchema), load_default=list)
    services = fields.Nested(ServicesSchema, load_default=lambda: {"enable": [], "disable": []})
    firewall = fields.Nested(FirewallSchema, load_default=lambda: {"enabled": False, "allow": []})
    files = fields.List(fields.Nested(FileSchema), load_default=list)
    commands = fields.List(fields.String(validate=_check_command), load_default=list)
    tests = fields.List(fields.Nested(TestSchema), load_default=list)

    @validates_schema
    def _cross_checks(self, data: dict, **_: Any) -> None:
        errors: dict[str, list[str]] = {}
        names = [u.get("name") for u in data.get("users") or []]
        for i, n in enumerate(names):
            if n in names[:i]:
                errors.setdefault("users", {}).setdefault(i, {})["name"] = [f"user {n!r} is listed twice"]  # type: ignore[union-attr]
        services = data.get("services") or {}
        both = set(services.get("enable") or []) & set(services.get("disable") or [])
        if both:
            errors["services"] = [f"cannot both enable and disable: {', '.join(sorted(both))}"]
        paths = [f.get("path") for f in data.get("files") or []]
        for i, p in enumerate(paths):
            if p in paths[:i]:
                errors.setdefault("files", {}).setdefault(i, {})["path"] = [f"{p} is listed twice"]  # type: ignore[union-attr]
        if errors:
            raise ValidationError(errors)  # type: ignore[arg-type]

    @post_load
    def _normalize(self, data: dict, **_: Any) -> dict:
        data["packages"] = _dedupe(data["packages"])
        for key in ("enable", "disable"):
            data["services"][key] = _dedupe(data["services"][key])
        data["firewall"]["allow"] = _dedupe(data["firewall"]["allow"])
        return {k: data[k] for k in FIELD_ORDER}


def _flatten(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    if isinstance(messages, dict):
        for key, value in messages.items():
            if isinstance(key, int):
                path = f"{prefix}[{key}]"
            elif key == "_schema":
                path = prefix or "recipe"
            else:
                path = f"{prefix}.{_path_key(key)}" if prefix else _path_key(key)
            for k, v in _flatten(value, path).items():
                out.setdefault(k, []).extend(v)
    elif isinstance(messages, list):
        if all(isinstance(m, str) for m in messages):
            out[prefix or "recipe"] = list(messages)
        else:
            for m in messages:
                for k, v in _flatten(m, prefix).items():
                    out.setdefault(k, []).extend(v)
    else:
        out[prefix or "recipe"] = [str(messages)]
    return out


# A recipe is a few hundred values; these bounds stop YAML aliases (a few hundred bytes can stand for
# billions of values) and absurd nesting before validation walks the data.
MAX_VALUES = 50_000
MAX_TEXT = 2_000_000  # characters of all strings together, aliases expanded
MAX_DEPTH = 20
MAX_RECIPE_TEXT = 200_000  # characters of YAML/JSON source
MAX_ERRORS = 50  # fields named in one RecipeError
MAX_PATH = 100  # characters of one field path (an unknown key can be long)


def _path_key(key: Any) -> str:
    text = str(key)
    return text if len(text) <= MAX_PATH else text[:MAX_PATH] + "…"


def _check_shape(data: dict) -> None:
    """Refuse data that is too big or too deep once aliases are expanded, or has non-text keys.

    Walks iteratively with a budget, so shared and even self-referencing YAML nodes cost at most the budget.
    """
    values = text = 0
    for top_key, top_value in data.items():
        field = _path_key(top_key)
        if not isinstance(top_key, str):
            raise RecipeError({field: ["field names must be text"]})
        stack: list[tuple[Any, int]] = [(top_value, 1)]
        while stack:
            value, depth = stack.pop()
            values += 1
            if values > MAX_VALUES:
                raise RecipeError({field: [f"too many values (more than {MAX_VALUES} with YAML aliases expanded)"]})
            if isinstance(value, str):
                text += len(value)
                if text > MAX_TEXT:
                    raise RecipeError({field: [f"too much text (more than {MAX_TEXT} characters with YAML aliases expanded)"]})
            elif isinstance(value, (dict, list)):
                if depth >= MAX_DEPTH:
                    raise RecipeError({field: [f"nested more than {MAX_DEPTH} levels deep"]})
                if isinstance(value, dict):
                    if not all(isinstance(k, str) for k in value):
                        raise RecipeError({field: ["keys of a mapping must be text"]})
                    stack.extend((v, depth + 1) for v in value.values())
                else:
                    stack.extend((v, depth + 1) for v in value)


def _bounded(errors: dict[str, list[str]]) -> dict[str, list[str]]:
    if len(errors) <= MAX_ERRORS:
        return errors
    kept = dict(list(errors.items())[:MAX_ERRORS])
    kept.setdefault("recipe", []).append(f"and {len(errors) - MAX_ERRORS} more fields with errors")
    return kept


def validate_recipe(data: dict) -> dict:
    """Return the normalized recipe (defaults filled) or raise RecipeError naming every bad field."""
    if not isinstance(data, dict):
        raise RecipeError({"recipe": ["a recipe must be a mapping of fields (YAML or JSON object)"]})
    _check_shape(data)
    try:
        loaded = RecipeSchema().load(copy.deepcopy(data))
    except ValidationError as err:
        raise RecipeError(_bounded(_flatten(err.messages))) from None
    return json.loads(json.dumps(loaded))  # plain dicts/lists all the way down


class _Loader(yaml.SafeLoader):
    pass


def _construct_int(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    # YAML 1.1 reads `mode: 0644` as the octal integer 420; keep such literals as written.
    if re.fullmatch(r"0[0-7]+", node.value):
        return node.value
    return yaml.SafeLoader.construct_yaml_int(loader, node)


_Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)


def parse_recipe_text(text: str) -> dict:
    """YAML or JSON text -> validated, normalized recipe dict."""
    if len(text) > MAX_RECIPE_TEXT:
        raise RecipeError({"recipe": [f"the recipe text is longer than {MAX_RECIPE_TEXT} characters"]})
    try:
        data = yaml.load(text, Loader=_Loader)  # JSON is YAML
    except RecursionError:
        raise RecipeError({"recipe": [f"not valid YAML or JSON: nested more than {MAX_DEPTH} levels deep"]}) from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise RecipeError({"recipe": [f"not valid YAML or JSON{where}: {getattr(err, 'problem', None) or err}"]}) from None
    if data is None:
        raise RecipeError({"recipe": ["the recipe is empty"]})
    return validate_recipe(data)


def canonical_json(recipe: dict) -> str:
    return json.dumps(recipe, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def recipe_hash(recipe: dict) -> str:
    return hashlib.sha256(canonical_json(recipe).encode()).hexdigest()


class _Dumper(yaml.SafeDumper):
    pass


def _str_presenter(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str_presenter)


def dump_yaml(recipe: dict) -> str:
    """Readable YAML in RECIPE.md field order (unknown extra keys follow)."""
    ordered = {k: recipe[k] for k in FIELD_ORDER if k in recipe}
    ordered.update({k: v for k, v in recipe.items() if k not in ordered})
    return yaml.dump(ordered, Dumper=_Dumper, sort_keys=False, allow_unicode=True, default_flow_style=False, width=100)
