"""Storage settings are checked when the app starts, with a message naming the setting."""
from __future__ import annotations

import pytest

from app.config import load_config
from app.storage import LocalStorage, S3Storage, from_config


@pytest.mark.parametrize("url, message", [
    ("ftp://bucket/x", "KILN_STORAGE_URL must be empty"),
    ("/var/lib/kiln", "KILN_STORAGE_URL must be empty"),
    ("s3://", "must name a bucket"),
    ("s3://key:secret@bucket/x", "no credentials"),
    ("s3://bucket/a/../b", "invalid storage key"),
])
def test_bad_storage_url_stops_the_app(tmp_path, url, message):
    with pytest.raises(ValueError, match=message):
        load_config(tmp_path, {"KILN_STORAGE_URL": url, "SECRET_KEY": "x"})


def test_bad_endpoint_and_redirect_lifetime(tmp_path):
    with pytest.raises(ValueError, match="KILN_S3_ENDPOINT_URL must be an http"):
        load_config(tmp_path, {"KILN_S3_ENDPOINT_URL": "127.0.0.1:8333", "SECRET_KEY": "x"})
    with pytest.raises(ValueError, match="KILN_STORAGE_REDIRECT_SECONDS must be greater than 0"):
        load_config(tmp_path, {"KILN_STORAGE_REDIRECT_SECONDS": "0", "SECRET_KEY": "x"})


def test_create_app_refuses_a_bad_store(tmp_path, monkeypatch):
    from app import create_app

    monkeypatch.setenv("KILN_INSTANCE_PATH", str(tmp_path))
    monkeypatch.setenv("KILN_STORAGE_URL", "gs://bucket")
    with pytest.raises(ValueError, match="KILN_STORAGE_URL"):
        create_app({"SECRET_KEY": "x"})


def test_defaults_to_the_local_disk_and_parses_s3(tmp_path):
    config = load_config(tmp_path, {"SECRET_KEY": "x", "KILN_DATA_DIR": str(tmp_path / "d")})
    local = from_config(config)
    assert isinstance(local, LocalStorage) and not local.shared and local.root == (tmp_path / "d" / "artifacts")
    config = load_config(tmp_path, {"SECRET_KEY": "x", "KILN_STORAGE_URL": "s3://kiln-art/prod/eu/",
                                    "KILN_S3_ENDPOINT_URL": "https://s3.example.net"})
    s3 = from_config(config)
    assert isinstance(s3, S3Storage) and s3.shared
    assert (s3.bucket, s3.prefix, s3.endpoint_url) == ("kiln-art", "prod/eu", "https://s3.example.net")
    assert s3.describe() == "s3://kiln-art/prod/eu at https://s3.example.net"
