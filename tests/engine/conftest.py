"""Engine fixtures live in tests/fixtures/images.py (shared by every suite so each image is built once per run)."""
from tests.fixtures.images import SSH_RECIPE  # noqa: F401 - re-exported for the engine tests
