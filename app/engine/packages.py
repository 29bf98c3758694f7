"""The Debian package index: does a package exist in a release, what is it called really.

The resolve stage checks every requested name here before any heavy work, so an unknown
package fails a build in seconds. The index (dists/<release>/main/binary-<arch>/Packages.xz)
is downloaded once and reduced to a small JSON cache, refreshed when older than a day.
"""
from __future__ import annotations

import difflib
import hashlib
import json
import lzma
import threading
import time
from pathlib import Path

import requests

from .locks import atomic_write, file_lock
from .settings import EngineSettings


class IndexUnavailable(Exception):
    """The index could not be downloaded and there is no cached copy."""


def parse_packages(text: str) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Packages file text -> ({name: [version, short description]}, {virtual: [providers]})."""
    packages: dict[str, list[str]] = {}
    provides: dict[str, list[str]] = {}
    for stanza in text.split("\n\n"):
        name = version = desc = prov = None
        for line in stanza.split("\n"):
            if line.startswith("Package: "):
                name = line[9:].strip()
            elif line.startswith("Version: "):
                version = line[9:].strip()
            elif line.startswith("Description: "):
                desc = line[13:].strip()
            elif line.startswith("Provides: "):
                prov = line[10:]
        if not name:
            continue
        packages[name] = [version or "", desc or ""]
        for item in (prov or "").split(","):
            virtual = item.strip().split(" ")[0]
            if virtual:
                provides.setdefault(virtual, []).append(name)
    return packages, provides


class PackageIndex:
    def __init__(self, cache_dir: Path, mirror: str, release: str, arch: str = "amd64",
                 max_age: float = 24 * 3600):
        self.cache_dir = Path(cache_dir)
        self.mirror = mirror.rstrip("/")
        self.release = release
        self.arch = arch
        self.max_age = max_age
        key = hashlib.sha256(self.mirror.encode()).hexdigest()[:12]
        self.path = self.cache_dir / f"{release}-{arch}-{key}.json"
        self._data: tuple[dict[str, list[str]], dict[str, list[str]]] | None = None
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
            packages, provides = parse_packages(text)
            payload = {"url": self.url, "fetchedAt": time.time(), "packages": packages, "provides": provides}
            atomic_write(self.path, json.dumps(payload, separators=(",", ":")).encode())

    def _load(self) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
        with self._mutex:
            stale = time.time() - self._loaded_at > self.max_age
            if self._data is None or stale:
                if not self._fresh():
                    self.refresh()
                payload = json.loads(self.path.read_text())
                self._data = (payload["packages"], payload["provides"])
                self._loaded_at = time.time()
            return self._data

    def exists(self, name: str) -> bool:
        packages, provides = self._load()
        return name in packages or name in provides

    def version(self, name: str) -> str | None:
        packages, _ = self._load()
        entry = packages.get(name)
        return entry[0] if entry else None

    def providers(self, name: str) -> list[str]:
        return list(self._load()[1].get(name, []))

    def suggest(self, name: str, limit: int = 3) -> list[str]:
        packages, provides = self._load()
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
        packages, _ = self._load()
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
