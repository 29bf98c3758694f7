"""Configuration intents written as files in the conventional drop-in directories.

"no root login over ssh", "run my backup script every night", "let deploy restart nginx without a
password", "rotate logs daily", "set vm.swappiness to 10", "static ip 10.0.0.5/24", "use ntp server
ntp.example.com", "add a 2G swap file". Every file says which request wrote it, and gets a test where
the image can be checked. Settings of one kind collect in one file, so a later request adds to it.
"""
from __future__ import annotations

import ipaddress
import re
from typing import Callable

from . import catalog
from .reading import Clause, Ctx

SSHD_FILE = "/etc/ssh/sshd_config.d/50-kiln.conf"
SYSCTL_FILE = "/etc/sysctl.d/90-kiln.conf"
NETWORK_FILE = "/etc/systemd/network/10-kiln-static.network"
JOURNALD_FILE = "/etc/systemd/journald.conf.d/90-kiln.conf"
TIMESYNCD_FILE = "/etc/systemd/timesyncd.conf.d/90-kiln.conf"
CHRONY_FILE = "/etc/chrony/sources.d/kiln.sources"
SWAP_UNIT = "/etc/systemd/system/kiln-swapfile.service"


def _said(c: Clause, ctx: Ctx) -> str:
    """The request as the person wrote it, for the comment in the file (placeholders put back)."""
    text = re.sub(r"§(\d+)§", lambda m: ctx.protected.spans[int(m.group(1))].value, c.orig)
    return " ".join(text.split()).replace("\n", " ")[:200]


def _current(ctx: Ctx, path: str) -> str:
    return next((f["content"] for f in ctx.recipe["files"] if f["path"] == path), "")


def _set_lines(ctx: Ctx, path: str, request: str, lines: dict[str, str], header: str = "", mode: str | None = None) -> str:
    """Add or replace `key -> line` entries in a drop-in file, each under a comment naming the request."""
    content = _current(ctx, path) or (header + "\n" if header else "")
    for key, line in lines.items():
        content = re.sub(rf"(?m)^# Kiln: .*\n{re.escape(key)}\b.*\n", "", content)
        content = re.sub(rf"(?m)^{re.escape(key)}\b.*\n", "", content)
        content += f"# Kiln: \"{request}\"\n{line}\n"
    op = {"op": "add_file", "path": path, "content": content}
    if mode:
        op["mode"] = mode
    ctx.apply(op)
    return content


def _need(ctx: Ctx, *packages: str) -> None:
    missing = [p for p in packages if p not in ctx.recipe["packages"]]
    if missing:
        ctx.apply({"op": "add_packages", "packages": missing})


def _test(ctx: Ctx, type_: str, **params) -> None:
    ctx.apply({"op": "add_test", "type": type_, "params": params})


# ---- ssh ------------------------------------------------------------------------------------------

_SSH = r"(?:over\s+|via\s+|for\s+|in\s+|on\s+)?(?:the\s+)?(?:ssh|sshd|openssh)?"


def _sshd(ctx: Ctx, c: Clause) -> bool:
    s = c.s
    directives: dict[str, str] = {}
    if re.search(r"\b(?:no|disable|disallow|forbid|block|deny|prevent|without)\s+(?:the\s+)?root\s+(?:ssh\s+)?log\s*ins?\b|"
                 r"\broot\s+(?:can(?:not|'t|\s+not)|must\s+not|shouldn't|should\s+not|may\s+not)\s+(?:be\s+able\s+to\s+)?"
                 r"(?:log\s*in|ssh)|\bpermitrootlogin\s+no\b|\bno\s+ssh\s+(?:for|as)\s+root\b", s):
        directives["PermitRootLogin"] = "PermitRootLogin no"
    hardened = re.search(r"\b(?:harden(?:ed)?|lock\s+down|secure)\s+(?:the\s+)?(?:ssh|sshd|openssh)\b|"
                         r"\b(?:ssh|sshd)\s+hardening\b|\bhardened\s+ssh\b", s)
    if hardened:
        directives["PermitRootLogin"] = "PermitRootLogin no"
    if hardened or re.search(r"\b(?:no|disable|disallow|without|forbid|turn\s+off)\s+(?:ssh\s+)?password\s+(?:log\s*ins?|auth\w*)\b|"
                 r"\b(?:key|keys)[- ]only\b|\bonly\s+(?:ssh\s+)?keys?\b|\bpasswordauthentication\s+no\b|"
                 r"\b(?:ssh\s+)?keys?\s+only\b|\bno\s+passwords?\s+(?:over|for|via)\s+ssh\b", s):
        directives["PasswordAuthentication"] = "PasswordAuthentication no"
        directives["KbdInteractiveAuthentication"] = "KbdInteractiveAuthentication no"
    port = re.search(r"\b(?:ssh|sshd)\s+(?:to\s+|on\s+|listen\s+on\s+)?(?:(?:the\s+)?port\s+(?:to\s+)?)?(\d{2,5})\b|"
                     r"\b(?:ssh|sshd)(?:'s)?\s+port\s+(?:to\s+|is\s+|=\s*)?(\d{2,5})\b|"
                     r"\bport\s+(\d{2,5})\s+for\s+ssh\b|\bssh\s+(?:listen|run)s?\s+on\s+(?:port\s+)?(\d{2,5})\b", s)
    if port:
        number = next(int(g) for g in port.groups() if g)
        if not 1 <= number <= 65535:
            ctx.refused.append(f"Not applied: {number} is not a port (1-65535).")
            return True
        directives["Port"] = f"Port {number}"
    if not directives:
        return False
    request = _said(c, ctx)
    _need(ctx, "openssh-server")
    _set_lines(ctx, SSHD_FILE, request, directives)
    if port:
        number = int(directives["Port"].split()[1])
        if ctx.recipe["firewall"]["enabled"]:
            ctx.apply({"op": "open_ports", "ports": [f"{number}/tcp"]})
            if number != 22 and "22/tcp" in ctx.recipe["firewall"]["allow"]:
                ctx.apply({"op": "close_ports", "ports": ["22/tcp"]})
        _test(ctx, "port_open", port=number, protocol="tcp")
    for key in directives:
        if key != "KbdInteractiveAuthentication":
            _test(ctx, "file_contains", path=SSHD_FILE, text=directives[key])
    return True


# ---- scheduled jobs -------------------------------------------------------------------------------

_DAYS = {d: i for i, d in enumerate(["sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"])}
_SCHEDULE = (r"\b(?:every\s+(?:night|day|evening|morning|hour|week|month|\d+\s+(?:minutes?|mins?|hours?)|"
             r"(?:sunday|monday|tuesday|wednesday|thursday|friday|saturday))|nightly|daily|hourly|weekly|monthly|"
             r"each\s+(?:night|day|hour|week)|at\s+midnight|once\s+a\s+(?:day|week|month|night))\b")


def _when(s: str) -> tuple[str, str, str] | None:
    """-> (cron fields, systemd OnCalendar, words) for the schedule named in `s`."""
    at = re.search(r"\bat\s+(\d{1,2})(?::(\d{2}))?\s*(am|pm|h)?\b", s)
    hour, minute = 2, 0
    if at:
        hour, minute = int(at.group(1)) % 24, int(at.group(2) or 0)
        if at.group(3) == "pm" and hour < 12:
            hour += 12
        if at.group(3) == "am" and hour == 12:
            hour = 0
    if re.search(r"\bat\s+midnight\b", s):
        hour, minute = 0, 0
    clock = f"{hour:02d}:{minute:02d}"
    every = re.search(r"\bevery\s+(\d+)\s+(minutes?|mins?|hours?)\b", s)
    if every:
        n = int(every.group(1))
        if every.group(2).startswith("h"):
            return f"0 */{n} * * *", f"*-*-* 0/{n}:00:00", f"every {n} hours"
        return f"*/{n} * * * *", f"*:0/{n}", f"every {n} minutes"
    if re.search(r"\b(?:every|each)\s+hour\b|\bhourly\b", s):
        return "0 * * * *", "hourly", "every hour"
    day = re.search(r"\bevery\s+(sunday|monday|tuesday|wednesday|thursday|friday|saturday)\b", s)
    if day:
        return (f"{minute} {hour} * * {_DAYS[day.group(1)]}", f"{day.group(1)[:3].title()} *-*-* {clock}:00",
                f"every {day.group(1).title()} at {clock}")
    if re.search(r"\b(?:every|each)\s+week\b|\bweekly\b|\bonce\s+a\s+week\b", s):
        return f"{minute} {hour} * * 0", f"Sun *-*-* {clock}:00", f"every Sunday at {clock}"
    if re.search(r"\bevery\s+month\b|\bmonthly\b|\bonce\s+a\s+month\b", s):
        return f"{minute} {hour} 1 * *", f"*-*-01 {clock}:00", f"on the 1st of every month at {clock}"
    if re.search(_SCHEDULE, s) or at:
        return f"{minute} {hour} * * *", f"*-*-* {clock}:00", f"every day at {clock}"
    return None


def _schedule(ctx: Ctx, c: Clause) -> bool:
    s = c.s
    if not (re.search(_SCHEDULE, s) and re.search(r"\b(?:run|runs|execute|start|schedule|cron|timer|job|script|backup|"
                                                   r"command)\b", s)):
        return False
    if re.search(r"\b(?:rotate|rotation|logs?)\b", s) and not re.search(r"\bscript\b", s):
        return False
    command = None
    for m, span in c.placeholders(ctx):
        if span.kind in ("path", "command", "quote"):
            command = span.value
            break
    name_m = re.search(r"\b(?:my|the|our|a)\s+([a-z][\w-]*)\s+(?:script|job|task|command)\b", s)
    name = re.sub(r"[^a-z0-9-]+", "-", (name_m.group(1) if name_m else
                                          (command or "job").split()[0].rsplit("/", 1)[-1].split(".")[0]).lower()).strip("-") or "job"
    note = ""
    if command is None:
        command = f"/usr/local/bin/{name}"
        note = f" Put your script at {command} (executable), for example with \"create {command} with content '...'\"."
    when = _when(s)
    if when is None:
        return False
    cron, calendar, words = when
    request = _said(c, ctx)
    if re.search(r"\b(?:systemd\s+)?timer\b", s):
        unit = f"/etc/systemd/system/kiln-{name}"
        ctx.apply({"op": "add_file", "path": unit + ".service", "content":
                   f"# Kiln: \"{request}\"\n[Unit]\nDescription={name} (scheduled by Kiln)\n\n[Service]\nType=oneshot\n"
                   f"ExecStart={command}\n"},
                  {"op": "add_file", "path": unit + ".timer", "content":
                   f"# Kiln: \"{request}\"\n[Unit]\nDescription=Run {name} {words}\n\n[Timer]\nOnCalendar={calendar}\n"
                   f"Persistent=true\n\n[Install]\nWantedBy=timers.target\n"},
                  {"op": "enable_services", "services": [f"kiln-{name}.timer"]})
        _test(ctx, "file_contains", path=unit + ".timer", text=f"OnCalendar={calendar}")
    else:
        _need(ctx, "cron")
        path = f"/etc/cron.d/kiln-{name}"
        ctx.apply({"op": "add_file", "path": path, "content":
                   f"# Kiln: \"{request}\"\nSHELL=/bin/sh\nPATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
                   f"{cron} root {command}\n"})
        _test(ctx, "file_contains", path=path, text=f"{cron} root {command}")
    ctx.say(f"It runs {words}.{note}")
    return True


# ---- sudo -----------------------------------------------------------------------------------------

_SUDO_VERB = r"(restart|reload|start|stop|status\s+of|run|manage)"


def _sudo(ctx: Ctx, c: Clause) -> bool:
    s = c.s
    m = re.search(r"\b(?:let|allow|permit|enable)\s+(?:the\s+)?(?:user\s+)?([a-z_][\w-]*)(?:\s+user)?\s+(?:to\s+)?"
                  + _SUDO_VERB + r"\s+(.+?)\s+(?:without|with\s+no)\s+(?:a\s+|entering\s+a\s+)?password\b", s)
    everything = re.search(r"\b(?:passwordless|password-less|nopasswd)\s+sudo\s+(?:for|to)\s+(?:the\s+)?(?:user\s+)?"
                           r"([a-z_][\w-]*)|\bgive\s+(?:the\s+)?(?:user\s+)?([a-z_][\w-]*)(?:\s+user)?\s+"
                           r"(?:passwordless|password-less|nopasswd)\s+sudo\b|\b(?:let|allow)\s+(?:the\s+)?(?:user\s+)?"
                           r"([a-z_][\w-]*)(?:\s+user)?\s+(?:to\s+)?(?:use\s+)?sudo\s+without\s+(?:a\s+)?password\b", s)
    if not (m or everything):
        return False
    if m:
        user, verb, what = m.group(1), m.group(2), m.group(3).strip()
        what = re.sub(r"^(?:the\s+)?", "", what)
        if verb == "run":
            rule, said = f"{what}", f"run {what}"
        else:
            service = re.sub(r"\s+(?:service|daemon)$", "", what).split()[0]
            service = catalog.service_for(service)
            verb = "status" if verb.startswith("status") else ("restart" if verb == "manage" else verb)
            rule, said = f"/usr/bin/systemctl {verb} {service}", f"{verb} {service}"
        line = f"{user} ALL=(root) NOPASSWD: {rule}"
    else:
        user = next(g for g in everything.groups() if g)
        line, said = f"{user} ALL=(ALL:ALL) NOPASSWD: ALL", "use sudo for everything"
    request = _said(c, ctx)
    _need(ctx, "sudo")
    if not any(u["name"] == user for u in ctx.recipe["users"]):
        ctx.apply({"op": "add_user", "name": user})
    path = f"/etc/sudoers.d/kiln-{user}"
    _set_lines(ctx, path, request, {line: line}, mode="0440")
    _test(ctx, "file_contains", path=path, text=line)
    ctx.say(f"{user} may now {said} with sudo, without a password.")
    return True


# ---- logs -----------------------------------------------------------------------------------------

def _logs(ctx: Ctx, c: Clause) -> bool:
    s = c.s
    if not re.search(r"\b(?:rotate|rotated|rotation|rotating)\b.*\blogs?\b|\blogs?\b.*\b(?:rotate|rotated|rotation)\b|"
                     r"\bkeep\s+(?:the\s+)?logs?\s+(?:for\s+)?\d+\s+days?\b|\blog\s+retention\b", s):
        return False
    period = ("weekly" if re.search(r"\bweekly|every\s+week\b", s) else "monthly" if re.search(r"\bmonthly|every\s+month\b", s)
              else "daily")
    keep = re.search(r"\bkeep\s+(?:the\s+|them\s+|it\s+)?(?:logs?\s+)?(?:for\s+)?(\d+)\s*(days?|weeks?|rotations?|files?|copies)?\b", s)
    request = _said(c, ctx)
    target = re.search(r"(?<![\w§])(/var/log/[\w./*-]+)", c.orig)
    placeholder_paths = [span.value for _, span in c.placeholders(ctx, "path") if span.value.startswith("/var/log/")]
    path_glob = target.group(1) if target else (placeholder_paths[0] if placeholder_paths else None)
    if path_glob:
        name = re.sub(r"[^a-z0-9-]+", "-", path_glob.removeprefix("/var/log/").split("/")[0].split(".")[0].lower()) or "logs"
        count = int(keep.group(1)) if keep else 7
        path = f"/etc/logrotate.d/kiln-{name}"
        _need(ctx, "logrotate")
        ctx.apply({"op": "add_file", "path": path, "content":
                   f"# Kiln: \"{request}\"\n{path_glob} {{\n    {period}\n    rotate {count}\n    compress\n"
                   f"    delaycompress\n    missingok\n    notifempty\n}}\n"})
        _test(ctx, "file_contains", path=path, text=period)
        ctx.say(f"{path_glob} is rotated {period}, keeping {count}.")
    else:
        # Debian 12/13 keep system logs in the journal (no rsyslog by default): rotation is journald's.
        unit = {"daily": "1day", "weekly": "1week", "monthly": "1month"}[period]
        lines = {"[Journal]": "[Journal]", "MaxFileSec": f"MaxFileSec={unit}"}
        if keep:
            n, what = int(keep.group(1)), keep.group(2) or "days"
            days = n * 7 if what.startswith("week") else n
            lines["MaxRetentionSec"] = f"MaxRetentionSec={days}day"
        content = _current(ctx, JOURNALD_FILE) or "[Journal]\n"
        for key, line in lines.items():
            if key == "[Journal]":
                continue
            content = re.sub(rf"(?m)^# Kiln: .*\n{key}=.*\n", "", content)
            content += f"# Kiln: \"{request}\"\n{line}\n"
        ctx.apply({"op": "add_file", "path": JOURNALD_FILE, "content": content})
        _test(ctx, "file_contains", path=JOURNALD_FILE, text=lines["MaxFileSec"])
        ctx.say("The system logs live in the journal on Debian, so journald rotates them "
                + {"daily": "every day", "weekly": "every week", "monthly": "every month"}[period]
                + (f" and keeps {lines['MaxRetentionSec'].split('=')[1].replace('day', ' days')}" if "MaxRetentionSec" in lines else "")
                + ". For an application's own log files, name them: \"rotate /var/log/myapp/*.log daily\".")
    return True


# ---- kernel settings ------------------------------------------------------------------------------

_SYSCTL_NAMED = {
    r"\b(?:enable|turn\s+on|allow)\s+(?:ip(?:v4)?\s+)?(?:packet\s+)?forwarding\b|\bip[_ ]forward(?:ing)?\s+on\b":
        ("net.ipv4.ip_forward", "1"),
    r"\b(?:disable|turn\s+off)\s+ipv6\b|\bno\s+ipv6\b": ("net.ipv6.conf.all.disable_ipv6", "1"),
}


def _sysctl(ctx: Ctx, c: Clause) -> bool:
    s = c.s
    settings: list[tuple[str, str]] = []
    for m in re.finditer(r"\b((?:net|vm|kernel|fs)\.[a-z0-9_.-]+[a-z0-9_])\s*(?:=|to|at|:)?\s*(-?\d+(?:\s+\d+)*)\b", s):
        settings.append((m.group(1), m.group(2)))
    for pattern, setting in _SYSCTL_NAMED.items():
        if re.search(pattern, s):
            settings.append(setting)
    swappiness = re.search(r"\bswappiness\s+(?:to\s+|=\s*|of\s+)?(\d{1,3})\b", s)
    if swappiness and not any(k == "vm.swappiness" for k, _ in settings):
        settings.append(("vm.swappiness", swappiness.group(1)))
    if not settings:
        return False
    request = _said(c, ctx)
    _set_lines(ctx, SYSCTL_FILE, request, {k: f"{k} = {v}" for k, v in settings})
    for key, value in settings:
        _test(ctx, "file_contains", path=SYSCTL_FILE, text=f"{key} = {value}")
        _test(ctx, "command_succeeds", command=f"sysctl -n {key}", stdoutContains=value.split()[0])
    return True


# ---- network ----------------------------------------------------------------------------------------

_IP = r"(\d{1,3}(?:\.\d{1,3}){3})(/\d{1,2})?"


def _static_ip(ctx: Ctx, c: Clause) -> bool:
    s = c.s
    m = re.search(r"\b(?:static\s+(?:ip(?:v4)?\s+)?(?:address\s+)?|fixed\s+(?:ip\s+)?(?:address\s+)?|ip\s+address\s+(?:to\s+|of\s+)?|"
                  r"address\s+)(?:to\s+|of\s+|is\s+|=\s*)?" + _IP, s)
    if not m:
        return False
    address = m.group(1) + (m.group(2) or "/24")
    try:
        iface = ipaddress.ip_interface(address)
    except ValueError:
        ctx.refused.append(f"Not applied: {address} is not an IPv4 address like 192.168.1.10/24.")
        return True
    gateway = re.search(r"\b(?:gateway|gw|router|via)\s+(?:is\s+|of\s+|=\s*)?(\d{1,3}(?:\.\d{1,3}){3})\b", s)
    dns = re.findall(r"(\d{1,3}(?:\.\d{1,3}){3})", s[re.search(r"\b(?:dns|nameservers?|resolvers?)\b", s).end():]) \
        if re.search(r"\b(?:dns|nameservers?|resolvers?)\b", s) else []
    request = _said(c, ctx)
    lines = [f"# Kiln: \"{request}\"", "[Match]", "Name=en* eth*", "", "[Network]", f"Address={iface.with_prefixlen}"]
    if gateway:
        lines.append(f"Gateway={gateway.group(1)}")
    lines += [f"DNS={d}" for d in dns if not gateway or d != gateway.group(1)]
    ctx.apply({"op": "add_file", "path": NETWORK_FILE, "content": "\n".join(lines) + "\n"},
              {"op": "enable_services", "services": ["systemd-networkd"]})
    _test(ctx, "file_contains", path=NETWORK_FILE, text=f"Address={iface.with_prefixlen}")
    if not m.group(2):
        ctx.say(f"(I assumed a /24 network for {m.group(1)}.)")
    return True


def _ntp(ctx: Ctx, c: Clause) -> bool:
    s = c.s
    m = re.search(r"\b(?:ntp|time)\s+(?:servers?|sources?|pools?)\s*(?:to\s+|is\s+|are\s+|=\s*|:\s*)?(.+)$|"
                  r"\b(?:sync|synchroni[sz]e)\s+(?:the\s+)?(?:time|clock)\s+(?:with|from|to|against)\s+(.+)$|"
                  r"\buse\s+(.+?)\s+(?:for|as)\s+(?:the\s+)?(?:ntp|time\s+server|time\s+source)\b", s)
    if not m:
        return False
    raw = next(g for g in m.groups() if g)
    servers = [h for h in re.findall(r"[a-z0-9][a-z0-9.-]*\.[a-z0-9-]+|\d{1,3}(?:\.\d{1,3}){3}", raw)]
    if not servers:
        ctx.ask("Which NTP server? For example: \"use ntp server ntp.example.com\".")
        return True
    request = _said(c, ctx)
    if "chrony" in ctx.recipe["packages"]:
        ctx.apply({"op": "add_file", "path": CHRONY_FILE, "content":
                   f"# Kiln: \"{request}\"\n" + "".join(f"server {h} iburst\n" for h in servers)})
        _test(ctx, "file_contains", path=CHRONY_FILE, text=f"server {servers[0]} iburst")
    else:
        _need(ctx, "systemd-timesyncd")
        ctx.apply({"op": "add_file", "path": TIMESYNCD_FILE, "content":
                   f"# Kiln: \"{request}\"\n[Time]\nNTP={' '.join(servers)}\n"})
        _test(ctx, "file_contains", path=TIMESYNCD_FILE, text=f"NTP={' '.join(servers)}")
    return True


def _swap(ctx: Ctx, c: Clause) -> bool:
    s = c.s
    if not re.search(r"\bswap\s*(?:file|space|partition)?\b", s) or re.search(r"\bswappiness\b", s):
        return False
    if re.search(r"\b(?:no|remove|disable|without|drop)\s+(?:the\s+)?swap", s):
        if any(f["path"] == SWAP_UNIT for f in ctx.recipe["files"]):
            ctx.apply({"op": "remove_file", "path": SWAP_UNIT})
            ctx.apply({"op": "remove_tests", "subject": SWAP_UNIT})
        else:
            ctx.say("There is no swap file in the recipe.")
        return True
    size = re.search(r"\b(\d+(?:\.\d+)?)\s*(g|gb|gib|gigs?|m|mb|mib)\b", s)
    if size:
        amount, unit = size.group(1), size.group(2)
        mb = int(float(amount) * (1024 if unit.startswith("g") else 1))
    else:
        mb = 1024
    if not 16 <= mb <= 64 * 1024:
        ctx.refused.append(f"Not applied: a swap file of {mb} MB is outside 16 MB to 64 GB.")
        return True
    request = _said(c, ctx)
    # Created at first boot, not at build time: a multi-gigabyte file must not ride along in the image.
    ctx.apply({"op": "add_file", "path": SWAP_UNIT, "content":
               f"# Kiln: \"{request}\"\n[Unit]\nDescription=Swap file /swapfile ({mb} MB)\n"
               "ConditionPathExists=!/swapfile\nBefore=swap.target\n\n[Service]\nType=oneshot\nRemainAfterExit=yes\n"
               f"ExecStart=/bin/sh -c 'fallocate -l {mb}M /swapfile && chmod 600 /swapfile && mkswap /swapfile && "
               "swapon /swapfile'\n\n[Install]\nWantedBy=swap.target\n"},
              {"op": "enable_services", "services": ["kiln-swapfile"]})
    _test(ctx, "file_contains", path=SWAP_UNIT, text=f"fallocate -l {mb}M /swapfile")
    ctx.say(f"A {mb} MB swap file is created at /swapfile on first boot.")
    return True


HANDLERS: tuple[Callable[[Ctx, Clause], bool], ...] = (_sshd, _sudo, _logs, _schedule, _sysctl, _swap, _static_ip, _ntp)


def handle_config(ctx: Ctx, c: Clause) -> bool:
    """A configuration request takes its whole clause (its words name settings, not software)."""
    if any(handler(ctx, c) for handler in HANDLERS):
        c.consume(0, len(c.s))
        return True
    return False
