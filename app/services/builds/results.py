"""The result cache across hosts: an identical recipe becomes an instant build on any worker sharing the store.

The engine's result cache lives in one worker's data dir. When a build's image is in a shared store, the worker
also writes a small index object per format, `results/<recipe hash>-<format>-r<engine result revision>.json`,
naming the image, manifest and SBOM keys of that build. Another worker that lacks the entry reads the index,
downloads the three files, checks the image's sha256 and puts them in its own engine cache, so the engine takes
its usual cache-hit path (the engine stays unaware of the store). An index whose files are gone (the build was
deleted) is a miss, and is removed.
"""
from __future__ import annotations

import hashlib
import json
import logging
import shutil
import uuid
from pathlib import Path

from app.engine.cache import RESULT_REVISION, ResultCache
from app.engine.pipeline import cache_key, normalize_formats
from app.engine.recipe import validate_recipe
from app.engine.settings import EngineSettings
from app.services.builds import files
from app.storage import ObjectMissing, StorageError

log = logging.getLogger("kiln.builds")
PREFIX = "results"


def index_key(recipe_hash_: str, fmt: str) -> str:
    return f"{PREFIX}/{recipe_hash_}-{fmt}-r{RESULT_REVISION}.json"


def _key_and_formats(build) -> tuple[str, list[str]] | None:
    try:
        recipe = validate_recipe(build.recipe)
        lock = build.package_lock["packages"] if build.package_lock else None
        return cache_key(recipe, lock), normalize_formats(recipe, build.formats)
    except Exception:  # noqa: BLE001 - an invalid recipe has no result; the engine reports why
        return None


def publish(build, artifacts) -> int:
    """After the build phase (its files already in the store): index this build's image of each format.
    Returns how many index objects were written (none with a store only this host sees)."""
    store = files.store()
    keyed = _key_and_formats(build)
    if not store.shared or keyed is None:
        return 0
    h, formats = keyed
    by_kind = {a.kind: a for a in artifacts}
    if "manifest" not in by_kind or "sbom" not in by_kind:
        return 0
    written = 0
    for fmt in formats:
        image = by_kind.get(fmt)
        if image is None:
            continue
        entry = {"recipeHash": h, "format": fmt, "filename": Path(image.path).name, "sha256": image.sha256,
                 "size": image.size, "key": files.relative_path(image.path),
                 "manifestKey": files.relative_path(by_kind["manifest"].path),
                 "sbomKey": files.relative_path(by_kind["sbom"].path), "buildId": str(build.id)}
        store.put_bytes(index_key(h, fmt), json.dumps(entry).encode())
        written += 1
    return written


def publish_files(build, artifacts, *, cached: bool) -> int:
    """Put the build's files into the store. A result the engine served from its cache is the image some build
    already stored: it is copied inside the store (no upload) when its index names it with the same sha256.
    Returns how many files were copied instead of uploaded."""
    store = files.store()
    keyed = _key_and_formats(build) if cached and store.shared else None
    copied: set[str] = set()
    if keyed is not None:
        h, formats = keyed
        for artifact in artifacts:
            if artifact.kind not in formats:
                continue
            try:
                entry = json.loads(store.get_bytes(index_key(h, artifact.kind)))
                if entry.get("sha256") == artifact.sha256:
                    store.copy(entry["key"], files.relative_path(artifact.path))
                    copied.add(str(artifact.path))
            except (ObjectMissing, ValueError, KeyError):
                continue  # uploaded below
    files.publish(a.path for a in artifacts if str(a.path) not in copied)
    return len(copied)


def materialize(build, settings: EngineSettings, scratch: Path) -> bool:
    """Put the shared result of the build's recipe into this worker's engine cache when the store has it and the
    engine cache does not. True when the engine will find every requested format cached."""
    store = files.store()
    keyed = _key_and_formats(build)
    if not store.shared or keyed is None:
        return False
    h, formats = keyed
    cache = ResultCache(settings)
    if all((cache.entry(h, fmt) / "meta.json").is_file() for fmt in formats):
        return True
    staging = scratch / f"shared-result-{uuid.uuid4().hex[:12]}"
    try:
        entries = {fmt: json.loads(store.get_bytes(index_key(h, fmt))) for fmt in formats}
        for fmt, entry in entries.items():
            folder = staging / fmt
            image = folder / entry["filename"]
            try:
                store.get_file(entry["key"], image)
                store.get_file(entry["manifestKey"], folder / "manifest.json")
                store.get_file(entry["sbomKey"], folder / "sbom.spdx.json")
            except ObjectMissing:
                log.warning("shared result %s of %s points at deleted files; removing it", fmt, h[:12])
                store.delete(index_key(h, fmt))
                return False
            if _sha256(image) != entry["sha256"]:
                log.warning("shared result %s of %s does not match its sha256; not using it", fmt, h[:12])
                return False
            cache.store(h, fmt, image, entry["sha256"], folder / "manifest.json", folder / "sbom.spdx.json")
        return True
    except ObjectMissing:
        return False
    except (StorageError, OSError, ValueError, KeyError) as err:
        log.warning("shared result of %s not used: %s", h[:12], err)
        return False
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1024 * 1024), b""):
            digest.update(chunk)
    return digest.hexdigest()
