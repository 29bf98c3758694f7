"""Reading the serial console: did the image boot, and if not, why."""
from __future__ import annotations

import re
from dataclasses import dataclass, field

ANSI_RE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Za-z0-9]|\x1b[=>]")
# The kernel may print on the same line right after the prompt: "web01 login: [ 94.1] powernow_k8: ..."
LOGIN_RE = re.compile(r"(^|\s)\S+ login:(\s|$)", re.M)
MULTI_USER_RE = re.compile(r"Reached target .*Multi-User System", re.M)
# The init system's first words after the initramfs handed over: systemd's kernel-log lines or its banner.
INIT_RE = re.compile(r"systemd\[1\]: |^Welcome to .+!\s*$|systemd \d+\S* running in system mode", re.M)
PANIC_RE = re.compile(r"Kernel panic - not syncing:?\s*(.*)$", re.M)
EMERGENCY_RE = re.compile(
    r"(You are in emergency mode|Give root password for maintenance|Entering emergency mode|"
    r"You are in rescue mode|Cannot open access to console, the root account is locked)", re.M)
INITRAMFS_SHELL_RE = re.compile(r"^\(initramfs\)\s*$|Dropping to a shell!", re.M)
FAILED_RE = re.compile(r"\[\s*FAILED\s*\]\s*Failed to (?:start|mount|activate|listen on)\s+(.+?)\s*$", re.M)
UNIT_RE = re.compile(r"^([A-Za-z0-9@._:\\-]+\.(?:service|socket|mount|target|timer|path|device|swap|automount|scope|slice))\b")


def clean(text: str) -> str:
    """Strip colour codes and carriage returns so patterns see plain lines."""
    return ANSI_RE.sub("", text).replace("\r", "")


@dataclass
class ConsoleState:
    login: bool = False            # a getty printed "... login:"
    multi_user: bool = False       # systemd reached multi-user.target
    init: bool = False             # the init system (systemd) started: the kernel and initramfs are done
    panic: str | None = None       # kernel panic reason
    emergency: str | None = None   # emergency/rescue/initramfs shell line
    failed_units: list[str] = field(default_factory=list)

    @property
    def booted(self) -> bool:
        return self.login or self.multi_user

    @property
    def fatal(self) -> str | None:
        """Why the boot can never succeed, or None."""
        if self.panic is not None:
            return f"kernel panic: {self.panic}" if self.panic else "kernel panic"
        if self.emergency is not None:
            return f"dropped to an emergency shell ({self.emergency})"
        return None


def _unit_name(what: str) -> str:
    # systemd >= 253 prints "Failed to start foo.service - Description."; older ones only the description.
    m = UNIT_RE.match(what)
    return m.group(1) if m else what.rstrip(".")


def parse_console(text: str) -> ConsoleState:
    text = clean(text)
    state = ConsoleState()
    state.login = bool(LOGIN_RE.search(text))
    state.multi_user = bool(MULTI_USER_RE.search(text))
    state.init = bool(INIT_RE.search(text)) or state.booted
    if m := PANIC_RE.search(text):
        state.panic = m.group(1).strip()
    if m := EMERGENCY_RE.search(text):
        state.emergency = m.group(1).strip()
    elif m := INITRAMFS_SHELL_RE.search(text):
        state.emergency = "initramfs shell"
    for m in FAILED_RE.finditer(text):
        name = _unit_name(m.group(1))
        if name not in state.failed_units:
            state.failed_units.append(name)
    return state


def tail(text: str, lines: int = 15) -> str:
    """The last non-empty console lines, for a failure message."""
    kept = [ln for ln in clean(text).splitlines() if ln.strip()]
    return "\n".join(kept[-lines:])
