"""Where a build's files live: one directory per build under KILN_ARTIFACTS_DIR/<org>/<build>."""
from __future__ import annotations

from pathlib import Path

from flask import current_app

from app.services.errors import NotFound


def artifacts_root() -> Path:
    return Path(current_app.config["KILN_ARTIFACTS_DIR"])


def artifacts_dir(build) -> Path:
    return artifacts_root() / str(build.org_id) / str(build.id)


def build_dir(build) -> Path:
    """The build's directory, created (a worker writes the engine's artifacts into it)."""
    directory = artifacts_dir(build)
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def relative_path(path: Path) -> str:
    """A file's path as an artifact row stores it: relative to the artifacts root."""
    return str(Path(path).resolve().relative_to(artifacts_root().resolve()))


def artifact_file(artifact) -> Path:
    """The artifact's file, refusing a stored path that escapes the artifacts directory."""
    root = artifacts_root().resolve()
    path = (root / artifact.path).resolve()
    if root not in path.parents:
        raise NotFound.of("Artifact file", artifact.id)
    return path
