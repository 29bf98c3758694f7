"""The configure stage: turn the recipe's settings into files and commands in the image tree.

Everything that runs inside the image goes through the build sandbox (sandbox.py): its own
namespaces, no network, no host files. A policy-rc.d stops package installs from starting
services. The engine's own writes from the host side resolve paths inside the tree (`inside`),
so a symlink left in the image can never redirect them to the host.
"""
from __future__ import annotations

import re
import shlex
from pathlib import Path

from .base import harvest_debs, seed_debs
from .bootpath import trim_boot_path
from .context import BuildContext, BuildError
from .evidence import installed_packages
from .fsutil import inside
from .sandbox import Sandbox

POLICY_RC = "#!/bin/sh\n# Kiln: never start services while building the image\nexit 101\n"
UTC_ZONES = {"Etc/UTC", "UTC", "Etc/Universal", "Universal", "Zulu", "Etc/Zulu"}
PLAIN_LOCALES = {"C", "C.UTF-8", "POSIX"}
ARCHIVES = "/var/cache/apt/archives"
APT = ("apt-get -y -q -o Dpkg::Use-Pty=0 -o APT::Install-Recommends=false "
       "-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "
       "-o Dpkg::Options::=--force-unsafe-io -o APT::Get::HideAutoRemove=true ")


def support_packages(recipe: dict) -> dict[str, str]:
    """Packages the recipe's settings need, beyond what it lists itself."""
    extra: dict[str, str] = {}
    if recipe["timezone"] not in UTC_ZONES:
        extra["tzdata"] = f"timezone {recipe['timezone']}"
    if recipe["locale"] not in PLAIN_LOCALES:
        extra["locales"] = f"locale {recipe['locale']}"
    if recipe["firewall"]["enabled"]:
        extra["nftables"] = "firewall"
    return extra


LOCK_PREFERENCES = "/etc/apt/preferences.d/kiln-package-lock"
SNAPSHOT_SOURCE = "/etc/apt/sources.list.d/kiln-snapshot.list"


def snapshot_url(base: str, when: str) -> str:
    """snapshot.debian.org's layout: <base>/<YYYYMMDDTHHMMSSZ>, from an ISO time like 2026-12-01T18:30:00Z."""
    stamp = when.replace("-", "").replace(":", "")
    if not re.fullmatch(r"\d{8}T\d{6}Z", stamp):
        raise ValueError(f"not a UTC time of the form YYYY-MM-DDTHH:MM:SSZ: {when!r}")
    return f"{base.rstrip('/')}/{stamp}"


def lock_preferences(lock: dict[str, str]) -> str:
    """apt pins that make exactly the locked versions the candidates (priority > 1000 also downgrades)."""
    return "".join(f"Package: {name}\nPin: version {version}\nPin-Priority: 1001\n\n"
                   for name, version in sorted(lock.items()))


def install_packages(ctx: BuildContext, sandbox: Sandbox, names: list[str],
                     lock: dict[str, str] | None = None, release: str = "", snapshot: str | None = None) -> None:
    """Download on the network side (apt only), then install from local files with no network.

    The build's archives dir is hardlinked from the shared .deb cache: it is writable only for the
    download, which runs nothing but apt, and read-only while maintainer scripts run, so no build
    can alter a .deb another build will install.

    With a package `lock` ({name: version} of an earlier build), apt pins make exactly those versions the
    candidates, a dist-upgrade moves the base layer's packages to them, and the result is checked. `snapshot`
    (an archive snapshot URL) is read too, for versions the mirror no longer has.
    """
    if not names and not lock:
        return
    root = sandbox.root
    if lock:
        prefs = inside(root, LOCK_PREFERENCES)
        prefs.parent.mkdir(parents=True, exist_ok=True)
        prefs.write_text(lock_preferences(lock))
    if lock and snapshot:
        source = inside(root, SNAPSHOT_SOURCE)
        source.parent.mkdir(parents=True, exist_ok=True)
        source.write_text(f"deb [check-valid-until=no] {snapshot} {release} main\n")
        ctx.log(f"reading the archive snapshot {snapshot} too")
    try:
        if lock and snapshot:
            sandbox.run(APT + "update", what=f"apt-get update (with the snapshot {snapshot})", network=True)
        if names:
            _apt(ctx, sandbox, "install " + " ".join(shlex.quote(n) for n in names),
                 f"{len(names)} package(s) and their dependencies: {', '.join(names)}")
        if lock and _lock_drift(root, lock):
            _apt(ctx, sandbox, "--allow-downgrades dist-upgrade", "the locked versions of the base packages")
    finally:
        if lock:
            inside(root, LOCK_PREFERENCES, follow_last=False).unlink(missing_ok=True)
            inside(root, SNAPSHOT_SOURCE, follow_last=False).unlink(missing_ok=True)
    if lock:
        drift = _lock_drift(root, lock)
        if drift:
            raise BuildError(ctx.stage, "the package lock cannot be met from the mirror: " + "; ".join(drift[:10])
                             + (f" (and {len(drift) - 10} more)" if len(drift) > 10 else "")
                             + ". Set KILN_SNAPSHOT_MIRROR to an archive snapshot from the locked build's day.",
                             user_error=True)
        ctx.log(f"package lock met: all {len(lock)} package(s) at their locked versions")


def _lock_drift(root: Path, lock: dict[str, str]) -> list[str]:
    """What differs between the tree's installed packages and the lock, one line per package."""
    installed = {p["name"]: p["version"] for p in installed_packages(root)}
    drift = [f"{name} {installed.get(name, 'not installed')} instead of {version}"
             for name, version in sorted(lock.items()) if installed.get(name) != version]
    drift += [f"{name} {version} is installed but not in the lock" for name, version in sorted(installed.items())
              if name not in lock]
    return drift


def _apt(ctx: BuildContext, sandbox: Sandbox, action: str, what: str) -> None:
    debs = ctx.work / "debs"
    apt_cache = ctx.settings.cache_dir / "apt"
    seed_debs(apt_cache, debs)
    ctx.log(f"downloading {what}")
    download = dict(network=True, binds=[(debs, ARCHIVES, True)])
    try:
        try:
            sandbox.run(APT + "--download-only " + action, what=f"apt-get {action} --download-only", **download)
        except BuildError as err:
            if "Unable to fetch" not in err.reason and "404" not in err.reason and "Unable to locate" not in err.reason:
                raise
            # The base's package lists are older than the mirror: refresh and try once more.
            ctx.log("package lists are out of date; running apt-get update and retrying", "warning")
            sandbox.run(APT + "update", what="apt-get update", **download)
            sandbox.run(APT + "--download-only " + action, what=f"apt-get {action} --download-only", **download)
    finally:
        harvest_debs(debs, apt_cache)
    ctx.log(f"installing {what} from local files, without network")
    # Read-only archives: apt must not take its lock there (the sandbox is private anyway).
    sandbox.run(APT + "-o Debug::NoLocking=true -o Acquire::http::Timeout=5 " + action,
                what=f"apt-get {action}", binds=[(debs, ARCHIVES, False)], tmpfs=[ARCHIVES + "/partial"])


def prepare_tree(ctx: BuildContext, root: Path) -> None:
    """Forbid service starts while building; undone by finish_tree."""
    policy = inside(root, "/usr/sbin/policy-rc.d")
    policy.write_text(POLICY_RC)
    policy.chmod(0o755)
    ctx.cleanup.push("policy-rc.d", lambda: finish_tree(root))


def finish_tree(root: Path) -> None:
    inside(root, "/usr/sbin/policy-rc.d", follow_last=False).unlink(missing_ok=True)


def configure(ctx: BuildContext, sandbox: Sandbox, recipe: dict) -> None:
    root = sandbox.root
    _hostname(ctx, root, recipe["hostname"])
    _timezone(ctx, root, recipe["timezone"])
    _locale(ctx, sandbox, recipe["locale"])
    _keyboard(root, recipe["keyboard"])
    _users(ctx, sandbox, recipe["users"])
    _files(ctx, sandbox, recipe["files"])
    _firewall(ctx, sandbox, recipe["firewall"])
    _services(ctx, sandbox, recipe["services"])
    _commands(ctx, sandbox, recipe["commands"])
    trim_boot_path(ctx, root)
    sandbox.run("apt-get clean", what="apt-get clean", quiet=True)


def _hostname(ctx: BuildContext, root: Path, hostname: str) -> None:
    short = hostname.split(".")[0]
    inside(root, "/etc/hostname").write_text(hostname + "\n")
    names = f"{hostname} {short}" if short != hostname else hostname
    inside(root, "/etc/hosts").write_text(
        f"127.0.0.1\tlocalhost\n127.0.1.1\t{names}\n\n"
        "::1\t\tlocalhost ip6-localhost ip6-loopback\nff02::1\t\tip6-allnodes\nff02::2\t\tip6-allrouters\n"
    )
    ctx.log(f"hostname set to {hostname}")


def _timezone(ctx: BuildContext, root: Path, tz: str) -> None:
    zone = "Etc/UTC" if tz in UTC_ZONES else tz
    if zone != "Etc/UTC" and not inside(root, f"/usr/share/zoneinfo/{zone}").exists():
        raise BuildError(ctx.stage, f"timezone {tz} is not available in the image's tzdata", user_error=True)
    localtime = inside(root, "/etc/localtime", follow_last=False)
    localtime.unlink(missing_ok=True)
    localtime.symlink_to(f"/usr/share/zoneinfo/{zone}")
    inside(root, "/etc/timezone").write_text(zone + "\n")
    ctx.log(f"timezone set to {zone}")


def _locale(ctx: BuildContext, sandbox: Sandbox, locale: str) -> None:
    root = sandbox.root
    if locale not in PLAIN_LOCALES:
        charset = "UTF-8"
        supported = inside(root, "/usr/share/i18n/SUPPORTED")
        if supported.exists():
            for line in supported.read_text().splitlines():
                parts = line.split()
                if parts and parts[0] == locale:
                    charset = parts[1]
                    break
            else:
                raise BuildError(ctx.stage, f"locale {locale} is not supported by the image's glibc", user_error=True)
        inside(root, "/etc/locale.gen").write_text(f"{locale} {charset}\n")
        sandbox.run("locale-gen", what="locale-gen")
    inside(root, "/etc/default").mkdir(parents=True, exist_ok=True)
    inside(root, "/etc/default/locale").write_text(f"LANG={locale}\n")
    ctx.log(f"locale set to {locale}")


def _keyboard(root: Path, keyboard: str) -> None:
    layout, _, variant = keyboard.partition("-")
    inside(root, "/etc/default").mkdir(parents=True, exist_ok=True)
    inside(root, "/etc/default/keyboard").write_text(
        f'XKBMODEL="pc105"\nXKBLAYOUT="{layout}"\nXKBVARIANT="{variant}"\nXKBOPTIONS=""\n\nBACKSPACE="guess"\n'
    )


def _users(ctx: BuildContext, sandbox: Sandbox, users: list[dict]) -> None:
    for user in users:
        name = user["name"]
        q = shlex.quote(name)
        script = []
        for group in user["groups"]:
            g = shlex.quote(group)
            script.append(f"getent group {g} >/dev/null || groupadd {g}")
        groups = ",".join(user["groups"])
        if name != "root":
            script.append(f"id -u {q} >/dev/null 2>&1 || useradd --create-home --shell /bin/bash {q}")
        if groups:
            script.append(f"usermod -a -G {shlex.quote(groups)} {q}")
        if user["passwordHash"]:
            script.append(f"usermod -p {shlex.quote(user['passwordHash'])} {q}")
        if user["sshKeys"]:
            keys = "\n".join(user["sshKeys"]) + "\n"
            script.append(
                f'home=$(getent passwd {q} | cut -d: -f6); mkdir -p "$home/.ssh"; '
                f'printf %s {shlex.quote(keys)} > "$home/.ssh/authorized_keys"; '
                f'chmod 700 "$home/.ssh"; chmod 600 "$home/.ssh/authorized_keys"; '
                f'chown -R {q}: "$home/.ssh"'
            )
        sandbox.run("\n".join(script), what=f"creating user {name}", user_error=True)
        ctx.log(f"user {name} configured" + (f" (groups: {groups})" if groups else ""))


def _files(ctx: BuildContext, sandbox: Sandbox, files: list[dict]) -> None:
    for f in files:
        path = shlex.quote(f["path"])
        # Written from inside the sandbox, where the image's symlinks resolve within the image.
        script = (f'mkdir -p "$(dirname {path})"; cat > {path}; '
                  f"chmod {f['mode']} {path}; chown {shlex.quote(f['owner'])} {path}")
        sandbox.run(script, stdin_data=f["content"].encode(), what=f"writing {f['path']}", user_error=True)
        ctx.log(f"wrote {f['path']} (mode {f['mode']}, owner {f['owner']})")


def nftables_conf(allow: list[str]) -> str:
    rules = []
    for rule in allow:
        port, _, proto = rule.partition("/")
        rules.append(f"\t\t{proto or 'tcp'} dport {port} accept")
    body = "\n".join(rules)
    return f"""#!/usr/sbin/nft -f
# Written by Kiln from the recipe's firewall section.
flush ruleset

table inet filter {{
\tchain input {{
\t\ttype filter hook input priority filter; policy drop;
\t\tct state established,related accept
\t\tct state invalid drop
\t\tiif "lo" accept
\t\tmeta l4proto {{ 1, 58 }} accept  # icmp, ipv6-icmp (numeric: minbase has no /etc/protocols)
\t\tudp sport 67 udp dport 68 accept
\t\tudp sport 547 udp dport 546 accept
{body}
\t}}
\tchain forward {{
\t\ttype filter hook forward priority filter; policy accept;
\t}}
\tchain output {{
\t\ttype filter hook output priority filter; policy accept;
\t}}
}}
"""


def _firewall(ctx: BuildContext, sandbox: Sandbox, firewall: dict) -> None:
    if not firewall["enabled"]:
        return
    conf = inside(sandbox.root, "/etc/nftables.conf")
    conf.write_text(nftables_conf(firewall["allow"]))
    conf.chmod(0o755)
    sandbox.run("systemctl enable nftables.service", what="enabling nftables")
    ctx.log(f"firewall enabled, allowing {', '.join(firewall['allow']) or 'no inbound ports'}")


def _services(ctx: BuildContext, sandbox: Sandbox, services: dict) -> None:
    for verb in ("enable", "disable"):
        for unit in services[verb]:
            sandbox.run(f"systemctl {verb} {shlex.quote(unit)}", user_error=True,
                        what=f"systemctl {verb} {unit} (is the unit installed by a listed package?)")
            ctx.log(f"service {unit} {verb}d")


def _commands(ctx: BuildContext, sandbox: Sandbox, commands: list[str]) -> None:
    for i, command in enumerate(commands):
        ctx.log(f"running recipe command {i + 1}/{len(commands)}: {command}")
        code, lines = sandbox.run(command, what=f"recipe command {i + 1} ({command})", user_error=True, check=False)
        if code != 0:
            hint = sandbox.hint(lines)
            if hint:
                ctx.log(f"recipe command {i + 1}: {hint}", "error")
            raise BuildError(ctx.stage, f"recipe command {i + 1} failed with exit code {code}: {command}"
                             + (f"\n{hint}" if hint else ""), user_error=True)
