"""A small qemu-guest-agent client (JSON over the virtio-serial unix socket).

The agent has no session framing: after (re)connecting, stale replies from an earlier client
may still be queued, so every conversation starts with guest-sync and a random id and
discards lines until that id comes back.
"""
from __future__ import annotations

import base64
import json
import random
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path


class AgentError(Exception):
    """The agent did not answer, or answered with an error."""


@dataclass
class ExecResult:
    exitcode: int | None
    stdout: str
    stderr: str
    timed_out: bool = False


class GuestAgent:
    def __init__(self, socket_path: Path | str, *, timeout: float = 10.0):
        self.socket_path = str(socket_path)
        self.timeout = timeout
        self._sock: socket.socket | None = None
        self._buf = b""
        self._lock = threading.Lock()

    # -- connection ---------------------------------------------------------------------------
    def close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
        self._sock, self._buf = None, b""

    def __enter__(self) -> "GuestAgent":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _connect(self) -> None:
        self.close()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.socket_path)
        except OSError as err:
            sock.close()
            raise AgentError(f"cannot connect to the guest agent socket {self.socket_path}: {err}") from None
        self._sock = sock

    def _send(self, payload: dict) -> None:
        assert self._sock is not None
        try:
            self._sock.sendall(json.dumps(payload).encode() + b"\n")
        except OSError as err:
            self.close()
            raise AgentError(f"guest agent connection lost: {err}") from None

    def _readline(self, deadline: float) -> dict:
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or self._sock is None:
                raise AgentError("the guest agent did not answer in time")
            self._sock.settimeout(left)
            try:
                chunk = self._sock.recv(65536)
            except socket.timeout:
                raise AgentError("the guest agent did not answer in time") from None
            except OSError as err:
                self.close()
                raise AgentError(f"guest agent connection lost: {err}") from None
            if not chunk:
                self.close()
                raise AgentError("the guest agent closed the connection")
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        # A guest-sync-delimited reply may be preceded by 0xFF; stray bytes are not JSON.
        line = line.lstrip(b"\xff").strip()
        if not line:
            return {}
        try:
            return json.loads(line)
        except json.JSONDecodeError:
            return {}

    def sync(self, timeout: float | None = None) -> None:
        """(Re)connect and flush stale replies; raises AgentError if the agent does not answer."""
        deadline = time.monotonic() + (timeout or self.timeout)
        with self._lock:
            if self._sock is None:
                self._connect()
            token = random.randint(1, 2**31 - 1)
            self._send({"execute": "guest-sync", "arguments": {"id": token}})
            while True:
                reply = self._readline(deadline)
                if reply.get("return") == token:
                    return

    def wait_ready(self, timeout: float, cancel: threading.Event | None = None, probe: float = 3.0) -> None:
        """Poll until the agent answers guest-sync (it starts late in boot)."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if cancel is not None and cancel.is_set():
                raise AgentError("cancelled while waiting for the guest agent")
            try:
                self.sync(timeout=min(probe, max(0.5, deadline - time.monotonic())))
                return
            except AgentError as err:
                last = str(err)
                self.close()  # a fresh connection next time drops half-read garbage
                time.sleep(0.5)
        raise AgentError(f"the guest agent did not answer within {timeout:.0f} s ({last})")

    def command(self, name: str, arguments: dict | None = None, timeout: float | None = None):
        deadline = time.monotonic() + (timeout or self.timeout)
        if self._sock is None:
            self.sync(timeout=timeout)
        with self._lock:
            payload = {"execute": name}
            if arguments is not None:
                payload["arguments"] = arguments
            self._send(payload)
            while True:
                reply = self._readline(deadline)
                if "error" in reply:
                    err = reply["error"]
                    raise AgentError(f"{name}: {err.get('desc') or err.get('class') or err}")
                if "return" in reply:
                    return reply["return"]

    # -- guest-exec -----------------------------------------------------------------------------
    def exec(self, argv: list[str], *, timeout: float = 60.0, input_data: bytes | None = None,
             cancel: threading.Event | None = None) -> ExecResult:
        """Run argv in the guest and wait for it; output is captured (the agent caps it at ~16 MiB)."""
        args: dict = {"path": argv[0], "arg": list(argv[1:]), "capture-output": True}
        if input_data is not None:
            args["input-data"] = base64.b64encode(input_data).decode()
        pid = self.command("guest-exec", args)["pid"]
        deadline = time.monotonic() + timeout
        delay = 0.1
        while True:
            status = self.command("guest-exec-status", {"pid": pid})
            if status.get("exited"):
                return ExecResult(
                    exitcode=status.get("exitcode", status.get("signal") and -int(status["signal"])),
                    stdout=base64.b64decode(status.get("out-data", "")).decode("utf-8", "replace"),
                    stderr=base64.b64decode(status.get("err-data", "")).decode("utf-8", "replace"),
                )
            if time.monotonic() > deadline or (cancel is not None and cancel.is_set()):
                # The agent has no kill for guest-exec; end it from inside so it does not linger.
                try:
                    self.command("guest-exec", {"path": "/bin/kill", "arg": ["-KILL", str(pid)]})
                except AgentError:
                    pass
                return ExecResult(None, "", "", timed_out=True)
            time.sleep(delay)
            delay = min(delay * 1.5, 1.0)

    def shell(self, script: str, *, timeout: float = 60.0, cancel: threading.Event | None = None) -> ExecResult:
        return self.exec(["/bin/sh", "-c", script], timeout=timeout, cancel=cancel)
