"""Per-build state shared by the stages: events, cancel/deadline, cleanup, command runner."""
from __future__ import annotations

import errno
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from . import process
from .fsutil import CleanupStack
from .settings import EngineSettings


class BuildError(Exception):
    def __init__(self, stage: str, reason: str, user_error: bool = False):
        self.stage = stage
        self.reason = reason
        self.user_error = user_error
        super().__init__(f"[{stage}] {reason}")


class BuildCancelled(BuildError):
    def __init__(self, stage: str, reason: str = "build cancelled"):
        super().__init__(stage, reason, user_error=False)


class BuildTimeout(BuildError):
    def __init__(self, stage: str, reason: str = "build timed out"):
        super().__init__(stage, reason, user_error=False)


class DiskFull(BuildError):
    """A disk the build writes to (caches, work tree, artifacts) ran out of space: the host's problem, not the
    recipe's, and retrying onto the same full disk cannot help."""

    MARK = "No space left on device"

    def __init__(self, stage: str, doing: str):
        super().__init__(stage, f"the disk is full: {self.MARK} while {doing}. Free space on the worker's data "
                                f"and artifacts disks, then retry the build.")

    @classmethod
    def in_output(cls, lines: Sequence[str]) -> bool:
        return any(cls.MARK in line for line in lines)

    @staticmethod
    def is_cause(err: BaseException) -> bool:
        return isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT)


class BuildEvents:
    """Callbacks for a build; the defaults do nothing. The worker and the CLI subclass it."""

    def log(self, stage: str, level: str, message: str) -> None:
        pass

    def progress(self, stage: str, percent: int, message: str = "") -> None:
        pass

    def stage(self, stage: str, status: str) -> None:
        pass


@dataclass
class BuildContext:
    settings: EngineSettings
    events: BuildEvents
    cancel: threading.Event
    deadline: float | None
    work: Path
    stage: str = "resolve"
    cleanup: CleanupStack = field(default_factory=CleanupStack)

    def log(self, message: str, level: str = "info") -> None:
        self.events.log(self.stage, level, message)

    def check(self) -> None:
        """Raise if the build was cancelled or ran out of time (between steps)."""
        if self.cancel.is_set():
            raise BuildCancelled(self.stage)
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise BuildTimeout(self.stage)

    def run(self, argv: Sequence[str], *, user_error: bool = False, what: str | None = None,
            quiet: bool = False, **kw) -> tuple[int, list[str]]:
        """Run a command for this stage, mapping failures to BuildError with the output tail."""
        self.check()
        on_line = None if quiet else (lambda line: self.events.log(self.stage, "debug", line))
        try:
            return process.run(argv, on_line=on_line, cancel=self.cancel, deadline=self.deadline, **kw)
        except process.CommandCancelled:
            raise BuildCancelled(self.stage) from None
        except process.CommandTimedOut:
            raise BuildTimeout(self.stage) from None
        except process.CommandFailed as err:
            tail = "\n".join(err.tail[-15:])
            label = what or " ".join(argv[:3])
            if DiskFull.in_output(err.tail):
                raise DiskFull(self.stage, f"running {label}") from None
            raise BuildError(self.stage, f"{label} failed with exit code {err.returncode}\n{tail}",
                             user_error=user_error) from None
        except FileNotFoundError as err:
            raise BuildError(self.stage, f"required tool not found: {err.filename}") from None
