"""Where a build's files are kept: the local disk (the default) or an S3-compatible bucket, behind one interface.

Like the engine this is a library with no Flask imports: `from_config` takes the app's settings (app/config.py)
and returns a `Storage`. Keys are '/'-separated paths (`<org>/<build>/<file>`, `results/<...>.json`); the
backend maps them onto a directory or onto `s3://bucket/prefix/<key>`.
"""
from __future__ import annotations

from typing import Mapping

from .base import ObjectMissing, Storage, StorageError, check_key
from .local import LocalStorage
from .s3 import S3Storage, parse_s3_url

__all__ = ["LocalStorage", "ObjectMissing", "S3Storage", "Storage", "StorageError", "check_key", "from_config",
           "parse_s3_url"]


def from_config(config: Mapping) -> Storage:
    """KILN_STORAGE_URL empty: files under KILN_ARTIFACTS_DIR; s3://bucket/prefix: that bucket (KILN_S3_ENDPOINT_URL
    for stores other than AWS; credentials the standard AWS way, e.g. AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)."""
    url = (config.get("KILN_STORAGE_URL") or "").strip()
    if not url:
        return LocalStorage(config["KILN_ARTIFACTS_DIR"])
    bucket, prefix = parse_s3_url(url)
    return S3Storage(bucket, prefix, endpoint_url=config.get("KILN_S3_ENDPOINT_URL") or None,
                     region=config.get("KILN_S3_REGION") or None)
