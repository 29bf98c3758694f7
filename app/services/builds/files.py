"""Where a build's files live.

A worker makes them in its local build directory, KILN_ARTIFACTS_DIR/<org>/<build>, and publishes them to the
artifact store under the same relative key (`<org>/<build>/<file>`, what an artifact row's `path` holds). With
the local store (the default) that directory is the store and publishing is nothing; with a shared store (S3)
the files are uploaded, every host reads them from the store, and a worker drops its local copy once the build
is finished.
"""
from __future__ import annotations

import logging
import shutil
from pathlib import Path

from flask import current_app

from app.services.errors import NotFound
from app.storage import ObjectMissing, Storage, StorageError

log = logging.getLogger("kiln.builds")


def store() -> Storage:
    return current_app.extensions["kiln.storage"]


def artifacts_root() -> Path:
    return Path(current_app.config["KILN_ARTIFACTS_DIR"])


def artifacts_dir(build) -> Path:
    return artifacts_root() / str(build.org_id) / str(build.id)


def build_prefix(org_id, build_id) -> str:
    """The store's folder of one build."""
    return f"{org_id}/{build_id}/"


def build_dir(build) -> Path:
    """The build's directory, created (a worker writes the engine's artifacts into it)."""
    directory = artifacts_dir(build)
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def relative_path(path: Path) -> str:
    """A file's path as an artifact row stores it: relative to the artifacts root (also its key in the store)."""
    return str(Path(path).resolve().relative_to(artifacts_root().resolve()))


def artifact_file(artifact) -> Path:
    """The artifact's file on this host, refusing a stored path that escapes the artifacts directory."""
    root = artifacts_root().resolve()
    path = (root / artifact.path).resolve()
    if root not in path.parents:
        raise NotFound.of("Artifact file", artifact.id)
    return path


def publish(paths) -> None:
    """Put files of the local build directories into the store under their relative keys (StorageError when the
    store refuses). With the local store they are there already."""
    target = store()
    for path in paths:
        target.put_file(relative_path(path), Path(path))


def fetch_artifact(artifact) -> Path:
    """The artifact as a local file, downloaded from the store when this host does not have it (a custom test
    run on a worker that did not build the image)."""
    path = artifact_file(artifact)
    if not path.is_file():
        try:
            store().get_file(artifact.path, path)
        except ObjectMissing:
            raise NotFound(f"The file of artifact '{artifact.filename}' is gone from {store().describe()}") from None
    return path


def release_local(build) -> None:
    """Drop this host's copy of a finished build's files once the shared store holds them."""
    if store().shared and build.is_terminal:
        shutil.rmtree(artifacts_dir(build), ignore_errors=True)


def remove_artifact_file(key: str) -> None:
    """Delete one artifact's file (its stored relative path) in the store and on this host: for retention, which
    keeps the build's other files. StorageError when the store could not."""
    root = artifacts_root().resolve()
    path = (root / key).resolve()
    if root in path.parents:
        path.unlink(missing_ok=True)
    store().delete(key)


def remove_build_files(org_id, build_id) -> int:
    """Delete every file of a build, in the store and on this host: for a deleted build and for retention.
    Returns how many objects the store removed; StorageError when it could not."""
    shutil.rmtree(artifacts_root() / str(org_id) / str(build_id), ignore_errors=True)
    return store().delete_prefix(build_prefix(org_id, build_id))


__all__ = ["ObjectMissing", "StorageError", "artifact_file", "artifacts_dir", "artifacts_root", "build_dir",
           "build_prefix", "fetch_artifact", "publish", "relative_path", "release_local", "remove_artifact_file",
           "remove_build_files",
           "store"]
