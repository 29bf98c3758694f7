"""The configure stage: turn the recipe's settings into files and commands in the image tree.

Everything that runs inside the image goes through `chroot` with /proc, /sys and /dev
mounted, and a policy-rc.d that stops package installs from starting services on the host.
"""
from __future__ import annotations

import shlex
from pathlib import Path

from .base import harvest_debs, seed_debs
from .context import BuildContext, BuildError
from .fsutil import unmount_all
from .userns import in_user_namespace

POLICY_RC = "#!/bin/sh\n# Kiln: never start services while building the image\nexit 101\n"
UTC_ZONES = {"Etc/UTC", "UTC", "Etc/Universal", "Universal", "Zulu", "Etc/Zulu"}
PLAIN_LOCALES = {"C", "C.UTF-8", "POSIX"}


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


def mount_chroot(ctx: BuildContext, root: Path) -> None:
    for sub in ("proc", "sys", "dev", "dev/pts", "run"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    ctx.cleanup.push("chroot mounts", lambda: unmount_all_chroot(root))
    ctx.run(["mount", "-t", "proc", "proc", str(root / "proc")], quiet=True)
    if in_user_namespace():
        # A new sysfs needs a network namespace of our own, which would cut apt off the mirror; and
        # the host's /dev and /sys carry submounts a user namespace may only bind together (--rbind).
        ctx.run(["mount", "--rbind", "/sys", str(root / "sys")], quiet=True)
        ctx.run(["mount", "--rbind", "/dev", str(root / "dev")], quiet=True)
    else:
        ctx.run(["mount", "-t", "sysfs", "sysfs", str(root / "sys")], quiet=True)
        ctx.run(["mount", "--bind", "/dev", str(root / "dev")], quiet=True)
    ctx.run(["mount", "-t", "devpts", "-o", "newinstance,ptmxmode=0666", "devpts", str(root / "dev/pts")], quiet=True)
    ctx.run(["mount", "-t", "tmpfs", "tmpfs", str(root / "run")], quiet=True)


def unmount_all_chroot(root: Path) -> None:
    for sub in ("run", "dev/pts", "dev", "sys", "proc", "var/cache/apt/archives"):
        unmount_all(root / sub)


def install_packages(ctx: BuildContext, root: Path, names: list[str]) -> None:
    """apt-get install into the tree with a private archives dir seeded from the shared .deb cache."""
    if not names:
        return
    debs = ctx.work / "debs"
    apt_cache = ctx.settings.cache_dir / "apt"
    seed_debs(apt_cache, debs)
    archives = root / "var/cache/apt/archives"
    archives.mkdir(parents=True, exist_ok=True)
    ctx.run(["mount", "--bind", str(debs), str(archives)], quiet=True)
    try:
        apt = ("apt-get -y -q -o Dpkg::Use-Pty=0 -o APT::Install-Recommends=false "
               "-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "
               "-o Dpkg::Options::=--force-unsafe-io ")
        install = apt + "install " + " ".join(shlex.quote(n) for n in names)
        ctx.log(f"installing {len(names)} package(s): {', '.join(names)}")
        try:
            ctx.chroot(root, install, what="apt-get install")
        except BuildError as err:
            if "Unable to fetch" not in err.reason and "404" not in err.reason and "Unable to locate" not in err.reason:
                raise
            # The base's package lists are older than the mirror: refresh and try once more.
            ctx.log("package lists are out of date; running apt-get update and retrying", "warning")
            ctx.chroot(root, apt + "update", what="apt-get update")
            ctx.chroot(root, install, what="apt-get install")
    finally:
        harvest_debs(debs, apt_cache)
        unmount_all(archives)


def prepare_chroot(ctx: BuildContext, root: Path) -> None:
    """Mount /proc, /sys, /dev for chroot work and forbid service starts; undone by finish_chroot."""
    policy = root / "usr/sbin/policy-rc.d"
    policy.write_text(POLICY_RC)
    policy.chmod(0o755)
    ctx.cleanup.push("policy-rc.d", lambda: policy.unlink(missing_ok=True))
    mount_chroot(ctx, root)


def finish_chroot(root: Path) -> None:
    unmount_all_chroot(root)
    (root / "usr/sbin/policy-rc.d").unlink(missing_ok=True)


def configure(ctx: BuildContext, root: Path, recipe: dict) -> None:
    _hostname(ctx, root, recipe["hostname"])
    _timezone(ctx, root, recipe["timezone"])
    _locale(ctx, root, recipe["locale"])
    _keyboard(root, recipe["keyboard"])
    _users(ctx, root, recipe["users"])
    _files(ctx, root, recipe["files"])
    _firewall(ctx, root, recipe["firewall"])
    _services(ctx, root, recipe["services"])
    _commands(ctx, root, recipe["commands"])
    ctx.chroot(root, "apt-get clean", quiet=True)


def _hostname(ctx: BuildContext, root: Path, hostname: str) -> None:
    short = hostname.split(".")[0]
    (root / "etc/hostname").write_text(hostname + "\n")
    names = f"{hostname} {short}" if short != hostname else hostname
    (root / "etc/hosts").write_text(
        f"127.0.0.1\tlocalhost\n127.0.1.1\t{names}\n\n"
        "::1\t\tlocalhost ip6-localhost ip6-loopback\nff02::1\t\tip6-allnodes\nff02::2\t\tip6-allrouters\n"
    )
    ctx.log(f"hostname set to {hostname}")


def _timezone(ctx: BuildContext, root: Path, tz: str) -> None:
    zone = "Etc/UTC" if tz in UTC_ZONES else tz
    if zone != "Etc/UTC" and not (root / "usr/share/zoneinfo" / zone).exists():
        raise BuildError(ctx.stage, f"timezone {tz} is not available in the image's tzdata", user_error=True)
    localtime = root / "etc/localtime"
    localtime.unlink(missing_ok=True)
    localtime.symlink_to(f"/usr/share/zoneinfo/{zone}")
    (root / "etc/timezone").write_text(zone + "\n")
    ctx.log(f"timezone set to {zone}")


def _locale(ctx: BuildContext, root: Path, locale: str) -> None:
    if locale not in PLAIN_LOCALES:
        charset = "UTF-8"
        supported = root / "usr/share/i18n/SUPPORTED"
        if supported.exists():
            for line in supported.read_text().splitlines():
                parts = line.split()
                if parts and parts[0] == locale:
                    charset = parts[1]
                    break
            else:
                raise BuildError(ctx.stage, f"locale {locale} is not supported by the image's glibc", user_error=True)
        (root / "etc/locale.gen").write_text(f"{locale} {charset}\n")
        ctx.chroot(root, "locale-gen", what="locale-gen")
    (root / "etc/default").mkdir(parents=True, exist_ok=True)
    (root / "etc/default/locale").write_text(f"LANG={locale}\n")
    ctx.log(f"locale set to {locale}")


def _keyboard(root: Path, keyboard: str) -> None:
    layout, _, variant = keyboard.partition("-")
    (root / "etc/default").mkdir(parents=True, exist_ok=True)
    (root / "etc/default/keyboard").write_text(
        f'XKBMODEL="pc105"\nXKBLAYOUT="{layout}"\nXKBVARIANT="{variant}"\nXKBOPTIONS=""\n\nBACKSPACE="guess"\n'
    )


def _users(ctx: BuildContext, root: Path, users: list[dict]) -> None:
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
        ctx.chroot(root, "\n".join(script), what=f"creating user {name}", user_error=True)
        ctx.log(f"user {name} configured" + (f" (groups: {groups})" if groups else ""))


def _files(ctx: BuildContext, root: Path, files: list[dict]) -> None:
    for f in files:
        path = shlex.quote(f["path"])
        # Written from inside the chroot so a symlink in the image can never redirect the write to the host.
        script = (f'mkdir -p "$(dirname {path})"; cat > {path}; '
                  f"chmod {f['mode']} {path}; chown {shlex.quote(f['owner'])} {path}")
        ctx.chroot(root, script, stdin_data=f["content"].encode(), what=f"writing {f['path']}", user_error=True)
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


def _firewall(ctx: BuildContext, root: Path, firewall: dict) -> None:
    if not firewall["enabled"]:
        return
    conf = root / "etc/nftables.conf"
    conf.write_text(nftables_conf(firewall["allow"]))
    conf.chmod(0o755)
    ctx.chroot(root, "systemctl enable nftables.service", what="enabling nftables")
    ctx.log(f"firewall enabled, allowing {', '.join(firewall['allow']) or 'no inbound ports'}")


def _services(ctx: BuildContext, root: Path, services: dict) -> None:
    for verb in ("enable", "disable"):
        for unit in services[verb]:
            ctx.chroot(root, f"systemctl {verb} {shlex.quote(unit)}", user_error=True,
                       what=f"systemctl {verb} {unit} (is the unit installed by a listed package?)")
            ctx.log(f"service {unit} {verb}d")


def _commands(ctx: BuildContext, root: Path, commands: list[str]) -> None:
    for i, command in enumerate(commands):
        ctx.log(f"running recipe command {i + 1}/{len(commands)}: {command}")
        code, _ = ctx.chroot(root, command, check=False)
        if code != 0:
            raise BuildError(ctx.stage, f"recipe command {i + 1} failed with exit code {code}: {command}",
                             user_error=True)
