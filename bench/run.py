"""Benchmark the engine on the reference recipes, cold (fresh data dir) and warm.

    .venv/bin/python bench/run.py [--keep DIR] [--skip-cold-docker]

Prints per-stage and total wall times and artifact sizes. Targets (2 cores): cold Debian+SSH ISO
<= ~100 s (half of live-build's ~197 s), warm rebuild with one extra small package < 30 s,
identical recipe < 1 s. "cold again" builds the SSH ISO once more in another fresh data dir (its own base
layer, empty result cache): "reproducible: yes" when every artifact's sha256 equals the first cold build's.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.engine.pipeline import STAGES, BuildEvents, build  # noqa: E402
from app.engine.recipe import parse_recipe_text  # noqa: E402
from app.engine.settings import EngineSettings, host_mirror  # noqa: E402

RECIPES = Path(__file__).parent / "recipes"


class Quiet(BuildEvents):
    def stage(self, stage: str, status: str) -> None:
        if status in ("running", "failed"):
            print(f"    {stage}: {status}", flush=True)


def run_one(label: str, recipe_file: str, data_dir: Path, out_root: Path, mirror: str) -> dict:
    recipe = parse_recipe_text((RECIPES / recipe_file).read_text())
    settings = EngineSettings(data_dir=data_dir, mirror=mirror)
    out = out_root / f"{label.replace(' ', '-')}-{recipe['name']}"
    print(f"== {label}: {recipe_file}", flush=True)
    started = time.monotonic()
    result = build(recipe, out, events=Quiet(), settings=settings)
    total = time.monotonic() - started
    size = sum(a.size for a in result.artifacts if a.kind in ("iso", "qcow2", "rootfs", "oci"))
    return {"label": label, "recipe": recipe_file, "timings": result.stage_timings, "total": total,
            "size": size, "cached": result.cached,
            "sha256": {a.kind: a.sha256 for a in result.artifacts if a.kind in ("iso", "qcow2", "rootfs", "oci")}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", type=Path, help="work directory to keep (default: a temp dir, deleted)")
    parser.add_argument("--skip-cold-docker", action="store_true", help="skip the second cold build")
    parser.add_argument("--skip-reproducible", action="store_true",
                        help="skip the second cold SSH ISO build that checks reproducibility")
    parser.add_argument("--mirror", default=host_mirror())
    parser.add_argument("--save", type=Path, help="write the rows as JSON (to compare a later run against)")
    parser.add_argument("--compare", type=Path, help="rows saved by an earlier run: print the change per row")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="kiln-bench-", dir="/var/tmp"))
    work.mkdir(parents=True, exist_ok=True)
    warm = work / "data-warm"
    rows = []
    try:
        for d in (warm, work / "data-cold-docker", work / "data-cold-again"):
            shutil.rmtree(d, ignore_errors=True)
        rows.append(run_one("cold", "ssh.yaml", warm, work / "out", args.mirror))
        rows.append(run_one("warm +1 pkg", "ssh-plus-one.yaml", warm, work / "out", args.mirror))
        rows.append(run_one("identical", "ssh.yaml", warm, work / "out", args.mirror))
        if not args.skip_reproducible:
            rows.append(run_one("cold again", "ssh.yaml", work / "data-cold-again", work / "out", args.mirror))
        rows.append(run_one("warm", "ssh-docker.yaml", warm, work / "out", args.mirror))
        if not args.skip_cold_docker:
            rows.append(run_one("cold", "ssh-docker.yaml", work / "data-cold-docker", work / "out", args.mirror))
    finally:
        if args.keep is None:
            from app.engine.fsutil import remove_tree
            remove_tree(work)
    stages = [s.name for s in STAGES]
    header = f"{'run':<12} {'recipe':<20}" + "".join(f"{s:>10}" for s in stages) + f"{'total':>9} {'size MiB':>9}"
    print()
    print(header)
    print("-" * len(header))
    for r in rows:
        cells = "".join(f"{r['timings'].get(s, 0.0):>10.1f}" if r["timings"] else f"{'-':>10}" for s in stages)
        total = f"{r['total']:.2f}" if r["cached"] else f"{r['total']:.1f}"
        print(f"{r['label']:<12} {r['recipe']:<20}{cells}{total:>9} {r['size'] / 1024**2:>9.1f}"
              + ("  (result cache)" if r["cached"] else ""))
    first = next((r for r in rows if r["label"] == "cold" and r["recipe"] == "ssh.yaml"), None)
    again = next((r for r in rows if r["label"] == "cold again"), None)
    if first and again:
        same = first["sha256"] == again["sha256"]
        differ = sorted(k for k in first["sha256"] if first["sha256"][k] != again["sha256"].get(k))
        print(f"\nreproducible: {'yes' if same else 'no'} (ssh.yaml built twice from empty caches: "
              + (f"identical sha256 for {', '.join(sorted(first['sha256']))})" if same
                 else f"{', '.join(differ)} differ)"))
    if args.save:
        args.save.write_text(json.dumps(rows, indent=1))
    if args.compare:
        # The build sandbox may cost at most 10% on the cold ISO and the warm one-package rebuild.
        before = {(r["label"], r["recipe"]): r for r in json.loads(args.compare.read_text())}
        print()
        for r in rows:
            old = before.get((r["label"], r["recipe"]))
            if old and not r["cached"] and old["total"]:
                change = (r["total"] - old["total"]) / old["total"] * 100
                print(f"{r['label']:<12} {r['recipe']:<20} before {old['total']:7.1f} s  now {r['total']:7.1f} s  "
                      f"({change:+.0f}%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
