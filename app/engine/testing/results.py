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


@dataclass
class TestReport:
    tests: list[TestCase] = field(default_factory=list)
    console_log: str | None = None
    boot_seconds: float | None = None  # wall time from QEMU start to login prompt, when it booted

    __test__ = False

    @property
    def status(self) -> str:
        return FAILED if any(t.status == FAILED for t in self.tests) else PASSED

    @property
    def passed(self) -> bool:
        return self.status == PASSED

    def failures(self) -> list[tuple[str, AssertionResult]]:
        return [(t.description, a) for t in self.tests for a in t.assertions if a.result in (FAILED, ERROR)]

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "tests": [t.to_dict() for t in self.tests], "consoleLog": self.console_log,
                "bootSeconds": None if self.boot_seconds is None else round(self.boot_seconds, 1)}
