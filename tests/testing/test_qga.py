"""The guest-agent client against a real qemu-ga (run on the host, listening on a unix socket)."""
import os
import shutil
import socket
import subprocess
import time

import pytest

from app.engine.testing.qga import AgentError, GuestAgent

pytestmark = pytest.mark.skipif(shutil.which("qemu-ga") is None and not os.path.exists("/usr/sbin/qemu-ga"),
                                reason="qemu-ga (package qemu-guest-agent) is not installed")


def _accepts(path) -> bool:
    if not path.exists():
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


@pytest.fixture
def agent_socket(tmp_path):
    sock, state = tmp_path / "qga.sock", tmp_path / "state"
    state.mkdir()
    binary = shutil.which("qemu-ga") or "/usr/sbin/qemu-ga"
    proc = subprocess.Popen([binary, "-m", "unix-listen", "-p", str(sock), "-t", str(state)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        # qemu-ga binds (the socket file appears) before it listens: on a busy machine a connect in
        # between is refused, so the agent is ready only once a connection is accepted.
        deadline = time.monotonic() + 10
        while not _accepts(sock):
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "qemu-ga did not listen on its socket"
            time.sleep(0.05)
        yield sock
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_exec_returns_exit_code_and_output(agent_socket):
    with GuestAgent(agent_socket) as agent:
        agent.wait_ready(10)
        res = agent.shell("echo out; echo err >&2; exit 3")
        assert (res.exitcode, res.stdout, res.stderr, res.timed_out) == (3, "out\n", "err\n", False)
        assert agent.exec(["/bin/echo", "a b", "c"]).stdout == "a b c\n"
        assert agent.exec(["/bin/cat"], input_data=b"fed through stdin").stdout == "fed through stdin"


def test_missing_program_is_an_agent_error(agent_socket):
    with GuestAgent(agent_socket) as agent:
        with pytest.raises(AgentError, match="guest-exec: .*no-such-program"):
            agent.exec(["/no-such-program"])
        # the connection stays usable after an error reply
        assert agent.shell("true").exitcode == 0


def test_timeout_kills_the_command(agent_socket, tmp_path):
    marker = tmp_path / "finished"
    with GuestAgent(agent_socket) as agent:
        started = time.monotonic()
        res = agent.shell(f"sleep 2; touch {marker}", timeout=0.5)
        assert res.timed_out and res.exitcode is None
        assert time.monotonic() - started < 2
        time.sleep(2.5)
        assert not marker.exists(), "the timed-out command was killed, not left running"


def test_reconnect_after_close(agent_socket):
    agent = GuestAgent(agent_socket)
    agent.sync()
    agent.close()
    assert agent.shell("echo again").stdout == "again\n"
    agent.close()


def test_wait_ready_gives_up_with_a_reason(tmp_path):
    agent = GuestAgent(tmp_path / "nobody-listens.sock")
    started = time.monotonic()
    with pytest.raises(AgentError, match="did not answer within 2 s .*cannot connect"):
        agent.wait_ready(2)
    assert time.monotonic() - started < 5
