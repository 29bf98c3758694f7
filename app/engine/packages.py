"""The Debian package index: does a package exist in a release, what is it called really.

The resolve stage checks every requested name here before any heavy work, so an unknown
package fails a build in seconds. The index (dists/<release>/main/binary-<arch>/Packages.xz)
is downloaded once and reduced to a small JSON cache, refreshed when older than a day. The cache
also keeps each package's Installed-Size and (Pre-)Depends and the names minbase installs, which is
enough to estimate an image's size without a build.
"""
from __future__ import annotations

import difflib
import hashlib
import json
import lzma
import threading
import time
from pathlib import Path
from typing import NamedTuple

import requests

from .locks import atomic_write, file_lock
from .settings import EngineSettings


# The cache file's shape; it is part of the file name, so a cache of another shape is never read and
# the index is downloaded again (2: Installed-Size, (Pre-)Depends and the minbase set were added).
INDEX_FORMAT = 2


class IndexUnavailable(Exception):
    """The index could not be downloaded and there is no cached copy."""


class ParsedIndex(NamedTuple):
    packages: dict[str, list[str]]   # name -> [version, short description]
    provides: dict[str, list[str]]   # virtual name -> real packages providing it
    installed: dict[str, list]       # name -> [Installed-Size in KiB, "a|b,c" (Pre-)Depends: groups of alternatives]
    required: list[str]              # Essential: yes or Priority: required, what mmdebstrap's minbase installs


def _relations(value: str) -> str:
    """'libc6 (>= 2.34), libssl3t64 | libssl3:any' -> 'libc6,libssl3t64|libssl3' (names only)."""
    groups = []
    for group in value.split(","):
        alts = [a.strip().split(" ")[0].split("(")[0].split(":")[0] for a in group.split("|")]
        alts = [a for a in alts if a]
        if alts:
            groups.append("|".join(alts))
    return ",".join(groups)


def parse_index(text: str) -> ParsedIndex:
    """Packages file text -> the index's cached data (see ParsedIndex)."""
    packages: dict[str, list[str]] = {}
    provides: dict[str, list[str]] = {}
    installed: dict[str, list] = {}
    required: list[str] = []
    for stanza in text.split("\n\n"):
        name = version = desc = prov = None
        size, depends, base = 0, [], False
        for line in stanza.split("\n"):
            if line.startswith("Package: "):
                name = line[9:].strip()
            elif line.startswith("Version: "):
                version = line[9:].strip()
            elif line.startswith("Description: "):
                desc = line[13:].strip()
            elif line.startswith("Provides: "):
                prov = line[10:]
            elif line.startswith("Installed-Size: "):
                value = line[16:].strip()
                size = int(value) if value.isdigit() else 0
            elif line.startswith(("Depends: ", "Pre-Depends: ")):
                depends.append(_relations(line.partition(": ")[2]))
            elif line in ("Essential: yes", "Priority: required"):
                base = True
        if not name:
            continue
        packages[name] = [version or "", desc or ""]
        installed[name] = [size, ",".join(d for d in depends if d)]
        if base:
            required.append(name)
        for item in (prov or "").split(","):
            virtual = item.strip().split(" ")[0]
            if virtual:
                provides.setdefault(virtual, []).append(name)
    return ParsedIndex(packages, provides, installed, required)


def parse_packages(text: str) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Packages file text -> ({name: [version, short description]}, {virtual: [providers]})."""
    parsed = parse_index(text)
    return parsed.packages, parsed.provides


class PackageIndex:
    def __init__(self, cache_dir: Path, mirror: str, release: str, arch: str = "amd64",
                 max_age: float = 24 * 3600):
        self.cache_dir = Path(cache_dir)
        self.mirror = mirror.rstrip("/")
        self.release = release
        self.arch = arch
        self.max_age = max_age
        key = hashlib.sha256(self.mirror.encode()).hexdigest()[:12]
        self._stem = f"{release}-{arch}-{key}"
        self.path = self.cache_dir / f"{self._stem}-v{INDEX_FORMAT}.json"
        self._data: ParsedIndex | None = None
        self._loaded_at = 0.0
        self._mutex = threading.Lock()

    @property
    def url(self) -> str:
        return f"{self.mirror}/dists/{self.release}/main/binary-{self.arch}/Packages.xz"

    def _fresh(self) -> bool:
        try:
            return time.time() - self.path.stat().st_mtime < self.max_age
        except FileNotFoundError:
            return False

    def refresh(self, force: bool = False) -> None:
        """Download and reduce the index unless a fresh copy exists (one downloader at a time)."""
        with file_lock(self.path.with_suffix(".lock")):
            if not force and self._fresh():
                return
            try:
                resp = requests.get(self.url, timeout=(10, 120))
                resp.raise_for_status()
                text = lzma.decompress(resp.content).decode("utf-8", "replace")
            except (requests.RequestException, lzma.LZMAError) as err:
                if self.path.exists():
                    return  # a stale index beats no index; the next call tries again
                raise IndexUnavailable(f"cannot download the package index {self.url}: {err}") from err
            parsed = parse_index(text)
            payload = {"format": INDEX_FORMAT, "url": self.url, "fetchedAt": time.time(), **parsed._asdict()}
            atomic_write(self.path, json.dumps(payload, separators=(",", ":")).encode())
            # A cache of an older shape is never read again (its name differs): drop it.
            for old in self.cache_dir.glob(f"{self._stem}*.json"):
                if old != self.path:
                    old.unlink(missing_ok=True)

    def _load(self) -> ParsedIndex:
        with self._mutex:
            stale = time.time() - self._loaded_at > self.max_age
            if self._data is None or stale:
                if not self._fresh():
                    self.refresh()
                payload = json.loads(self.path.read_text())
                self._data = ParsedIndex(*(payload[f] for f in ParsedIndex._fields))
                self._loaded_at = time.time()
            return self._data

    def exists(self, name: str) -> bool:
        packages, provides = self._load()[:2]
        return name in packages or name in provides

    def version(self, name: str) -> str | None:
        packages = self._load().packages
        entry = packages.get(name)
        return entry[0] if entry else None

    def providers(self, name: str) -> list[str]:
        return list(self._load()[1].get(name, []))

    def installed_size(self, name: str) -> int | None:
        """Installed-Size in KiB of a real package; None for virtual or unknown names."""
        entry = self._load().installed.get(name)
        return entry[0] if entry else None

    def depends(self, name: str) -> list[list[str]]:
        """Pre-Depends and Depends of a real package as groups of alternatives, versions left out."""
        entry = self._load().installed.get(name)
        return [group.split("|") for group in entry[1].split(",")] if entry and entry[1] else []

    def required(self) -> list[str]:
        """Packages marked Essential: yes or Priority: required (with apt, mmdebstrap's minbase)."""
        return list(self._load().required)

    def suggest(self, name: str, limit: int = 3) -> list[str]:
        packages, provides = self._load()[:2]
        name = name.lower().strip()
        if not name:
            return []
        # Comparing against every name is slow with difflib; near-length names are the useful ones.
        pool = [n for n in packages if abs(len(n) - len(name)) <= 4]
        pool += [n for n in provides if abs(len(n) - len(name)) <= 4 and n not in packages]
        close = difflib.get_close_matches(name, pool, n=limit, cutoff=0.6)
        if len(close) < limit:
            contains = sorted((n for n in packages if name in n and n not in close), key=len)
            close += contains[: limit - len(close)]
        return close[:limit]

    def search(self, term: str, limit: int = 10) -> list[tuple[str, str]]:
        packages = self._load().packages
        term = term.lower().strip()
        if not term:
            return []
        by_name = sorted((n for n in packages if term in n), key=lambda n: (n != term, not n.startswith(term), len(n)))
        hits = [(n, packages[n][1]) for n in by_name[:limit]]
        if len(hits) < limit:
            seen = {n for n, _ in hits}
            for n, (_, desc) in packages.items():
                if n not in seen and term in desc.lower():
                    hits.append((n, desc))
                    if len(hits) >= limit:
                        break
        return hits

    def missing(self, names: list[str]) -> dict[str, list[str]]:
        return {n: self.suggest(n) for n in names if not self.exists(n)}


_indexes: dict[tuple, PackageIndex] = {}
_indexes_lock = threading.Lock()


def get_index(release: str, settings: EngineSettings, arch: str = "amd64") -> PackageIndex:
    """One PackageIndex per (data dir, mirror, release, arch) per process."""
    key = (str(settings.data_dir), settings.mirror, release, arch)
    with _indexes_lock:
        if key not in _indexes:
            _indexes[key] = PackageIndex(settings.cache_dir / "index", settings.mirror, release, arch,
                                         max_age=settings.index_max_age)
        return _indexes[key]
