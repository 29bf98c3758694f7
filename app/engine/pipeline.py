"""The build pipeline: resolve -> bootstrap -> configure -> package -> evidence.

`build()` is the one entry point the worker, the CLI and the tests call.
"""
from __future__ import annotations

import contextlib
import json
import os
import threading
import time
import uuid
from pathlib import Path
from typing import Callable, Iterator

from . import base as base_layer
from .cache import ResultCache, evict, link_or_copy
from .configure import configure, finish_tree, install_packages, prepare_tree, support_packages
from .context import BuildCancelled, BuildContext, BuildError, BuildEvents, BuildTimeout, DiskFull
from .evidence import installed_packages, make_sbom, now_iso, sha256_file, write_checksums, write_json
from .formats import BUILDERS, artifact_name, kernel_files
from .fsutil import remove_tree
from .packages import IndexUnavailable, get_index
from .result import Artifact, BuildResult
from .recipe import BOOTABLE_FORMATS, FORMATS, RecipeError, recipe_hash, validate_recipe
from .sandbox import Sandbox
from .settings import EngineSettings
from .userns import build_in_user_namespace, mode_description

__all__ = ["STAGES", "BuildEvents", "Artifact", "BuildResult", "BuildError", "BuildCancelled",
           "BuildTimeout", "DiskFull", "build"]

STAGES: list[tuple[str, str]] = [
    ("resolve", "Package Resolver"),
    ("bootstrap", "Bootstrapper"),
    ("configure", "Config Agent"),
    ("package", "Image Packager"),
    ("evidence", "Evidence Collector"),
]
STAGE_START = {"resolve": 0, "bootstrap": 5, "configure": 55, "package": 70, "evidence": 95}


def normalize_formats(recipe: dict, formats: list[str] | str | None) -> list[str]:
    if isinstance(formats, str):
        formats = [f for f in formats.split(",")]
    formats = [f.strip() for f in (formats or [recipe["format"]]) if f.strip()]
    bad = [f for f in formats if f not in FORMATS]
    if bad:
        raise BuildError("resolve", f"unknown format(s): {', '.join(bad)}; choose from {', '.join(FORMATS)}",
                         user_error=True)
    return list(dict.fromkeys(formats)) or [recipe["format"]]


@contextlib.contextmanager
def _stage(ctx: BuildContext, name: str, timings: dict[str, float]) -> Iterator[None]:
    ctx.check()
    ctx.stage = name
    ctx.events.stage(name, "running")
    ctx.events.progress(name, STAGE_START[name], dict(STAGES)[name])
    started = time.monotonic()
    try:
        yield
    except BaseException:
        timings[name] = round(time.monotonic() - started, 2)
        ctx.events.stage(name, "failed")
        raise
    timings[name] = round(time.monotonic() - started, 2)
    ctx.events.stage(name, "succeeded")


def build(recipe: dict, out_dir: Path, formats: list[str] | None = None, *,
          events: BuildEvents | None = None, cancel: threading.Event | None = None,
          timeout: float | None = None, settings: EngineSettings,
          inspect: Callable[[Path], None] | None = None) -> BuildResult:
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
    h = recipe_hash(recipe)

    hit = ResultCache(settings).lookup(h, formats)
    if hit:
        return _from_cache(recipe, h, formats, hit, out_dir, events)

    if os.geteuid() != 0:
        # Not root: the same pipeline runs as root of a user namespace, or a BuildError says why not.
        return build_in_user_namespace(recipe, out_dir, formats, events=events, cancel=cancel, deadline=deadline,
                                       settings=settings, inspect=inspect)
    settings.tmp_dir.mkdir(parents=True, exist_ok=True)
    work = settings.tmp_dir / f"build-{h[:12]}-{uuid.uuid4().hex[:8]}"
    work.mkdir()
    ctx = BuildContext(settings=settings, events=events, cancel=cancel, deadline=deadline, work=work)
    ctx.cleanup.push("work tree", lambda: remove_tree(work))
    try:
        return _run(ctx, recipe, h, formats, out_dir, inspect)
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


def _run(ctx: BuildContext, recipe: dict, h: str, formats: list[str], out_dir: Path,
         inspect: Callable[[Path], None] | None) -> BuildResult:
    timings: dict[str, float] = {}
    bootable = any(f in BOOTABLE_FORMATS for f in formats)
    support = support_packages(recipe)
    extras = list(dict.fromkeys(recipe["packages"] + list(support)))

    with _stage(ctx, "resolve", timings):
        ctx.log(f"checking {len(extras)} package(s) against Debian {recipe['release']} (amd64)")
        try:
            index = get_index(recipe["release"], ctx.settings)
            missing = index.missing(extras)
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

    root = ctx.work / "root"
    with _stage(ctx, "bootstrap", timings):
        ctx.log(mode_description())
        sandbox = Sandbox(ctx, root)  # before the base layer: a host that cannot sandbox fails at once
        ctx.log(sandbox.describe())
        base_root = base_layer.ensure_base(ctx, recipe["release"], bootable)
        ctx.events.progress("bootstrap", 40, "base layer ready")
        for sub in ("upper", "ovl", "root"):
            (ctx.work / sub).mkdir()
        # nodev: a device node that ends up in the tree can never be opened through it.
        ctx.run(["mount", "-t", "overlay", "overlay", "-o",
                 f"nodev,lowerdir={base_root},upperdir={ctx.work / 'upper'},workdir={ctx.work / 'ovl'}",
                 str(root)], what="mounting the overlay on the base layer")
        prepare_tree(ctx, root)
        install_packages(ctx, sandbox, extras)

    with _stage(ctx, "configure", timings):
        try:
            configure(ctx, sandbox, recipe)
        finally:
            finish_tree(root)
        if inspect is not None:
            ctx.log("running filesystem checks on the configured tree")
            try:
                inspect(root)
            except BuildError:
                raise
            except Exception as err:
                raise BuildError("configure", f"inspecting the configured tree failed: {err}") from err

    artifacts: list[Artifact] = []
    with _stage(ctx, "package", timings):
        step = 25 // len(formats)
        for i, fmt in enumerate(formats):
            ctx.events.progress("package", STAGE_START["package"] + i * step, f"making {fmt}")
            target = out_dir / artifact_name(recipe, fmt)
            target.unlink(missing_ok=True)
            started = time.monotonic()
            BUILDERS[fmt](ctx, root, recipe, target)
            ctx.log(f"{fmt}: {target.name} ({target.stat().st_size / 1024**2:.1f} MiB) in {time.monotonic() - started:.1f} s")
            artifacts.append(Artifact(fmt, target, target.stat().st_size, ""))

    with _stage(ctx, "evidence", timings):
        for a in artifacts:
            a.sha256 = sha256_file(a.path)
        packages = installed_packages(root)
        built_at = now_iso()
        added = base_layer.base_packages(bootable) | support
        manifest = {
            "name": recipe["name"],
            "recipe": recipe,
            "recipeHash": h,
            "release": recipe["release"],
            "architecture": recipe["architecture"],
            "formats": formats,
            "kernelVersion": kernel_files(root)[0] if bootable else None,
            "packages": [{k: p[k] for k in ("name", "version", "architecture")} for p in packages],
            "addedByKiln": [{"name": n, "reason": r} for n, r in added.items()],
            "artifacts": [a.to_dict() for a in artifacts],
            "stageTimings": dict(timings),
            "mirror": ctx.settings.mirror,
            "builtAt": built_at,
        }
        manifest_path = out_dir / "manifest.json"
        sbom_path = out_dir / "sbom.spdx.json"
        write_json(manifest_path, manifest)
        write_json(sbom_path, make_sbom(recipe, packages, built_at, h))
        extra = [Artifact(kind, p, p.stat().st_size, sha256_file(p))
                 for kind, p in (("manifest", manifest_path), ("sbom", sbom_path))]
        sums = write_checksums(out_dir, [(a.path, a.sha256) for a in artifacts + extra])
        extra.append(Artifact("checksums", sums, sums.stat().st_size, sha256_file(sums)))
        cache = ResultCache(ctx.settings)
        for a in artifacts:
            cache.store(h, a.kind, a.path, a.sha256, manifest_path, sbom_path)
        evict(ctx.settings, keep={cache.entry(h, f) for f in formats})
    ctx.events.progress("evidence", 100, "done")
    return BuildResult(artifacts + extra, manifest, cached=False, stage_timings=timings)


def _from_cache(recipe: dict, h: str, formats: list[str], hit: dict[str, dict], out_dir: Path,
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
    manifest["artifacts"] = [a.to_dict() for a in artifacts]
    manifest["cachedResult"] = True
    manifest_path = out_dir / "manifest.json"
    sbom_path = out_dir / "sbom.spdx.json"
    write_json(manifest_path, manifest)
    link_or_copy(first / "sbom.spdx.json", sbom_path)
    extra = [Artifact(kind, p, p.stat().st_size, sha256_file(p))
             for kind, p in (("manifest", manifest_path), ("sbom", sbom_path))]
    sums = write_checksums(out_dir, [(a.path, a.sha256) for a in artifacts + extra])
    extra.append(Artifact("checksums", sums, sums.stat().st_size, sha256_file(sums)))
    for name, _ in STAGES:
        events.stage(name, "skipped")
    events.log("evidence", "info", f"identical recipe {h[:12]} was built before; reused the cached "
                                   f"{', '.join(formats)} in {time.monotonic() - started:.2f} s")
    events.progress("evidence", 100, "done (cached)")
    return BuildResult(artifacts + extra, manifest, cached=True, stage_timings={})
