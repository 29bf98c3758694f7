"""The storage interface every backend implements, and its errors."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator, Protocol

_BAD = re.compile(r"[\x00-\x1f\x7f\\]")


class StorageError(Exception):
    """The store could not do what was asked (unreachable, refused, out of space)."""


class ObjectMissing(StorageError):
    """No object under that key."""


def check_key(key: str) -> str:
    """A key is relative, '/'-separated, of plain names: never absolute, never '..', never empty parts."""
    if (not isinstance(key, str) or not key or _BAD.search(key) or len(key) > 900
            or any(part in ("", ".", "..") for part in key.split("/"))):
        raise ValueError(f"invalid storage key {key!r}")
    return key


class Storage(Protocol):
    #: "local" or "s3"
    kind: str
    #: Whether other hosts see what this one writes (then workers upload and the web process reads the store).
    shared: bool

    def describe(self) -> str:
        """Where the files go, for logs and error messages (no credentials)."""

    def put_file(self, key: str, path: Path) -> None:
        """Store the file at `path` under `key` (replacing what was there)."""

    def put_bytes(self, key: str, data: bytes) -> None: ...

    def copy(self, source_key: str, key: str) -> None:
        """Store a copy of the object `source_key` under `key` inside the store (no bytes through this host on S3);
        ObjectMissing when the source is gone."""

    def get_file(self, key: str, dest: Path) -> None:
        """Write the object to `dest` (whole or not at all); ObjectMissing when there is none."""

    def get_bytes(self, key: str) -> bytes: ...

    def size(self, key: str) -> int | None:
        """The object's size in bytes, or None when there is no such object."""

    def iter_range(self, key: str, start: int = 0, end: int | None = None,
                   chunk_size: int = 1024 * 1024) -> Iterator[bytes]:
        """The bytes start..end (inclusive; end None: to the end), streamed in chunks."""

    def delete(self, key: str) -> None:
        """Remove one object (no error when it is already gone)."""

    def delete_prefix(self, prefix: str) -> int:
        """Remove every object whose key starts with `prefix` (a folder: ends with '/'); returns how many."""

    def local_path(self, key: str) -> Path | None:
        """The object as a file on this host, when the backend keeps it as one (lets the web server send it)."""

    def presigned_url(self, key: str, filename: str, content_type: str, expires: int) -> str | None:
        """A short-lived URL a client can GET the object from directly, or None when the backend has none."""
