"""A real (minimal) build in the fast suite: rootfs from the small base layer (~40 s cold, ~5 s warm)."""
import json
import subprocess
import time
import uuid

from app.engine.evidence import sha256_file
from app.engine.fsutil import mounts_under
from app.engine.pipeline import STAGES, BuildEvents, build

MINI = {
    "name": "mini",
    "format": "rootfs",
    "hostname": "mini-host",
    "users": [{"name": "ops", "groups": ["kilnops"]}],
    "files": [{"path": "/etc/kiln/hello.txt", "content": "hello\n", "mode": "0600", "owner": "ops"}],
    "commands": ["echo made-by-command > /etc/kiln/cmd.txt"],
}


class Recorder(BuildEvents):
    def __init__(self):
        self.logs, self.stages = [], []

    def log(self, stage, level, message):
        self.logs.append((stage, level, message))

    def stage(self, stage, status):
        self.stages.append((stage, status))


def test_minimal_rootfs_build_then_identical_request_is_cached(engine_settings, tmp_path):
    # A fresh marker makes the recipe new even with a data dir kept across sessions.
    recipe = dict(MINI, files=MINI["files"] + [{"path": "/etc/kiln/run-id", "content": uuid.uuid4().hex}])
    events = Recorder()
    seen_tree = []

    def inspect(tree):
        seen_tree.append((tree / "etc/hostname").read_text())

    result = build(recipe, tmp_path / "a", events=events, settings=engine_settings, inspect=inspect)
    assert not result.cached
    assert [s for s, status in events.stages if status == "succeeded"] == [s.name for s in STAGES]
    assert {stage for stage, _, _ in events.logs} <= {s.name for s in STAGES}
    assert seen_tree == ["mini-host\n"]

    kinds = {a.kind: a for a in result.artifacts}
    assert set(kinds) == {"rootfs", "manifest", "sbom", "checksums"}
    tarball = kinds["rootfs"].path
    assert tarball.name == "mini.rootfs.tar.zst" and sha256_file(tarball) == kinds["rootfs"].sha256
    listing = subprocess.run(["tar", "--zstd", "-tvf", str(tarball)], capture_output=True, text=True,
                             check=True).stdout
    hello = next(line for line in listing.splitlines() if line.endswith("./etc/kiln/hello.txt"))
    passwd = subprocess.run(["tar", "--zstd", "-xOf", str(tarball), "./etc/passwd"], capture_output=True,
                            text=True, check=True).stdout
    ops_uid = next(line.split(":")[2] for line in passwd.splitlines() if line.startswith("ops:"))
    assert hello.startswith("-rw-------") and f" {ops_uid}/0 " in hello
    cmd = subprocess.run(["tar", "--zstd", "-xOf", str(tarball), "./etc/kiln/cmd.txt"], capture_output=True,
                         text=True, check=True).stdout
    assert cmd == "made-by-command\n"

    manifest = json.loads((tmp_path / "a/manifest.json").read_text())
    assert manifest["recipeHash"] == result.manifest["recipeHash"]
    assert any(p["name"] == "dpkg" and p["version"] for p in manifest["packages"])
    assert subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=tmp_path / "a").returncode == 0

    # No temp tree or mount is left behind.
    assert list(engine_settings.tmp_dir.iterdir()) == []
    assert mounts_under(engine_settings.data_dir) == []

    started = time.monotonic()
    again = build(recipe, tmp_path / "b", settings=engine_settings)
    assert again.cached and time.monotonic() - started < 1
    assert {a.kind: a.sha256 for a in again.artifacts}["rootfs"] == kinds["rootfs"].sha256


def test_failing_recipe_command_is_a_user_error_naming_it(engine_settings, tmp_path):
    import pytest
    from app.engine.pipeline import BuildError
    recipe = dict(MINI, name="mini-fail", commands=["true", "exit 42"], hostname=f"h{uuid.uuid4().hex[:8]}")
    with pytest.raises(BuildError) as info:
        build(recipe, tmp_path, settings=engine_settings)
    err = info.value
    assert err.stage == "configure" and err.user_error
    assert "exit 42" in err.reason and "exit code 42" in err.reason
    assert list(engine_settings.tmp_dir.iterdir()) == []
    assert mounts_under(engine_settings.data_dir) == []
