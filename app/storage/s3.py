"""An S3-compatible bucket (AWS S3, SeaweedFS, MinIO, Ceph RGW, ...) through boto3.

Credentials come the standard AWS way (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a profile, an instance role);
nothing here reads them. Uploads and downloads use boto3's managed transfers (multipart above 8 MiB), so a
multi-GB image never sits in memory. Every boto/botocore failure becomes a StorageError naming the key.
"""
from __future__ import annotations

import os
import threading
import uuid
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit

from .base import ObjectMissing, StorageError, check_key

_MISSING_CODES = {"404", "NoSuchKey", "NotFound"}


def parse_s3_url(url: str) -> tuple[str, str]:
    """s3://bucket[/prefix] -> (bucket, prefix without slashes at either end)."""
    parts = urlsplit(url)
    if parts.scheme != "s3":
        raise ValueError(f"KILN_STORAGE_URL must be empty (local disk) or s3://bucket[/prefix], got {url!r}")
    if not parts.netloc or parts.query or parts.fragment or "@" in parts.netloc:
        raise ValueError(f"KILN_STORAGE_URL must name a bucket as s3://bucket[/prefix] (no credentials, query or "
                         f"fragment), got {url!r}")
    prefix = parts.path.strip("/")
    if prefix:
        check_key(prefix)
    return parts.netloc, prefix


class S3Storage:
    kind = "s3"
    shared = True

    def __init__(self, bucket: str, prefix: str = "", *, endpoint_url: str | None = None, region: str | None = None):
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint_url = endpoint_url
        self.region = region
        self._local = threading.local()

    def describe(self) -> str:
        where = f" at {self.endpoint_url}" if self.endpoint_url else ""
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/") + where

    @property
    def client(self):
        """One client per process and thread: RQ forks a work horse per job, and a client's connection pool
        must not cross a fork."""
        key = os.getpid()
        client = getattr(self._local, "client", None)
        if client is None or self._local.pid != key:
            import boto3
            from botocore.config import Config

            config = Config(signature_version="s3v4", retries={"max_attempts": 5, "mode": "standard"},
                            s3={"addressing_style": "path" if self.endpoint_url else "auto"},
                            connect_timeout=10, read_timeout=60)
            client = boto3.session.Session().client("s3", endpoint_url=self.endpoint_url,
                                                    region_name=self.region, config=config)
            self._local.client, self._local.pid = client, key
        return client

    def _key(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _fail(self, what: str, key: str, err: Exception) -> StorageError:
        from botocore.exceptions import ClientError

        if isinstance(err, ClientError):
            code = str(err.response.get("Error", {}).get("Code", ""))
            if code in _MISSING_CODES:
                return ObjectMissing(key)
            return StorageError(f"{what} {key} in {self.describe()}: {code} "
                                f"{err.response.get('Error', {}).get('Message', '')}".rstrip())
        return StorageError(f"{what} {key} in {self.describe()}: {err}")

    def put_file(self, key: str, path: Path) -> None:
        full = self._key(key)
        try:
            self.client.upload_file(str(path), self.bucket, full)
        except Exception as err:  # noqa: BLE001 - boto3 and botocore raise many kinds
            raise self._fail("could not upload", key, err) from err

    def copy(self, source_key: str, key: str) -> None:
        full, source = self._key(key), self._key(source_key)
        try:
            # Managed copy: one CopyObject, or a multipart copy above 8 MiB (objects over 5 GB need it).
            self.client.copy({"Bucket": self.bucket, "Key": source}, self.bucket, full)
        except Exception as err:  # noqa: BLE001
            raise self._fail("could not copy", source_key, err) from err

    def put_bytes(self, key: str, data: bytes) -> None:
        full = self._key(key)
        try:
            self.client.put_object(Bucket=self.bucket, Key=full, Body=data)
        except Exception as err:  # noqa: BLE001
            raise self._fail("could not upload", key, err) from err

    def get_file(self, key: str, dest: Path) -> None:
        full = self._key(key)
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.tmp")
        try:
            self.client.download_file(self.bucket, full, str(tmp))
            os.replace(tmp, dest)
        except Exception as err:  # noqa: BLE001
            tmp.unlink(missing_ok=True)
            raise self._fail("could not download", key, err) from err

    def get_bytes(self, key: str) -> bytes:
        full = self._key(key)
        try:
            return self.client.get_object(Bucket=self.bucket, Key=full)["Body"].read()
        except Exception as err:  # noqa: BLE001
            raise self._fail("could not read", key, err) from err

    def size(self, key: str) -> int | None:
        full = self._key(key)
        try:
            return int(self.client.head_object(Bucket=self.bucket, Key=full)["ContentLength"])
        except Exception as err:  # noqa: BLE001
            failure = self._fail("could not look up", key, err)
            if isinstance(failure, ObjectMissing):
                return None
            raise failure from err

    def iter_range(self, key: str, start: int = 0, end: int | None = None,
                   chunk_size: int = 1024 * 1024) -> Iterator[bytes]:
        full = self._key(key)
        byte_range = f"bytes={start}-{'' if end is None else end}"
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=full, Range=byte_range)["Body"]
        except Exception as err:  # noqa: BLE001
            raise self._fail("could not read", key, err) from err
        return _stream(body, chunk_size)

    def delete(self, key: str) -> None:
        full = self._key(key)
        try:
            self.client.delete_object(Bucket=self.bucket, Key=full)
        except Exception as err:  # noqa: BLE001
            failure = self._fail("could not delete", key, err)
            if not isinstance(failure, ObjectMissing):
                raise failure from err

    def delete_prefix(self, prefix: str) -> int:
        full = self._key(prefix.rstrip("/")) + ("/" if prefix.endswith("/") else "")
        removed = 0
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=full)
            for page in pages:
                keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
                if keys:
                    answer = self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": keys, "Quiet": True})
                    if answer.get("Errors"):
                        first = answer["Errors"][0]
                        raise StorageError(f"could not delete {first.get('Key')} in {self.describe()}: "
                                           f"{first.get('Code')} {first.get('Message', '')}".rstrip())
                    removed += len(keys)
        except StorageError:
            raise
        except Exception as err:  # noqa: BLE001
            raise self._fail("could not delete", prefix, err) from err
        return removed

    def local_path(self, key: str) -> Path | None:
        return None

    def presigned_url(self, key: str, filename: str, content_type: str, expires: int) -> str | None:
        full = self._key(key)
        try:
            return self.client.generate_presigned_url("get_object", ExpiresIn=int(expires), Params={
                "Bucket": self.bucket, "Key": full, "ResponseContentType": content_type,
                "ResponseContentDisposition": f'attachment; filename="{filename}"'})
        except Exception as err:  # noqa: BLE001
            raise self._fail("could not sign a URL for", key, err) from err


def _stream(body, chunk_size: int) -> Iterator[bytes]:
    try:
        yield from body.iter_chunks(chunk_size)
    finally:
        body.close()
