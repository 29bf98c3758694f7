"""Assertions answered by the running VM: through the guest agent, or from the host via forwarded ports."""
from __future__ import annotations

import re
import shlex
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Callable

from app.engine.testing.fschecks import CheckFailed, unit_name
from app.engine.testing.qga import AgentError, GuestAgent
from app.engine.testing.vm import VM

COMMAND_TIMEOUT = 120.0
HTTP_TIMEOUT = 20.0
PORT_TIMEOUT = 20.0
SERVICE_SETTLE = 60.0
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1", "[::1]")


class Guest:
    """What the guest-side checks need: the VM (ports) and its agent (None when it never answered)."""

    def __init__(self, vm: VM, agent: GuestAgent | None, agent_problem: str = "",
                 cancel: threading.Event | None = None):
        self.vm, self.agent, self.agent_problem, self.cancel = vm, agent, agent_problem, cancel

    def need_agent(self) -> GuestAgent:
        if self.agent is None:
            raise CheckFailed(f"cannot check inside the guest: {self.agent_problem or 'no guest agent'}")
        return self.agent

    def sh(self, script: str, timeout: float = COMMAND_TIMEOUT):
        try:
            return self.need_agent().shell(script, timeout=timeout, cancel=self.cancel)
        except AgentError as err:
            raise CheckFailed(f"guest agent error: {err}") from None


def _short(text: str, limit: int = 400) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."


def failed_units(guest: Guest) -> list[str]:
    res = guest.sh("systemctl list-units --failed --plain --no-legend --no-pager 2>/dev/null", timeout=30)
    return [line.split()[0] for line in res.stdout.splitlines() if line.strip() and not line.startswith("0 ")]


def unit_failure_details(guest: Guest, unit: str) -> str:
    """The last log lines of a failed unit, to say *why* in one line."""
    res = guest.sh(f"journalctl -b -u {shlex.quote(unit)} --no-pager -o cat -n 12 2>/dev/null || "
                   f"systemctl status --no-pager -n 12 {shlex.quote(unit)} 2>&1 | tail -n 12", timeout=30)
    lines = [ln.strip() for ln in res.stdout.splitlines() if ln.strip()]
    # systemd's own "Failed with result ..." lines say nothing new; the program's error lines do.
    errors = [ln for ln in lines if re.search(r"error|fail|cannot|could not|denied|not found|no such", ln, re.I)
              and not ln.startswith(("Failed to start", f"{unit}: Failed with result", f"{unit}: Main process exited"))]
    return _short(" | ".join(list(dict.fromkeys(errors))[:3] or lines[-3:]), 300)


def check_service_running(guest: Guest, params: dict[str, Any]) -> str:
    service = params["service"]
    unit = unit_name(service)
    q = shlex.quote(unit)
    deadline = time.monotonic() + SERVICE_SETTLE
    while True:
        res = guest.sh(f"systemctl is-active {q}; echo ---; systemctl status --no-pager --lines=5 {q} 2>&1")
        if res.timed_out:
            raise CheckFailed(f"systemctl did not answer for {service} within {COMMAND_TIMEOUT:.0f} s")
        active, _, status = res.stdout.partition("---")
        active = active.strip().splitlines()[-1] if active.strip() else "unknown"
        # A unit still starting (slow under TCG) gets a little while to settle.
        if active not in ("activating", "reloading", "deactivating") or time.monotonic() > deadline:
            break
        time.sleep(2)
    if active == "active":
        return f"service {service} is active (running)"
    if "could not be found" in status or "not-found" in status:
        raise CheckFailed(f"service {service} is not installed (unit {unit} could not be found)")
    detail = next((ln.split(":", 1)[1].strip() for ln in status.splitlines() if ln.strip().startswith("Active:")), active)
    # "inactive (dead)" / "failed (Result: exit-code) since ..." -> drop the timestamp tail
    detail = detail.split(" since ")[0]
    logs = [ln.strip() for ln in status.splitlines()[-3:] if ln.strip() and not ln.strip().startswith(("Active:", "Loaded:"))]
    extra = f"; last log: {_short(' | '.join(logs), 300)}" if active == "failed" and logs else ""
    raise CheckFailed(f"service {service} is {detail}{extra}")


def check_command_succeeds(guest: Guest, params: dict[str, Any]) -> str:
    command, wanted = params["command"], params.get("stdoutContains")
    res = guest.sh(command)
    if res.timed_out:
        raise CheckFailed(f"`{command}` did not finish within {COMMAND_TIMEOUT:.0f} s")
    if res.exitcode != 0:
        raise CheckFailed(f"`{command}` exited with status {res.exitcode}"
                          + (f": {_short(res.stderr or res.stdout)}" if (res.stderr or res.stdout).strip() else ""))
    if wanted is not None and wanted not in res.stdout:
        raise CheckFailed(f"`{command}` succeeded but its output does not contain {wanted!r} "
                          f"(output: {_short(res.stdout, 200)!r})")
    return f"`{command}` exited 0" + (f" and printed {wanted!r}" if wanted else "")


def _guest_connections(guest: Guest, port: int, protocol: str) -> tuple[bool, bool]:
    """(listening, established) for a local port, read from /proc/net inside the guest."""
    files = "/proc/net/tcp /proc/net/tcp6" if protocol == "tcp" else "/proc/net/udp /proc/net/udp6"
    res = guest.sh(f"cat {files} 2>/dev/null", timeout=30)
    listening = established = False
    for line in res.stdout.splitlines()[1:]:
        cols = line.split()
        if len(cols) < 4 or ":" not in cols[1]:
            continue
        try:
            local_port = int(cols[1].rsplit(":", 1)[1], 16)
        except ValueError:
            continue
        if local_port != port:
            continue
        state = cols[3]
        # tcp: 0A = LISTEN, 01 = ESTABLISHED; udp: 07 = bound/unconnected
        listening |= state == ("0A" if protocol == "tcp" else "07")
        established |= state == "01"
    return listening, established


def check_port_open(guest: Guest, params: dict[str, Any]) -> str:
    port, protocol = params["port"], params.get("protocol", "tcp")
    if protocol == "udp":
        # UDP has no handshake to observe from the host; a bound socket in the guest is the evidence.
        listening, _ = _guest_connections(guest, port, "udp")
        if not listening:
            raise CheckFailed(f"nothing in the guest listens on udp port {port}")
        return f"udp port {port} is bound in the guest"
    host_port = guest.vm.host_port(port, "tcp")
    if host_port is None:
        raise CheckFailed(f"tcp port {port} was not forwarded to the host (internal error: port list)")
    # The user-mode network accepts on the host side before the guest answers, so a connect()
    # alone proves nothing: the guest must show the connection, or the server must speak first.
    deadline = time.monotonic() + PORT_TIMEOUT
    last = ""
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", host_port), timeout=5) as conn:
                conn.settimeout(1.5)
                try:
                    banner = conn.recv(256)
                    if banner:
                        first = banner.split(b"\n", 1)[0].decode("utf-8", "replace").strip()
                        return f"tcp port {port} answers through host port {host_port} ({_short(first, 80)})"
                    last = "the guest closed the connection (port closed)"
                except socket.timeout:
                    if guest.agent is None:
                        last = "connection accepted by the forwarder but the guest never answered (no guest agent to confirm)"
                    else:
                        listening, established = _guest_connections(guest, port, "tcp")
                        if established:
                            return f"tcp port {port} accepts connections through host port {host_port}"
                        last = ("the guest listens but the connection did not arrive" if listening
                                else f"nothing in the guest listens on tcp port {port}")
        except OSError as err:
            last = f"cannot connect to forwarded host port {host_port}: {err}"
        time.sleep(1.0)
    raise CheckFailed(f"tcp port {port} is not reachable from the host: {last}")


def _http_from_host(url: str, host_port: int) -> tuple[int, str]:
    parts = urllib.parse.urlsplit(url)
    forwarded = parts._replace(netloc=f"127.0.0.1:{host_port}").geturl()
    req = urllib.request.Request(forwarded, headers={"Host": parts.netloc, "User-Agent": "kiln-image-test"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via an HTTP proxy
    try:
        with opener.open(req, timeout=HTTP_TIMEOUT) as resp:
            return resp.status, resp.read(1 << 20).decode("utf-8", "replace")
    except urllib.error.HTTPError as err:
        return err.code, err.read(1 << 20).decode("utf-8", "replace") if err.fp else ""


# Inside the guest, with whatever client exists there; prints the status line then the body.
_GUEST_HTTP = r"""
url=%(url)s
if command -v curl >/dev/null; then
  curl -sS -k -o /tmp/.kiln-body -w '%%{http_code}\n' --max-time 20 "$url" && cat /tmp/.kiln-body; rm -f /tmp/.kiln-body; exit
fi
if command -v python3 >/dev/null; then
  exec python3 - "$url" <<'PY'
import ssl, sys, urllib.error, urllib.request
ctx = ssl._create_unverified_context()
try:
    r = urllib.request.urlopen(sys.argv[1], timeout=20, context=ctx); code, body = r.status, r.read()
except urllib.error.HTTPError as e:
    code, body = e.code, e.read()
print(code); sys.stdout.write(body.decode("utf-8", "replace"))
PY
fi
if command -v wget >/dev/null; then
  out=$(wget -S -q -O /tmp/.kiln-body -T 20 "$url" 2>&1); code=$(printf '%%s\n' "$out" | awk '/HTTP\//{c=$2} END{print c}')
  echo "${code:-000}"; cat /tmp/.kiln-body 2>/dev/null; rm -f /tmp/.kiln-body; exit 0
fi
echo "no-client"
"""


def check_http_responds(guest: Guest, params: dict[str, Any]) -> str:
    url, want_status, contains = params["url"], params.get("status", 200), params.get("contains")
    parts = urllib.parse.urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    host_port = guest.vm.host_port(port, "tcp") if parts.hostname in LOCAL_HOSTS and parts.scheme == "http" else None
    deadline = time.monotonic() + HTTP_TIMEOUT
    while True:
        try:
            if host_port is not None:
                status, body = _http_from_host(url, host_port)
                where = f"from the host via port {host_port}"
            else:
                res = guest.sh(_GUEST_HTTP % {"url": shlex.quote(url)}, timeout=HTTP_TIMEOUT + 10)
                first, _, body = res.stdout.partition("\n")
                if first.strip() == "no-client":
                    raise CheckFailed(f"cannot request {url} inside the guest: no curl, python3 or wget in the image")
                if not first.strip().isdigit() or first.strip() == "000":
                    raise OSError(_short(res.stderr or res.stdout or "no response", 200))
                status, where = int(first.strip()), "inside the guest"
            break
        except (OSError, urllib.error.URLError) as err:
            if time.monotonic() > deadline:
                raise CheckFailed(f"{url} did not respond: {getattr(err, 'reason', err)}") from None
            time.sleep(1.0)
    if status != want_status:
        raise CheckFailed(f"{url} answered {status}, expected {want_status} ({where})")
    if contains is not None and contains not in body:
        raise CheckFailed(f"{url} answered {status} but the body does not contain {contains!r} "
                          f"(starts with: {_short(body, 120)!r})")
    return f"{url} answered {status}" + (f" containing {contains!r}" if contains else "") + f" ({where})"


GUEST_CHECKS: dict[str, Callable[[Guest, dict[str, Any]], str]] = {
    "service_running": check_service_running,
    "command_succeeds": check_command_succeeds,
    "port_open": check_port_open,
    "http_responds": check_http_responds,
}
