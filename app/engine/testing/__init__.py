"""Image tests: boot an image in QEMU and check what the recipe promised (no Flask, RQ or database).

    report = run_image_tests(Path("out/image.iso"), "iso", recipe, work_dir=Path("/tmp/t"))
    report.to_dict()  # shaped like GET /api/builds/{id}/tests
"""
from app.engine.testing.assertions import parse_assertion, validate_assertion
from app.engine.testing.imagefs import ImageReadError, ImageTree, open_image
from app.engine.testing.results import AssertionResult, TestCase, TestReport
from app.engine.testing.runner import boot_and_check, default_tests, run_filesystem_checks, run_image_tests
from app.engine.testing.vm import VMError

__all__ = [
    "run_image_tests", "run_filesystem_checks", "boot_and_check", "default_tests", "parse_assertion",
    "validate_assertion", "open_image", "ImageTree", "ImageReadError", "TestReport", "TestCase",
    "AssertionResult", "VMError",
]
