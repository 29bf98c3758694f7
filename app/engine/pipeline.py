"""The build pipeline: resolve -> bootstrap -> configure -> package -> evidence.

Each stage is one function of (BuildContext, Job) named in `STAGES`, which drives the run (as mkosi's
list of steps does). `build()` is the one entry point the worker, the CLI and the tests call; a fresh
build and a result-cache hit end in the same evidence writer (`publish_evidence`).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from . import base as base_layer
from .cache import ResultCache, evict, link_or_copy
from .configure import (configure as configure_tree, finish_tree, install_packages, prepare_tree, snapshot_url,
                        support_packages)
from .context import BuildCancelled, BuildContext, BuildError, BuildEvents, BuildTimeout, DiskFull
from .evidence import installed_packages, make_sbom, now_iso, sha256_file, write_checksums, write_json
from .formats import BUILDERS, artifact_name, kernel_files
from .fsutil import remove_tree
from .packages import IndexUnavailable, get_index
from .recipe import BOOTABLE_FORMATS, FORMATS, RecipeError, recipe_hash, validate_recipe
from .reproducible import epoch_iso, normalize_tree, source_date_epoch
from .result import Artifact, BuildResult
from .sandbox import Sandbox
from .settings import EngineSettings
from .userns import build_in_user_namespace, mode_description

__all__ = ["STAGES", "Stage", "BuildEvents", "Artifact", "BuildResult", "BuildError", "BuildCancelled",
           "BuildTimeout", "DiskFull", "build", "stage_names"]


@dataclass
class Job:
    """What the stages hand each other for one fresh build."""
    recipe: dict
    key: str                      # result-cache key: the recipe hash, and the package lock when there is one
    formats: list[str]
    out_dir: Path
    inspect: Callable[[Path], None] | None
    package_lock: dict[str, str] | None
    snapshot: str | None = None   # archive snapshot URL a locked build also installs from
    bootable: bool = False
    support: dict[str, str] = field(default_factory=dict)
    extras: list[str] = field(default_factory=list)
    root: Path | None = None
    sandbox: Sandbox | None = None
    packages: list[dict] = field(default_factory=list)
    epoch: int = 0
    normalized: list[str] = field(default_factory=list)
    artifacts: list[Artifact] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    result: BuildResult | None = None


def resolve(ctx: BuildContext, job: Job) -> None:
    recipe = job.recipe
    job.bootable = any(f in BOOTABLE_FORMATS for f in job.formats)
    job.support = support_packages(recipe)
    job.extras = list(dict.fromkeys(recipe["packages"] + list(job.support)))
    ctx.log(f"checking {len(job.extras)} package(s) against Debian {recipe['release']} (amd64)")
    try:
        index = get_index(recipe["release"], ctx.settings)
        missing = index.missing(job.extras)
    except IndexUnavailable as err:
        raise BuildError("resolve", str(err)) from None
    if missing:
        parts = []
        for name, suggestions in missing.items():
            hint = f" (did you mean: {', '.join(suggestions)}?)" if suggestions else ""
            parts.append(f"{name}{hint}")
        raise BuildError("resolve", f"unknown package(s) in Debian {recipe['release']}: " + "; ".join(parts),
                         user_error=True)
    for name in recipe["packages"]:
        ctx.log(f"{name}: {index.version(name) or 'virtual package, provided by ' + ', '.join(index.providers(name)[:3])}")
    if job.package_lock:
        ctx.log(f"package lock: {len(job.package_lock)} exact version(s) from an earlier build")


def bootstrap(ctx: BuildContext, job: Job) -> None:
    root = job.root = ctx.work / "root"
    ctx.log(mode_description())
    sandbox = job.sandbox = Sandbox(ctx, root)  # before the base layer: a host that cannot sandbox fails at once
    ctx.log(sandbox.describe())
    base_root = base_layer.ensure_base(ctx, job.recipe["release"], job.bootable)
    ctx.events.progress("bootstrap", 40, "base layer ready")
    for sub in ("upper", "ovl", "root"):
        (ctx.work / sub).mkdir()
    # nodev: a device node that ends up in the tree can never be opened through it.
    ctx.run(["mount", "-t", "overlay", "overlay", "-o",
             f"nodev,lowerdir={base_root},upperdir={ctx.work / 'upper'},workdir={ctx.work / 'ovl'}",
             str(root)], what="mounting the overlay on the base layer")
    prepare_tree(ctx, root)
    install_packages(ctx, sandbox, job.extras, lock=job.package_lock, release=job.recipe["release"],
                     snapshot=job.snapshot)


def configure(ctx: BuildContext, job: Job) -> None:
    root = job.root
    # The package set is final once the packages are in: it fixes the date every step below may record.
    job.packages = installed_packages(root)
    job.epoch = source_date_epoch(root, job.packages)
    ctx.log(f"SOURCE_DATE_EPOCH={job.epoch} ({epoch_iso(job.epoch)}), from the installed package set")
    job.sandbox.env["SOURCE_DATE_EPOCH"] = str(job.epoch)
    try:
        configure_tree(ctx, job.sandbox, job.recipe)
    finally:
        finish_tree(root)
    job.packages = installed_packages(root)  # a recipe command may have changed it
    job.normalized = normalize_tree(root, job.epoch)
    for change in job.normalized:
        ctx.log(f"reproducible: {change}", "debug")
    if job.inspect is not None:
        ctx.log("running filesystem checks on the configured tree")
        try:
            job.inspect(root)
        except BuildError:
            raise
        except Exception as err:
            raise BuildError("configure", f"inspecting the configured tree failed: {err}") from err


def package(ctx: BuildContext, job: Job) -> None:
    step = 25 // len(job.formats)
    for i, fmt in enumerate(job.formats):
        ctx.events.progress("package", STAGE_START["package"] + i * step, f"making {fmt}")
        target = job.out_dir / artifact_name(job.recipe, fmt)
        target.unlink(missing_ok=True)
        started = time.monotonic()
        BUILDERS[fmt](ctx, job.root, job.recipe, target, job.epoch)
        ctx.log(f"{fmt}: {target.name} ({target.stat().st_size / 1024**2:.1f} MiB) in {time.monotonic() - started:.1f} s")
        job.artifacts.append(Artifact(fmt, target, target.stat().st_size, ""))


def evidence(ctx: BuildContext, job: Job) -> None:
    recipe = job.recipe
    for a in job.artifacts:
        a.sha256 = sha256_file(a.path)
    built_at = now_iso()
    added = base_layer.base_packages(job.bootable) | job.support
    manifest = {
        "name": recipe["name"],
        "recipe": recipe,
        "recipeHash": recipe_hash(recipe),
        "release": recipe["release"],
        "architecture": recipe["architecture"],
        "formats": job.formats,
        "kernelVersion": kernel_files(job.root)[0] if job.bootable else None,
        "packages": [{k: p[k] for k in ("name", "version", "architecture")} for p in job.packages],
        "addedByKiln": [{"name": n, "reason": r} for n, r in added.items()],
        "artifacts": [],
        "stageTimings": dict(job.timings),
        "mirror": ctx.settings.mirror,
        "builtAt": built_at,
        "reproducibility": reproducibility(job),
    }
    sbom = make_sbom(recipe, job.packages, built_at, manifest["recipeHash"])
    job.result = publish_evidence(job.out_dir, job.artifacts, manifest, sbom, cached=False, timings=job.timings)
    cache = ResultCache(ctx.settings)
    for a in job.artifacts:
        cache.store(job.key, a.kind, a.path, a.sha256, job.out_dir / "manifest.json", job.out_dir / "sbom.spdx.json")
    evict(ctx.settings, keep={cache.entry(job.key, f) for f in job.formats})


def reproducibility(job: Job) -> dict:
    """How to make these artifacts again, byte for byte (the manifest's `reproducibility`)."""
    return {
        "reproducible": True,
        "sourceDateEpoch": job.epoch,
        "sourceDate": epoch_iso(job.epoch),
        "epochFrom": "newest mtime of the installed packages' /usr/share/doc/<package>/copyright",
        "packageLock": {p["name"]: p["version"] for p in job.packages},
        "lockedFrom": bool(job.package_lock),
        "snapshot": job.snapshot,
        "normalized": job.normalized,
    }


@dataclass(frozen=True)
class Stage:
    name: str
    label: str
    start: int  # progress percent when the stage starts
    run: Callable[[BuildContext, Job], None]


STAGES: list[Stage] = [
    Stage("resolve", "Package Resolver", 0, resolve),
    Stage("bootstrap", "Bootstrapper", 5, bootstrap),
    Stage("configure", "Config Agent", 55, configure),
    Stage("package", "Image Packager", 70, package),
    Stage("evidence", "Evidence Collector", 95, evidence),
]
STAGE_START = {s.name: s.start for s in STAGES}


def stage_names() -> list[tuple[str, str]]:
    """(name, label) of every stage, in order (for pages, the CLI and the plan)."""
    return [(s.name, s.label) for s in STAGES]


def normalize_formats(recipe: dict, formats: list[str] | str | None) -> list[str]:
    if isinstance(formats, str):
        formats = [f for f in formats.split(",")]
    formats = [f.strip() for f in (formats or [recipe["format"]]) if f.strip()]
    bad = [f for f in formats if f not in FORMATS]
    if bad:
        raise BuildError("resolve", f"unknown format(s): {', '.join(bad)}; choose from {', '.join(FORMATS)}",
                         user_error=True)
    return list(dict.fromkeys(formats)) or [recipe["format"]]


def cache_key(recipe: dict, package_lock: dict[str, str] | None) -> str:
    """The result cache's key: a locked build is another image than the same recipe unlocked."""
    h = recipe_hash(recipe)
    if not package_lock:
        return h
    lock = json.dumps(sorted(package_lock.items()), separators=(",", ":"))
    return hashlib.sha256(f"{h}\n{lock}".encode()).hexdigest()


@contextlib.contextmanager
def _stage(ctx: BuildContext, stage: Stage, timings: dict[str, float]) -> Iterator[None]:
    ctx.check()
    ctx.stage = stage.name
    ctx.events.stage(stage.name, "running")
    ctx.events.progress(stage.name, stage.start, stage.label)
    started = time.monotonic()
    try:
        yield
    except BaseException:
        timings[stage.name] = round(time.monotonic() - started, 2)
        ctx.events.stage(stage.name, "failed")
        raise
    timings[stage.name] = round(time.monotonic() - started, 2)
    ctx.events.stage(stage.name, "succeeded")


def build(recipe: dict, out_dir: Path, formats: list[str] | None = None, *,
          events: BuildEvents | None = None, cancel: threading.Event | None = None,
          timeout: float | None = None, settings: EngineSettings,
          inspect: Callable[[Path], None] | None = None,
          package_lock: dict[str, str] | None = None, locked_at: str | None = None) -> BuildResult:
    """`package_lock` ({name: version}, e.g. an earlier manifest's reproducibility.packageLock) installs exactly
    those versions, so the build makes that earlier build's image again. `locked_at` (that build's builtAt)
    picks the archive snapshot to install from when settings.snapshot_mirror is set."""
    events = events or BuildEvents()
    cancel = cancel or threading.Event()
    deadline = time.monotonic() + timeout if timeout else None
    out_dir = Path(out_dir)
    try:
        recipe = validate_recipe(recipe)
    except RecipeError as err:
        events.stage("resolve", "failed")
        raise BuildError("resolve", f"invalid recipe: {err}", user_error=True) from None
    try:
        formats = normalize_formats(recipe, formats)
    except BuildError:
        events.stage("resolve", "failed")
        raise
    out_dir.mkdir(parents=True, exist_ok=True)
    key = cache_key(recipe, package_lock)
    snapshot = None
    if package_lock and settings.snapshot_mirror and locked_at:
        try:
            snapshot = snapshot_url(settings.snapshot_mirror, locked_at)
        except ValueError as err:
            raise BuildError("resolve", f"locked_at: {err}", user_error=True) from None

    hit = ResultCache(settings).lookup(key, formats)
    if hit:
        return _from_cache(key, formats, hit, out_dir, events)

    if os.geteuid() != 0:
        # Not root: the same pipeline runs as root of a user namespace, or a BuildError says why not.
        return build_in_user_namespace(recipe, out_dir, formats, events=events, cancel=cancel, deadline=deadline,
                                       settings=settings, inspect=inspect, package_lock=package_lock,
                                       locked_at=locked_at)
    settings.tmp_dir.mkdir(parents=True, exist_ok=True)
    work = settings.tmp_dir / f"build-{key[:12]}-{uuid.uuid4().hex[:8]}"
    work.mkdir()
    ctx = BuildContext(settings=settings, events=events, cancel=cancel, deadline=deadline, work=work)
    ctx.cleanup.push("work tree", lambda: remove_tree(work))
    job = Job(recipe=recipe, key=key, formats=formats, out_dir=out_dir, inspect=inspect, package_lock=package_lock,
              snapshot=snapshot)
    try:
        for stage in STAGES:
            with _stage(ctx, stage, job.timings):
                stage.run(ctx, job)
        ctx.events.progress("evidence", 100, "done")
        return job.result
    except BuildError:
        raise
    except Exception as err:  # an engine bug: still a clean failure of the current stage
        if DiskFull.is_cause(err):
            raise DiskFull(ctx.stage, f"writing {err.filename or 'a file'}") from err
        ctx.log(f"internal error: {err!r}", "error")
        raise BuildError(ctx.stage, f"internal error: {err}") from err
    finally:
        for problem in ctx.cleanup.close():
            events.log(ctx.stage, "warning", f"cleanup: {problem}")


def publish_evidence(out_dir: Path, artifacts: list[Artifact], manifest: dict, sbom: dict, *, cached: bool,
                     timings: dict[str, float]) -> BuildResult:
    """The one evidence writer: manifest.json, sbom.spdx.json and SHA256SUMS next to the artifacts."""
    manifest["artifacts"] = [a.to_dict() for a in artifacts]
    if cached:
        manifest["cachedResult"] = True
    manifest_path = out_dir / "manifest.json"
    sbom_path = out_dir / "sbom.spdx.json"
    write_json(manifest_path, manifest)
    write_json(sbom_path, sbom)
    extra = [Artifact(kind, p, p.stat().st_size, sha256_file(p))
             for kind, p in (("manifest", manifest_path), ("sbom", sbom_path))]
    sums = write_checksums(out_dir, [(a.path, a.sha256) for a in artifacts + extra])
    extra.append(Artifact("checksums", sums, sums.stat().st_size, sha256_file(sums)))
    return BuildResult(artifacts + extra, manifest, cached=cached, stage_timings=timings)


def _from_cache(key: str, formats: list[str], hit: dict[str, dict], out_dir: Path,
                events: BuildEvents) -> BuildResult:
    started = time.monotonic()
    artifacts = []
    for fmt in formats:
        meta = hit[fmt]
        target = out_dir / meta["filename"]
        link_or_copy(meta["dir"] / meta["filename"], target)
        artifacts.append(Artifact(fmt, target, meta["size"], meta["sha256"]))
    first = hit[formats[0]]["dir"]
    manifest = json.loads((first / "manifest.json").read_text())
    manifest["formats"] = formats
    sbom = json.loads((first / "sbom.spdx.json").read_text())
    result = publish_evidence(out_dir, artifacts, manifest, sbom, cached=True, timings={})
    for stage in STAGES:
        events.stage(stage.name, "skipped")
    events.log("evidence", "info", f"identical recipe {key[:12]} was built before; reused the cached "
                                   f"{', '.join(formats)} in {time.monotonic() - started:.2f} s")
    events.progress("evidence", 100, "done (cached)")
    return result
