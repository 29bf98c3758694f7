"""Fixtures shared by the isolation suites."""
from __future__ import annotations

import socket
import threading
from contextlib import contextmanager

import pytest


@contextmanager
def loopback_listener():
    """A TCP listener on the host's 127.0.0.1 that records every connection it receives: (port, received)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    server.settimeout(0.2)
    received: list[tuple] = []
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, addr = server.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            received.append(addr)
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1], received
    finally:
        stop.set()
        thread.join()
        server.close()


@pytest.fixture(scope="module")
def listener():
    with loopback_listener() as found:
        yield found


@pytest.fixture
def host_listener():
    with loopback_listener() as found:
        yield found
