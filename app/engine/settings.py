"""Engine settings, read from the environment with embedded defaults."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

FALLBACK_MIRROR = "http://deb.debian.org/debian"


def host_mirror() -> str:
    """The Debian mirror the host's own apt sources use (self-hosters point apt at their cache)."""
    candidates: list[str] = []
    sources_d = Path("/etc/apt/sources.list.d")
    files = sorted(sources_d.glob("*.sources")) if sources_d.is_dir() else []
    for f in files:
        try:
            text = f.read_text()
        except OSError:
            continue
        for m in re.finditer(r"^URIs:\s*(.+)$", text, re.M):
            candidates.extend(m.group(1).split())
    lists = [Path("/etc/apt/sources.list")] + (sorted(sources_d.glob("*.list")) if sources_d.is_dir() else [])
    for f in lists:
        try:
            text = f.read_text()
        except OSError:
            continue
        for m in re.finditer(r"^deb\s+(?:\[[^\]]*\]\s+)?(\S+)", text, re.M):
            candidates.append(m.group(1))
    for uri in candidates:
        # The main archive, not security/updates or third-party repositories.
        if re.search(r"/debian/?$", uri) and "security" not in uri:
            return uri.rstrip("/")
    return FALLBACK_MIRROR


def _positive(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if not raw:
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

    @classmethod
    def from_env(cls) -> "EngineSettings":
        data_dir = Path(os.environ.get("KILN_DATA_DIR") or "instance/data").resolve()
        mirror = (os.environ.get("KILN_DEBIAN_MIRROR") or host_mirror()).rstrip("/")
        gb = os.environ.get("KILN_CACHE_MAX_GB")
        try:
            max_bytes = int(float(gb) * 1024**3) if gb else 20 * 1024**3
        except ValueError:
            raise ValueError(f"KILN_CACHE_MAX_GB must be a number, got {gb!r}") from None
        return cls(data_dir=data_dir, mirror=mirror, cache_max_bytes=max_bytes,
                   step_memory_mb=_positive("KILN_BUILD_STEP_MEMORY_MB", 2048),
                   step_max_processes=_positive("KILN_BUILD_STEP_MAX_PROCESSES", 512),
                   step_timeout=float(_positive("KILN_BUILD_STEP_TIMEOUT", 1800)))

    @property
    def cache_dir(self) -> Path:
        return self.data_dir / "cache"

    @property
    def tmp_dir(self) -> Path:
        # Temp trees live on the same filesystem as the caches so .debs can be hardlinked.
        return self.scratch_dir or self.data_dir / "tmp"
