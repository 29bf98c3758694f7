"""Assertions answered from the image's files: packages, files, users, enabled services."""
from __future__ import annotations

import re
from typing import Any, Callable

from app.engine.testing.imagefs import ImageTree

UNIT_SUFFIXES = (".service", ".socket", ".timer", ".target", ".mount", ".path", ".automount", ".swap")
UNIT_DIRS = ("/etc/systemd/system", "/run/systemd/system", "/usr/local/lib/systemd/system",
             "/usr/lib/systemd/system", "/lib/systemd/system")


class CheckFailed(Exception):
    """The assertion does not hold; the message says how."""


# -- dpkg ----------------------------------------------------------------------------------

def dpkg_packages(fs: ImageTree) -> dict[str, str]:
    """name -> version of every package dpkg considers installed."""
    text = fs.read_text("/var/lib/dpkg/status")
    if text is None:
        raise CheckFailed("the image has no dpkg database (/var/lib/dpkg/status)")
    installed: dict[str, str] = {}
    for stanza in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line[:1] in (" ", "\t") or ":" not in line:
                continue
            key, _, value = line.partition(":")
            fields[key.strip()] = value.strip()
        name = fields.get("Package")
        if name and fields.get("Status", "").endswith(" installed"):
            installed[name] = fields.get("Version", "")
    return installed


def _version_matches(installed: str, wanted: str) -> bool:
    if installed == wanted:
        return True
    bare = installed.split(":", 1)[1] if ":" in installed and ":" not in wanted else installed
    # "1.22" matches "1.22.1-9", "1.22-1" and "10.0" matches "10.0p1-7"; "1.2" does not match "1.22".
    return bare == wanted or (bare.startswith(wanted) and not bare[len(wanted)].isdigit())


def check_package_installed(fs: ImageTree, params: dict[str, Any]) -> str:
    name, wanted = params["package"], params.get("version")
    packages = dpkg_packages(fs)
    if name not in packages:
        raise CheckFailed(f"package {name} is not installed")
    if wanted and not _version_matches(packages[name], wanted):
        raise CheckFailed(f"package {name} is installed at version {packages[name]}, expected {wanted}")
    return f"package {name} {packages[name]} is installed"


# -- files ---------------------------------------------------------------------------------

def _missing(fs: ImageTree, path: str) -> str:
    link = fs.readlink(path)
    if link is not None:
        return f"{path} is a dangling symlink to {link}"
    return f"{path} does not exist"


def check_file_exists(fs: ImageTree, params: dict[str, Any]) -> str:
    path = params["path"]
    if not fs.exists(path):
        raise CheckFailed(_missing(fs, path))
    return f"{path} exists" + (" (directory)" if fs.is_dir(path) else "")


def check_file_contains(fs: ImageTree, params: dict[str, Any]) -> str:
    path, text = params["path"], params["text"]
    if not fs.exists(path):
        raise CheckFailed(_missing(fs, path))
    if fs.is_dir(path):
        raise CheckFailed(f"{path} is a directory, not a file")
    content = fs.read_text(path)
    if content is None:
        raise CheckFailed(f"{path} is not a regular file")
    if text not in content:
        preview = content[:200].replace("\n", "\\n")
        raise CheckFailed(f"{path} does not contain {text!r} (starts with: {preview!r})")
    return f"{path} contains {text!r}"


# -- users ---------------------------------------------------------------------------------

def _colon_table(fs: ImageTree, path: str) -> list[list[str]]:
    text = fs.read_text(path)
    if text is None:
        raise CheckFailed(f"the image has no {path}")
    return [line.split(":") for line in text.splitlines() if line and not line.startswith("#")]


def check_user_exists(fs: ImageTree, params: dict[str, Any]) -> str:
    user, wanted = params["user"], list(params.get("groups") or [])
    entry = next((row for row in _colon_table(fs, "/etc/passwd") if row[0] == user), None)
    if entry is None:
        raise CheckFailed(f"user {user} does not exist in /etc/passwd")
    if not wanted:
        return f"user {user} exists (uid {entry[2] if len(entry) > 2 else '?'})"
    primary_gid = entry[3] if len(entry) > 3 else None
    groups = _colon_table(fs, "/etc/group")
    member_of = {row[0] for row in groups
                 if len(row) > 3 and (user in row[3].split(",") or row[2] == primary_gid)}
    known = {row[0] for row in groups}
    missing = [g for g in wanted if g not in member_of]
    if missing:
        details = [f"{g} (no such group)" if g not in known else g for g in missing]
        raise CheckFailed(f"user {user} exists but is not in group(s): {', '.join(details)}; "
                          f"member of: {', '.join(sorted(member_of)) or 'none'}")
    return f"user {user} exists and is in {', '.join(wanted)}"


# -- systemd units -------------------------------------------------------------------------

def unit_name(service: str) -> str:
    return service if service.endswith(UNIT_SUFFIXES) else f"{service}.service"


def _find_unit(fs: ImageTree, unit: str) -> tuple[str | None, str | None]:
    """(directory holding the unit, canonical name it resolves to), following alias symlinks."""
    for d in UNIT_DIRS:
        path = f"{d}/{unit}"
        link = fs.readlink(path)
        if link == "/dev/null":
            return d, "masked"
        if fs.exists(path):
            canonical = link.rsplit("/", 1)[-1] if link else unit
            return d, canonical
    if "@" in unit:  # getty@tty1.service comes from getty@.service
        template = re.sub(r"@[^.]*\.", "@.", unit)
        if template != unit:
            d, _ = _find_unit(fs, template)
            return d, unit if d else None
    return None, None


def _wanted_by(fs: ImageTree, names: set[str]) -> list[str]:
    """Targets/units whose .wants/.requires directories pull in any of names."""
    hits = []
    for d in UNIT_DIRS:
        for entry in fs.listdir(d):
            if entry.endswith((".wants", ".requires")) and names & set(fs.listdir(f"{d}/{entry}")):
                hits.append(entry.rsplit(".", 1)[0])
    return hits


def _sysv_enabled(fs: ImageTree, name: str) -> bool:
    if not fs.exists(f"/etc/init.d/{name}"):
        return False
    return any(re.match(rf"^S\d\d{re.escape(name)}$", e) for lvl in "2345" for e in fs.listdir(f"/etc/rc{lvl}.d"))


def check_service_enabled(fs: ImageTree, params: dict[str, Any]) -> str:
    service = params["service"]
    unit = unit_name(service)
    where, canonical = _find_unit(fs, unit)
    if canonical == "masked":
        raise CheckFailed(f"service {service} is masked ({where}/{unit} -> /dev/null)")
    names = {unit} | ({canonical} if canonical else set())
    if targets := _wanted_by(fs, names):
        return f"service {service} is enabled (wanted by {', '.join(sorted(set(targets)))})"
    base = (canonical or unit).rsplit(".", 1)[0]
    if unit.endswith(".service") and (sockets := _wanted_by(fs, {f"{base}.socket"})):
        return f"service {service} is enabled through {base}.socket (wanted by {', '.join(sorted(set(sockets)))})"
    if _sysv_enabled(fs, service.removesuffix(".service")):
        return f"service {service} is enabled as a SysV init script"
    if where is None and not fs.exists(f"/etc/init.d/{service.removesuffix('.service')}"):
        raise CheckFailed(f"service {service} is not installed (no unit file {unit})")
    raise CheckFailed(f"service {service} is installed ({where}/{unit}) but not enabled")


FS_CHECKS: dict[str, Callable[[ImageTree, dict[str, Any]], str]] = {
    "package_installed": check_package_installed,
    "file_exists": check_file_exists,
    "file_contains": check_file_contains,
    "user_exists": check_user_exists,
    "service_enabled": check_service_enabled,
}
