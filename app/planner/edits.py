"""What each recipe operation does: handlers that edit a working copy and say what they did."""
from __future__ import annotations

import copy
import re
from typing import Any, Callable

from app.engine.recipe import FORMATS, NAME_RE, PACKAGE_RE, RELEASES, RecipeError, validate_recipe

from . import catalog, vocab
from .passwords import hash_password
from .roles import ROLES
from .wording import describe_changes, describe_test, human_list, normalize_port, url_port


class Work:
    """The recipe being edited plus cached package indexes."""

    def __init__(self, recipe: dict, index_for: Callable, versions: dict[int, dict] | None = None):
        self.r = recipe
        self.versions = versions or {}  # earlier recipe versions by number, for restore_version
        self._index_for = index_for
        self._indexes: dict[str, Any] = {}
        self.index_errors: dict[str, str] = {}

    def index(self, release: str | None = None):
        release = release or self.r["release"]
        if release not in self._indexes:
            try:
                self._indexes[release] = self._index_for(release)
            except Exception as err:  # a missing index must not crash the chat; callers say why
                self._indexes[release] = None
                self.index_errors[release] = str(err)
        return self._indexes[release]

    def installed_ports(self, public_only: bool = False) -> list[str]:
        table = catalog.PUBLIC_PORTS if public_only else catalog.PACKAGE_PORTS
        ports: list[str] = []
        for p in self.r["packages"]:
            ports += [x for x in table.get(p, ()) if x not in ports]
        return ports


# ---- handlers: each returns human descriptions of what it did ---------------------------------

def op_add_packages(w: Work, packages: list[str]) -> list[str]:
    release = w.r["release"]
    index = w.index()
    if index is None:
        raise ValueError(f"add_packages: cannot check package names, the {release} package index is unavailable "
                         f"({w.index_errors.get(release)})")
    added, already = [], []
    for raw in packages:
        name = raw.strip().lower()
        if not PACKAGE_RE.match(name):
            raise ValueError(f"add_packages: {raw!r} is not a valid Debian package name")
        if not index.exists(name):
            hints = index.suggest(name, 3)
            raise ValueError(f"add_packages: there is no package {name!r} in Debian {release}"
                             + (f" (did you mean {human_list(hints)}?)" if hints else ""))
        note = ""
        if index.version(name) is None:  # a virtual package: install what provides it
            providers = sorted(index.providers(name))
            if not providers:
                raise ValueError(f"add_packages: {name!r} is a virtual package with no provider in {release}")
            note = f"it provides {name}"
            name = providers[0]
        if name in w.r["packages"]:
            already.append(name)
            continue
        w.r["packages"].append(name)
        extras = [note] if note else []
        services = [s for s in catalog.PACKAGE_SERVICES.get(name, ()) if s not in w.r["services"]["enable"]]
        for s in services:
            w.r["services"]["enable"].append(s)
            if s in w.r["services"]["disable"]:
                w.r["services"]["disable"].remove(s)
        if services:
            extras.append(f"service {human_list(services)} enabled")
        if w.r["firewall"]["enabled"]:
            ports = [p for p in catalog.PUBLIC_PORTS.get(name, ()) if p not in w.r["firewall"]["allow"]]
            w.r["firewall"]["allow"] += ports
            if ports:
                extras.append(f"firewall opened for {human_list(ports)}")
        added.append(name + (f" ({'; '.join(extras)})" if extras else ""))
    out = []
    if added:
        out.append(f"Added {human_list(added)}.")
    if already:
        out.append(f"{human_list(already)} {'is' if len(already) == 1 else 'are'} already included.")
    return out


def _services_still_provided(w: Work) -> set[str]:
    provided: set[str] = set()
    for p in w.r["packages"]:
        provided.update(catalog.PACKAGE_SERVICES.get(p, ()))
    return provided


def _drop_tests(w: Work, predicate: Callable[[dict], bool]) -> list[dict]:
    dropped = [t for t in w.r["tests"] if predicate(t)]
    w.r["tests"] = [t for t in w.r["tests"] if not predicate(t)]
    return dropped


def _remove_package(w: Work, name: str) -> str:
    w.r["packages"].remove(name)
    provided = _services_still_provided(w)
    gone_services = [s for s in catalog.PACKAGE_SERVICES.get(name, ()) if s not in provided]
    removed_services = [s for s in gone_services if s in w.r["services"]["enable"]]
    w.r["services"]["enable"] = [s for s in w.r["services"]["enable"] if s not in gone_services]
    still_served = {int(p.split("/")[0]) for p in w.installed_ports()}
    gone_ports = {int(p.split("/")[0]) for p in catalog.PACKAGE_PORTS.get(name, ())} - still_served

    def references(t: dict) -> bool:
        p = t.get("params") or {}
        if t["type"] == "package_installed":
            return p.get("package") == name
        if t["type"] in ("service_running", "service_enabled"):
            return p.get("service") in gone_services
        if t["type"] == "port_open":
            return p.get("port") in gone_ports
        if t["type"] == "http_responds":
            return url_port(p.get("url", "")) in gone_ports
        if t["type"] == "command_succeeds":
            return re.search(rf"(?<![\w.-]){re.escape(name)}(?![\w.-])", p.get("command", "")) is not None
        return False

    dropped = _drop_tests(w, references)
    extras = []
    if removed_services:
        extras.append(f"service {human_list(removed_services)} no longer enabled")
    if dropped:
        extras.append(f"removed {len(dropped)} test{'s' if len(dropped) > 1 else ''} that checked it: "
                      + "; ".join(describe_test(t) for t in dropped))
    text = f"Removed {name}" + (f" ({'; '.join(extras)})" if extras else "") + "."
    still_open = [p for p in w.r["firewall"]["allow"] if int(p.split("/")[0]) in gone_ports]
    if still_open and w.r["firewall"]["enabled"]:
        text += f" Port{'s' if len(still_open) > 1 else ''} {human_list(still_open)} stay open in the firewall."
    return text


def op_remove_packages(w: Work, packages: list[str]) -> list[str]:
    out = []
    for raw in packages:
        name = raw.strip().lower()
        if name not in w.r["packages"]:
            out.append(f"{name} was not in the recipe.")
            continue
        out.append(_remove_package(w, name))
    return out


def _set_release(w: Work, value: str) -> list[str]:
    release = vocab.RELEASE_WORDS.get(value.strip().lower(), value.strip().lower())
    if release not in RELEASES:
        raise ValueError(f"set: release must be trixie (Debian 13) or bookworm (Debian 12), not {value!r}")
    if release == w.r["release"]:
        return [f"The release is already {vocab.RELEASE_LABEL[release]}."]
    old = w.r["release"]
    w.r["release"] = release
    out = [f"Switched the release from {old} to {vocab.RELEASE_LABEL[release]}."]
    if not w.r["packages"]:
        return out
    index = w.index(release)
    if index is None:
        out.append(f"Could not re-check the packages: the {release} package index is unavailable.")
        return out
    notes, missing = [], []
    for name in list(w.r["packages"]):
        if index.exists(name):
            continue
        sw = catalog.PACKAGE_SOFTWARE.get(name)
        swap = None
        if sw:
            for slot in sw.packages:
                if name in slot:
                    swap = next((alt for alt in slot if alt != name and index.exists(alt)), None)
        if swap:
            w.r["packages"][w.r["packages"].index(name)] = swap
            notes.append(f"{name} is called {swap} in {release}, so it was swapped.")
            continue
        missing.append(name)
        hints = index.suggest(name, 3)
        notes.append(_remove_package(w, name)[:-1] + f": it is not available in {release}"
                     + (f" (close names: {human_list(hints)})" if hints else "") + ".")
    if not missing and not notes:
        out.append(f"All {len(w.r['packages'])} packages are available in {release}.")
    return out + notes


def _normalize_format(value: str) -> str:
    v = value.strip().lower()
    for pattern, fmt in vocab.FORMAT_PATTERNS:
        if re.fullmatch(pattern, v) or re.search(pattern, v):
            return fmt
    aliases = {"qcow": "qcow2", "vm": "qcow2", "disk": "qcow2", "container": "oci", "docker": "oci",
               "tar": "rootfs", "tarball": "rootfs", "live": "iso"}
    return aliases.get(v, v)


def op_set(w: Work, field: str, value: str) -> list[str]:
    value = value.strip()
    if field == "release":
        return _set_release(w, value)
    if field == "format":
        fmt = _normalize_format(value)
        if fmt not in FORMATS:
            raise ValueError(f"set: format must be one of {', '.join(FORMATS)}, not {value!r}")
        if fmt == w.r["format"]:
            return [f"The output format is already {fmt}."]
        w.r["format"] = fmt
        text = f"Changed the output format to {fmt} ({vocab.FORMAT_LABEL[fmt]})."
        boot_tests = [t for t in w.r["tests"] if t["type"] in ("boots", "service_running", "port_open", "http_responds",
                                                                "command_succeeds")]
        if fmt in ("oci", "rootfs") and boot_tests:
            text += " It does not boot, so its boot-time tests will be reported as skipped."
        return [text]
    if field == "hostname":
        host = value.lower().rstrip(".")
        if len(host) > 253 or not all(re.fullmatch(r"(?!-)[a-z0-9-]{1,63}(?<!-)", part) for part in host.split(".")):
            raise ValueError(f"set: {value!r} is not a valid hostname (letters, digits and hyphens, "
                             "dot-separated labels of 1-63 characters)")
        if host == w.r["hostname"]:
            return [f"The hostname is already {host}."]
        w.r["hostname"] = host
        return [f"Set the hostname to {host}."]
    if field == "timezone":
        zone, options = vocab.resolve_timezone(value)
        if zone is None:
            raise ValueError(f"set: {value!r} is not a known timezone"
                             + (f"; it could be {human_list(options)}" if options else " (use a name like Europe/Berlin)"))
        if zone == w.r["timezone"]:
            return [f"The timezone is already {zone}."]
        w.r["timezone"] = zone
        return [f"Set the timezone to {zone}."]
    if field == "locale":
        loc = vocab.normalize_locale(value) or value
        if loc == w.r["locale"]:
            return [f"The locale is already {loc}."]
        w.r["locale"] = loc
        return [f"Set the locale to {loc}."]
    if field == "keyboard":
        kb = vocab.KEYBOARDS.get(value.lower(), value.lower())
        if kb == w.r["keyboard"]:
            return [f"The keyboard layout is already {kb}."]
        w.r["keyboard"] = kb
        return [f"Set the keyboard layout to {kb}."]
    if field == "name":
        if not NAME_RE.match(value):
            raise ValueError(f"set: the recipe name {value!r} must be 1-64 letters, digits, '.', '_' or '-'")
        w.r["name"] = value
        return [f"Renamed the recipe to {value}."]
    raise ValueError(f"set: unknown field {field!r}")


def _find_user(w: Work, name: str) -> dict | None:
    return next((u for u in w.r["users"] if u["name"] == name), None)


def op_add_user(w: Work, name: str, groups: list[str] | None = None, sshKeys: list[str] | None = None,
                 password: str | None = None, passwordHash: str | None = None) -> list[str]:
    name = name.strip()
    if not re.fullmatch(r"[a-z_][a-z0-9_-]{0,31}", name):
        raise ValueError(f"add_user: {name!r} is not a valid user name (lowercase letters, digits, _ and -, "
                         "starting with a letter)")
    if name == "root":
        raise ValueError("add_user: root always exists; choose another user name")
    groups = [g.strip().lower() for g in groups or [] if g.strip()]
    keys = [" ".join(k.split()) for k in sshKeys or [] if k.strip()]
    if password is not None and passwordHash is not None:
        raise ValueError("add_user: give either password or passwordHash, not both")
    if password is not None:
        passwordHash = hash_password(password)
    user = _find_user(w, name)
    if user is None:
        user = {"name": name, "groups": list(dict.fromkeys(groups)), "sshKeys": list(dict.fromkeys(keys)),
                "passwordHash": passwordHash}
        w.r["users"].append(user)
        parts = []
        if user["groups"]:
            parts.append(f"in group{'s' if len(user['groups']) > 1 else ''} {human_list(user['groups'])}")
        if user["sshKeys"]:
            parts.append(f"with {len(user['sshKeys'])} SSH key{'s' if len(user['sshKeys']) > 1 else ''}")
        if passwordHash:
            parts.append("with a password (stored hashed)")
        return [f"Created user {name}" + (" " + ", ".join(parts) if parts else "") + "."]
    changes = []
    new_groups = [g for g in groups if g not in user["groups"]]
    if new_groups:
        user["groups"] += list(dict.fromkeys(new_groups))
        changes.append(f"added to {human_list(new_groups)}")
    new_keys = [k for k in dict.fromkeys(keys) if k not in user["sshKeys"]]
    if new_keys:
        user["sshKeys"] += new_keys
        changes.append(f"added {len(new_keys)} SSH key{'s' if len(new_keys) > 1 else ''}")
    if passwordHash:
        user["passwordHash"] = passwordHash
        changes.append("set a password (stored hashed)")
    if not changes:
        return [f"User {name} already has that."]
    return [f"Updated user {name}: {', '.join(changes)}."]


def op_remove_user(w: Work, name: str) -> list[str]:
    if _find_user(w, name) is None:
        return [f"There is no user {name} in the recipe."]
    w.r["users"] = [u for u in w.r["users"] if u["name"] != name]
    dropped = _drop_tests(w, lambda t: t["type"] == "user_exists" and (t.get("params") or {}).get("user") == name)
    return [f"Removed user {name}" + (" and the test that checked it" if dropped else "") + "."]


def op_remove_user_from_groups(w: Work, name: str, groups: list[str]) -> list[str]:
    user = _find_user(w, name)
    if user is None:
        return [f"There is no user {name} in the recipe."]
    gone = [g for g in groups if g in user["groups"]]
    user["groups"] = [g for g in user["groups"] if g not in gone]
    if not gone:
        return [f"User {name} was not in {human_list(groups)}."]
    return [f"Took user {name} out of {human_list(gone)}."]


def _enable_firewall(w: Work) -> list[str]:
    """Turning the firewall on must not lock out what is installed (SSH first of all)."""
    if w.r["firewall"]["enabled"]:
        return []
    w.r["firewall"]["enabled"] = True
    keep = [p for p in w.installed_ports(public_only=True) if p not in w.r["firewall"]["allow"]]
    w.r["firewall"]["allow"] += keep
    text = "Enabled the firewall"
    if keep:
        text += f" (also allowing {human_list(keep)} so the installed services stay reachable)"
    return [text + "."]


def op_open_ports(w: Work, ports: list) -> list[str]:
    wanted = list(dict.fromkeys(normalize_port(p) for p in ports))
    new = [p for p in wanted if p not in w.r["firewall"]["allow"]]
    w.r["firewall"]["allow"] += new
    out = [f"Opened port{'s' if len(new) > 1 else ''} {human_list(new)}." if new else
           f"Port{'s' if len(wanted) > 1 else ''} {human_list(wanted)} {'were' if len(wanted) > 1 else 'was'} already open."]
    return out + _enable_firewall(w)


def op_close_ports(w: Work, ports: list) -> list[str]:
    wanted = [normalize_port(p) for p in ports]
    plural = len(wanted) > 1
    if not w.r["firewall"]["enabled"]:
        # Nothing is filtered while the firewall is off: blocking means turning it on for everything else.
        keep = [p for p in w.r["firewall"]["allow"] + w.installed_ports(public_only=True) if p not in wanted]
        w.r["firewall"] = {"enabled": True, "allow": list(dict.fromkeys(keep))}
        return [f"Enabled the firewall to block port{'s' if plural else ''} {human_list(wanted)}"
                + (f" (allowing {human_list(w.r['firewall']['allow'])} for the installed services)." if keep else ".")]
    gone = [p for p in wanted if p in w.r["firewall"]["allow"]]
    w.r["firewall"]["allow"] = [p for p in w.r["firewall"]["allow"] if p not in gone]
    if not gone:
        return [f"Port{'s' if plural else ''} {human_list(wanted)} {'were' if plural else 'was'} not open."]
    return [f"Closed port{'s' if len(gone) > 1 else ''} {human_list(gone)}."]


def op_set_firewall(w: Work, enabled: bool, allow: list | None = None) -> list[str]:
    if not enabled:
        if not w.r["firewall"]["enabled"]:
            return ["The firewall is already off."]
        w.r["firewall"]["enabled"] = False
        return ["Disabled the firewall (all ports are reachable)."]
    if allow is None:
        if w.r["firewall"]["enabled"]:
            return ["The firewall is already on."]
        return _enable_firewall(w)
    ports = list(dict.fromkeys(normalize_port(p) for p in allow))
    w.r["firewall"] = {"enabled": True, "allow": ports}
    return [f"Enabled the firewall allowing only {human_list(ports)}." if ports
            else "Enabled the firewall with no open ports."]


def op_add_file(w: Work, path: str, content: str, mode: str | None = None, owner: str | None = None) -> list[str]:
    path = path.strip()
    entry = {"path": path, "content": content, "mode": mode or "0644", "owner": owner or "root"}
    existing = next((f for f in w.r["files"] if f["path"] == path), None)
    if existing is not None:
        existing.update(entry)
        return [f"Replaced {path} ({len(content)} bytes, mode {entry['mode']}, owner {entry['owner']})."]
    w.r["files"].append(entry)
    return [f"Created {path} ({len(content)} bytes, mode {entry['mode']}, owner {entry['owner']})."]


def op_remove_file(w: Work, path: str) -> list[str]:
    if not any(f["path"] == path for f in w.r["files"]):
        return [f"{path} was not in the recipe."]
    w.r["files"] = [f for f in w.r["files"] if f["path"] != path]
    dropped = _drop_tests(w, lambda t: t["type"] in ("file_exists", "file_contains")
                          and (t.get("params") or {}).get("path") == path)
    return [f"Removed {path}" + (" and its tests" if dropped else "") + "."]


def _test_key(test: dict) -> tuple:
    return test["type"], tuple(sorted((k, str(v)) for k, v in (test.get("params") or {}).items() if v is not None))


def op_add_test(w: Work, type: str, params: dict | None = None) -> list[str]:
    test = {"type": type, "params": dict(params or {})}
    try:  # fill defaults the way the recipe validator does, so duplicates are recognised
        test = validate_recipe({"tests": [test]})["tests"][0]
    except RecipeError as err:
        raise ValueError(f"add_test: {err}") from None
    if any(_test_key(t) == _test_key(test) for t in w.r["tests"]):
        return [f"There is already a test that {describe_test(test)}."]
    w.r["tests"].append(test)
    return [f"Added a test: {describe_test(test)}."]


def op_remove_tests(w: Work, type: str | None = None, subject: str | None = None, all: bool = False) -> list[str]:
    if not all and type is None and subject is None:
        raise ValueError("remove_tests: give a type, a subject, or all=true")

    def match(t: dict) -> bool:
        if all:
            return True
        if type is not None and t["type"] != type:
            return False
        if subject is not None:
            values = " ".join(str(v) for v in (t.get("params") or {}).values() if v is not None).lower()
            return subject.lower() in values
        return True

    dropped = _drop_tests(w, match)
    if not dropped:
        return ["No test matched, so none was removed."]
    return [f"Removed the test{'s' if len(dropped) > 1 else ''}: " + "; ".join(describe_test(t) for t in dropped) + "."]


def op_enable_services(w: Work, services: list[str]) -> list[str]:
    names = [catalog.service_for(s.strip()) for s in services]
    new = [s for s in dict.fromkeys(names) if s not in w.r["services"]["enable"]]
    w.r["services"]["enable"] += new
    w.r["services"]["disable"] = [s for s in w.r["services"]["disable"] if s not in names]
    return [f"Enabled service {human_list(new)} at boot." if new else f"{human_list(names)} already enabled."]


def op_disable_services(w: Work, services: list[str]) -> list[str]:
    names = [catalog.service_for(s.strip()) for s in services]
    w.r["services"]["enable"] = [s for s in w.r["services"]["enable"] if s not in names]
    new = [s for s in dict.fromkeys(names) if s not in w.r["services"]["disable"]]
    w.r["services"]["disable"] += new
    return [f"Disabled service {human_list(names)} at boot."]


def op_add_command(w: Work, command: str) -> list[str]:
    if command in w.r["commands"]:
        return [f"The build already runs `{command}`."]
    w.r["commands"].append(command)
    return [f"Added the build command `{command}`."]


def op_remove_command(w: Work, command: str) -> list[str]:
    if command not in w.r["commands"]:
        return [f"The build does not run `{command}`."]
    w.r["commands"].remove(command)
    return [f"Removed the build command `{command}`."]


def op_apply_role(w: Work, role: str, open: bool = False, url: str | None = None) -> list[str]:
    """A server role of roles.toml: packages, services, users, files, a test per service and port, and the
    ports opened in the firewall when it is on and access was asked for (`open`)."""
    spec = ROLES.get(role)
    if spec is None:
        raise ValueError(f"apply_role: unknown role {role!r}; known: {', '.join(ROLES)}")
    sw = catalog.BY_KEY["role:" + role]
    out = op_add_packages(w, catalog.resolve_packages(sw, w.index()))
    for user in spec.users:
        if not any(u["name"] == user["name"] for u in w.r["users"]):
            out += op_add_user(w, user["name"], groups=list(user.get("groups", [])))
    for f in spec.files:
        content = f["content"].replace("{url}", url or "http://localhost/")
        out += op_add_file(w, f["path"], content, f.get("mode"), f.get("owner"))
    services = [s for s in spec.services if s not in w.r["services"]["enable"]]
    if services:
        out += op_enable_services(w, services)
    if open and spec.ports and w.r["firewall"]["enabled"]:
        out += op_open_ports(w, list(spec.ports))
    tests = [{"type": "service_running", "params": {"service": s}} for s in spec.services]
    tests += [{"type": "port_open", "params": {"port": int(p.split("/")[0]), "protocol": p.split("/")[1]}}
              for p in spec.ports]
    for test in [*tests, *spec.tests]:
        out += op_add_test(w, test["type"], test["params"])
    return out


def op_restore_version(w: Work, number: int) -> list[str]:
    """An earlier version's recipe becomes the recipe again (the caller records it as a new version)."""
    if number not in w.versions:
        known = ", ".join(str(n) for n in sorted(w.versions)) or "none"
        raise ValueError(f"restore_version: there is no version {number} (versions: {known})")
    before, w.r = w.r, copy.deepcopy(w.versions[number])
    changes = describe_changes(before, w.r)
    return [f"Restored version {number}" + (f": {changes}." if changes else "; it is the same as the current recipe.")]


HANDLERS: dict[str, Callable[..., list[str]]] = {
    "add_packages": op_add_packages, "remove_packages": op_remove_packages, "set": op_set,
    "add_user": op_add_user, "remove_user": op_remove_user, "remove_user_from_groups": op_remove_user_from_groups,
    "open_ports": op_open_ports, "close_ports": op_close_ports, "set_firewall": op_set_firewall,
    "add_file": op_add_file, "remove_file": op_remove_file, "add_test": op_add_test,
    "remove_tests": op_remove_tests, "enable_services": op_enable_services,
    "disable_services": op_disable_services, "add_command": op_add_command, "remove_command": op_remove_command,
    "apply_role": op_apply_role, "restore_version": op_restore_version,
}
