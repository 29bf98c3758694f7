"""Engine fixtures. The expensive ones (a real build) run once per pytest session and are shared:
other suites (the image test runner, the builds service) reuse `built_iso` and `engine_settings`."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from app.engine.pipeline import build
from app.engine.settings import EngineSettings, host_mirror

SSH_RECIPE = {
    "name": "kiln-ssh",
    "release": "trixie",
    "format": "iso",
    "packages": ["openssh-server"],
    "hostname": "kiln-test",
    "users": [{"name": "admin", "groups": ["sudo"], "sshKeys": [
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl kiln@test"]}],
    "services": {"enable": ["ssh"], "disable": []},
    "firewall": {"enabled": True, "allow": ["22/tcp"]},
    "files": [{"path": "/etc/motd", "content": "built by kiln\n", "mode": "0644", "owner": "root"}],
}


@pytest.fixture(scope="session")
def engine_data_dir(tmp_path_factory) -> Path:
    """Caches (.debs, base layers, package index) shared by every build in the session.
    Set KILN_TEST_DATA_DIR to keep them across sessions (cold -> warm)."""
    configured = os.environ.get("KILN_TEST_DATA_DIR")
    if configured:
        path = Path(configured).resolve()
        path.mkdir(parents=True, exist_ok=True)
        return path
    return tmp_path_factory.mktemp("kiln-engine-data")


@pytest.fixture(scope="session")
def engine_settings(engine_data_dir) -> EngineSettings:
    return EngineSettings(data_dir=engine_data_dir, mirror=host_mirror())


@pytest.fixture(scope="session")
def built_iso(engine_settings, tmp_path_factory):
    """One real build of SSH_RECIPE producing iso + qcow2 + oci + rootfs (BuildResult).
    `built_iso.artifacts` has one Artifact per kind; the configured tree is gone afterwards."""
    out = tmp_path_factory.mktemp("built-ssh")
    return build(SSH_RECIPE, out, ["iso", "qcow2", "oci", "rootfs"], settings=engine_settings, timeout=1800)


@pytest.fixture(scope="session")
def built_artifacts(built_iso) -> dict[str, Path]:
    """kind -> path (iso, qcow2, oci, rootfs, manifest, sbom, checksums) of the session build."""
    return {a.kind: a.path for a in built_iso.artifacts}
