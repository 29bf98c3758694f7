"""Files under one directory (KILN_ARTIFACTS_DIR): the single-host default. Writes go through a temp name and a
rename, so a reader sees a whole file or none."""
from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import Iterator

from .base import ObjectMissing, StorageError, check_key


class LocalStorage:
    kind = "local"
    shared = False

    def __init__(self, root: str | Path):
        self.root = Path(root).resolve()

    def describe(self) -> str:
        return f"local directory {self.root}"

    def path(self, key: str) -> Path:
        path = (self.root / check_key(key)).resolve()
        if self.root not in path.parents:
            raise ValueError(f"invalid storage key {key!r}")
        return path

    def _write(self, target: Path, write) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
        try:
            write(tmp)
            os.replace(tmp, target)
        except OSError as err:
            tmp.unlink(missing_ok=True)
            raise StorageError(f"could not write {target}: {err.strerror or err}") from err

    def put_file(self, key: str, path: Path) -> None:
        target = self.path(key)
        source = Path(path).resolve()
        if source == target:
            return  # the file was made in place (the worker's build directory is the store)
        self._write(target, lambda tmp: shutil.copyfile(source, tmp))

    def copy(self, source_key: str, key: str) -> None:
        source = self.path(source_key)
        if not source.is_file():
            raise ObjectMissing(source_key)
        self._write(self.path(key), lambda tmp: shutil.copyfile(source, tmp))

    def put_bytes(self, key: str, data: bytes) -> None:
        self._write(self.path(key), lambda tmp: tmp.write_bytes(data))

    def get_file(self, key: str, dest: Path) -> None:
        source = self.path(key)
        if not source.is_file():
            raise ObjectMissing(key)
        dest = Path(dest)
        if dest.resolve() == source:
            return
        self._write(dest, lambda tmp: shutil.copyfile(source, tmp))

    def get_bytes(self, key: str) -> bytes:
        try:
            return self.path(key).read_bytes()
        except FileNotFoundError:
            raise ObjectMissing(key) from None
        except OSError as err:
            raise StorageError(f"could not read {key}: {err.strerror or err}") from err

    def size(self, key: str) -> int | None:
        try:
            return self.path(key).stat().st_size
        except FileNotFoundError:
            return None

    def iter_range(self, key: str, start: int = 0, end: int | None = None,
                   chunk_size: int = 1024 * 1024) -> Iterator[bytes]:
        try:
            fh = self.path(key).open("rb")
        except FileNotFoundError:
            raise ObjectMissing(key) from None
        return _read_range(fh, start, end, chunk_size)

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def delete_prefix(self, prefix: str) -> int:
        target = self.path(prefix.rstrip("/"))
        if target.is_dir():
            count = sum(1 for p in target.rglob("*") if p.is_file())
            shutil.rmtree(target, ignore_errors=True)
            return count
        removed = 0
        for path in target.parent.glob(target.name + "*") if target.parent.is_dir() else []:
            if path.is_file():
                path.unlink(missing_ok=True)
                removed += 1
            elif path.is_dir():
                removed += sum(1 for p in path.rglob("*") if p.is_file())
                shutil.rmtree(path, ignore_errors=True)
        return removed

    def local_path(self, key: str) -> Path | None:
        path = self.path(key)
        return path if path.is_file() else None

    def presigned_url(self, key: str, filename: str, content_type: str, expires: int) -> str | None:
        return None


def _read_range(fh, start: int, end: int | None, chunk_size: int) -> Iterator[bytes]:
    with fh:
        fh.seek(start)
        left = None if end is None else end - start + 1
        while left is None or left > 0:
            chunk = fh.read(chunk_size if left is None else min(chunk_size, left))
            if not chunk:
                return
            if left is not None:
                left -= len(chunk)
            yield chunk
