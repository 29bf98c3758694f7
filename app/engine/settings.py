"""Engine settings: one object passed into the library, with embedded defaults.

The engine never reads the environment itself: the app builds these from its config (app/config.py)
and the engine's CLI from its own environment, both through `EngineSettings.from_config`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

FALLBACK_MIRROR = "http://deb.debian.org/debian"


# apt's two source formats: deb822 .sources files ("URIs: a b") and one-line .list files ("deb [opts] uri ...").
_SOURCE_URIS = ((r"^URIs:\s*(.+)$", "*.sources"), (r"^deb\s+(?:\[[^\]]*\]\s+)?(\S+)", "*.list"))


def host_mirror() -> str:
    """The Debian mirror the host's own apt sources use (self-hosters point apt at their cache)."""
    sources_d = Path("/etc/apt/sources.list.d")
    candidates: list[str] = []
    for pattern, glob in _SOURCE_URIS:
        files = sorted(sources_d.glob(glob)) if sources_d.is_dir() else []
        if glob == "*.list":
            files.insert(0, Path("/etc/apt/sources.list"))
        for f in files:
            try:
                text = f.read_text()
            except OSError:
                continue
            for m in re.finditer(pattern, text, re.M):
                candidates.extend(m.group(1).split())
    for uri in candidates:
        # The main archive, not security/updates or third-party repositories.
        if re.search(r"/debian/?$", uri) and "security" not in uri:
            return uri.rstrip("/")
    return FALLBACK_MIRROR


def _positive(config: Mapping, name: str, default: int) -> int:
    raw = config.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be a whole number, got {raw!r}") from None
    if value <= 0:
        raise ValueError(f"{name} must be greater than 0, got {value}")
    return value


@dataclass
class EngineSettings:
    data_dir: Path = field(default_factory=lambda: Path("instance/data").resolve())
    mirror: str = FALLBACK_MIRROR
    cache_max_bytes: int = 20 * 1024**3
    index_max_age: float = 24 * 3600
    # Base layers are rebuilt after this age so their apt lists and security state stay current.
    base_max_age: float = 7 * 24 * 3600
    # Set only for a rootless build's inner process: its temp trees go into a directory the outer
    # process owns and can remove even when the namespace had to be killed.
    scratch_dir: Path | None = None
    # Limits of every sandboxed build step (a package install, a recipe command).
    step_memory_mb: int = 2048
    step_max_processes: int = 512
    step_timeout: float = 1800.0
    # Base URL of an archive snapshot service (https://snapshot.debian.org/archive/debian style): a locked build
    # also installs from <URL>/<the locked build's time>, where versions the mirror has dropped are still found.
    snapshot_mirror: str | None = None

    @classmethod
    def from_config(cls, config: Mapping) -> "EngineSettings":
        """From a mapping of KILN_DATA_DIR, KILN_DEBIAN_MIRROR, KILN_CACHE_MAX_GB and the KILN_BUILD_STEP_* limits
        (the app's config, or
        the environment at the CLI's edge); missing or empty values take the defaults."""
        data_dir = Path(config.get("KILN_DATA_DIR") or "instance/data").resolve()
        mirror = (config.get("KILN_DEBIAN_MIRROR") or host_mirror()).rstrip("/")
        gb = config.get("KILN_CACHE_MAX_GB")
        try:
            max_bytes = int(float(gb) * 1024**3) if gb not in (None, "") else 20 * 1024**3
        except (TypeError, ValueError):
            raise ValueError(f"KILN_CACHE_MAX_GB must be a number, got {gb!r}") from None
        snapshot = (config.get("KILN_SNAPSHOT_MIRROR") or "").strip().rstrip("/") or None
        if snapshot and not re.match(r"^https?://[^\s/]+(/\S*)?$", snapshot):
            raise ValueError(f"KILN_SNAPSHOT_MIRROR must be an http(s) URL, got {snapshot!r}")
        return cls(data_dir=data_dir, mirror=mirror, cache_max_bytes=max_bytes, snapshot_mirror=snapshot,
                   step_memory_mb=_positive(config, "KILN_BUILD_STEP_MEMORY_MB", 2048),
                   step_max_processes=_positive(config, "KILN_BUILD_STEP_MAX_PROCESSES", 512),
                   step_timeout=float(_positive(config, "KILN_BUILD_STEP_TIMEOUT", 1800)))

    @property
    def cache_dir(self) -> Path:
        return self.data_dir / "cache"

    @property
    def tmp_dir(self) -> Path:
        # Temp trees live on the same filesystem as the caches so .debs can be hardlinked.
        return self.scratch_dir or self.data_dir / "tmp"
