"""The test result document, shaped like GET /api/builds/{id}/tests (see shared/API.md)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

PASSED, FAILED, SKIPPED, ERROR = "passed", "failed", "skipped", "error"


@dataclass
class AssertionResult:
    type: str
    params: dict[str, Any]
    result: str  # passed | failed | skipped | error
    message: str = ""
    duration: float = 0.0

    @property
    def ok(self) -> bool:
        return self.result in (PASSED, SKIPPED)

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "params": dict(self.params), "result": self.result,
                "message": self.message, "duration": round(self.duration, 3)}


@dataclass
class TestCase:
    description: str
    assertions: list[AssertionResult] = field(default_factory=list)

    __test__ = False  # not a pytest class despite the name

    @property
    def status(self) -> str:
        results = [a.result for a in self.assertions]
        if any(r in (FAILED, ERROR) for r in results):
            return FAILED
        if results and all(r == SKIPPED for r in results):
            return SKIPPED
        return PASSED

    @property
    def duration(self) -> float:
        return sum(a.duration for a in self.assertions)

    def to_dict(self) -> dict[str, Any]:
        return {"description": self.description, "status": self.status, "duration": round(self.duration, 3),
                "assertions": [a.to_dict() for a in self.assertions]}


# How one boot attempt ended. The first two are retried once on a fresh VM: they can be the emulator's doing.
DIED_BEFORE_INIT = "died-before-init"   # kernel/initramfs panic or shell, or a guest reset, before the init system
QEMU_ERROR = "qemu-error"               # QEMU failed to start, crashed or was killed before the guest booted
BOOTED = "booted"                       # reached a login prompt / multi-user (units may still have failed)
FAILED_AFTER_INIT = "failed-after-init"  # the init system ran, then the boot failed: the image's
TIMED_OUT = "timed-out"
CANCELLED = "cancelled"
RETRIED_OUTCOMES = (DIED_BEFORE_INIT, QEMU_ERROR)


@dataclass
class BootAttempt:
    """One VM started for the boot checks; a retry after an emulator-looking failure adds a second."""
    attempt: int
    outcome: str             # one of the outcomes above
    reason: str = ""         # why it did not boot ("" when it did)
    seconds: float = 0.0     # from QEMU start to the login prompt, or to the failure
    console_log: str | None = None
    console_tail: str = ""   # the console's last lines: the log file may not outlive the run
    from_snapshot: bool = False  # resumed a snapshot of an earlier boot of the same image instead of booting

    def to_dict(self) -> dict[str, Any]:
        return {"attempt": self.attempt, "outcome": self.outcome, "reason": self.reason,
                "seconds": round(self.seconds, 1), "consoleLog": self.console_log, "console": self.console_tail,
                "fromSnapshot": self.from_snapshot}


@dataclass
class TestReport:
    tests: list[TestCase] = field(default_factory=list)
    console_log: str | None = None
    boot_seconds: float | None = None  # wall time from QEMU start to login prompt, when it booted
    boot_attempts: list[BootAttempt] = field(default_factory=list)

    __test__ = False

    @property
    def status(self) -> str:
        return FAILED if any(t.status == FAILED for t in self.tests) else PASSED

    @property
    def passed(self) -> bool:
        return self.status == PASSED

    def failures(self) -> list[tuple[str, AssertionResult]]:
        return [(t.description, a) for t in self.tests for a in t.assertions if a.result in (FAILED, ERROR)]

    @property
    def boot_retries(self) -> int:
        return max(0, len(self.boot_attempts) - 1)

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "tests": [t.to_dict() for t in self.tests], "consoleLog": self.console_log,
                "bootSeconds": None if self.boot_seconds is None else round(self.boot_seconds, 1),
                "bootAttempts": [a.to_dict() for a in self.boot_attempts], "bootRetries": self.boot_retries}
