"""RQ forks a work horse per job while the worker's reaper thread may be writing a log line (with a shared store,
fetching the archived log can take seconds): the child must not inherit the held lock."""
from __future__ import annotations

import os
import threading

from app.services.builds import logs


def test_forked_child_gets_fresh_log_locks():
    held, release = threading.Event(), threading.Event()

    def writer():
        with logs._append_lock, logs._fetch_lock:
            held.set()
            release.wait(10)

    thread = threading.Thread(target=writer)
    thread.start()
    held.wait(5)
    pid = os.fork()
    if pid == 0:  # the child: both locks must be free at once
        ok = logs._append_lock.acquire(timeout=2) and logs._fetch_lock.acquire(timeout=2)
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    release.set()
    thread.join(5)
    assert os.waitstatus_to_exitcode(status) == 0
