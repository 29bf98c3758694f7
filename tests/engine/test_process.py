import os
import threading
import time

import pytest

from app.engine.process import CommandCancelled, CommandFailed, CommandTimedOut, run

# A shell whose children ignore SIGTERM and spawn grandchildren: only a group SIGKILL stops them all.
STUBBORN = "trap '' TERM; (trap '' TERM; sleep 300 & sleep 300; wait) & (sleep 300 & wait) & echo started; wait"


def group_members(pgid: int) -> list[int]:
    members = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            stat = open(f"/proc/{pid}/stat").read()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(pid))
    return members


def test_output_is_streamed_line_by_line():
    seen = []
    code, lines = run(["sh", "-c", "echo one; echo two >&2; echo three"], on_line=seen.append, capture=True)
    assert code == 0 and seen == ["one", "two", "three"] and lines == seen


def test_failure_carries_exit_code_and_tail():
    with pytest.raises(CommandFailed) as info:
        run(["sh", "-c", "echo why it failed; exit 7"])
    assert info.value.returncode == 7 and info.value.tail == ["why it failed"]


def test_cancel_kills_the_whole_process_group():
    cancel = threading.Event()
    pgids = []

    def on_line(line):
        if line.startswith("started"):
            # run() starts the shell in a new session, so its pid is the group id.
            pgids.append(int(line.split()[1]))
            threading.Timer(0.5, cancel.set).start()

    started = time.monotonic()
    with pytest.raises(CommandCancelled):
        run(["sh", "-c", STUBBORN.replace("echo started", "echo started $$")], on_line=on_line, cancel=cancel)
    assert time.monotonic() - started < 10
    assert pgids and group_members(pgids[0]) == []


def test_timeout_kills_the_group_too():
    started = time.monotonic()
    with pytest.raises(CommandTimedOut):
        run(["sh", "-c", STUBBORN], deadline=time.monotonic() + 1)
    assert time.monotonic() - started < 10


def test_already_cancelled_never_starts():
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(CommandCancelled):
        run(["sh", "-c", "touch /tmp/kiln-should-not-exist"], cancel=cancel)
    assert not os.path.exists("/tmp/kiln-should-not-exist")


def test_a_command_that_fills_the_disk_is_a_disk_full_build_error(tmp_path):
    """A command failing on ENOSPC says the disk is full (the worker fails the build as disk_full, not retried)."""
    from app.engine.context import BuildContext, BuildError, BuildEvents, DiskFull
    from app.engine.settings import EngineSettings

    ctx = BuildContext(settings=EngineSettings(data_dir=tmp_path), events=BuildEvents(), cancel=threading.Event(),
                       deadline=None, work=tmp_path, stage="package")
    with pytest.raises(DiskFull) as info:
        ctx.run(["sh", "-c", "echo 'tar: ./usr/lib/x: Cannot write: No space left on device' >&2; exit 2"],
                what="tar")
    assert info.value.stage == "package"
    assert info.value.reason.startswith("the disk is full: No space left on device while running tar")
    with pytest.raises(BuildError) as other:
        ctx.run(["sh", "-c", "echo 'tar: ./x: Cannot open: Permission denied' >&2; exit 2"], what="tar")
    assert not isinstance(other.value, DiskFull)
    assert DiskFull.is_cause(OSError(28, "No space left on device")) and not DiskFull.is_cause(OSError(13, "x"))
