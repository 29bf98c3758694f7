"""Both backends behind the one interface: the same behaviour on the local disk and on a real S3 server."""
from __future__ import annotations

import hashlib
import urllib.request

import pytest

from app.storage import LocalStorage, ObjectMissing, StorageError, from_config

DATA = bytes(range(256)) * 4096  # 1 MiB, every offset distinguishable


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path):
    if request.param == "local":
        return LocalStorage(tmp_path / "artifacts")
    return request.getfixturevalue("s3_store")


def test_round_trip_sizes_and_ranges(store, tmp_path):
    source = tmp_path / "image.iso"
    source.write_bytes(DATA)
    store.put_file("org/build/image.iso", source)
    store.put_bytes("org/build/meta.json", b'{"a": 1}')
    assert store.size("org/build/image.iso") == len(DATA)
    assert store.size("org/build/missing") is None
    assert store.get_bytes("org/build/meta.json") == b'{"a": 1}'
    store.get_file("org/build/image.iso", tmp_path / "out" / "copy.iso")
    assert hashlib.sha256((tmp_path / "out" / "copy.iso").read_bytes()).digest() == hashlib.sha256(DATA).digest()
    assert b"".join(store.iter_range("org/build/image.iso")) == DATA
    assert b"".join(store.iter_range("org/build/image.iso", 1000, 300_000, chunk_size=4096)) == DATA[1000:300_001]
    assert b"".join(store.iter_range("org/build/image.iso", len(DATA) - 3)) == DATA[-3:]
    store.put_bytes("org/build/meta.json", b"replaced")
    assert store.get_bytes("org/build/meta.json") == b"replaced"


def test_missing_objects_are_object_missing(store, tmp_path):
    with pytest.raises(ObjectMissing):
        store.get_bytes("nope/x")
    with pytest.raises(ObjectMissing):
        store.get_file("nope/x", tmp_path / "x")
    assert not (tmp_path / "x").exists() and not list(tmp_path.glob(".x.*"))
    with pytest.raises(ObjectMissing):
        b"".join(store.iter_range("nope/x"))
    store.delete("nope/x")  # deleting what is gone is fine


def test_delete_prefix_removes_one_build_only(store):
    for key in ("o1/b1/a.iso", "o1/b1/build.log", "o1/b10/a.iso", "o1/b2/a.iso", "results/h-iso-r2.json"):
        store.put_bytes(key, key.encode())
    assert store.delete_prefix("o1/b1/") == 2
    assert store.size("o1/b1/a.iso") is None and store.size("o1/b1/build.log") is None
    assert store.size("o1/b10/a.iso") == len(b"o1/b10/a.iso") and store.size("o1/b2/a.iso") is not None
    assert store.delete_prefix("o1/nothing/") == 0
    store.delete("o1/b2/a.iso")
    assert store.size("o1/b2/a.iso") is None


@pytest.mark.parametrize("key", ["", "/abs", "a/../b", "a//b", "../x", "a/./b", "a\\b", "a/\x00b"])
def test_keys_cannot_escape(store, key):
    with pytest.raises(ValueError):
        store.put_bytes(key, b"x")


def test_presigned_url_is_a_working_short_lived_download(s3_store, tmp_path):
    s3_store.put_bytes("o/b/kiln.iso", DATA[:5000])
    url = s3_store.presigned_url("o/b/kiln.iso", "kiln.iso", "application/x-iso9660-image", 60)
    assert "X-Amz-Expires=60" in url and "X-Amz-Signature=" in url
    with urllib.request.urlopen(url, timeout=10) as resp:
        assert resp.read() == DATA[:5000]
        assert 'filename="kiln.iso"' in resp.headers["Content-Disposition"]
    tampered = url.replace("X-Amz-Expires=60", "X-Amz-Expires=600")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(tampered, timeout=10)
    assert refused.value.code == 403
    assert LocalStorage(tmp_path).presigned_url("o/b/kiln.iso", "kiln.iso", "x", 60) is None


def test_unreachable_store_is_a_storage_error(s3_env):
    from tests.fixtures.services import free_port

    store = from_config({"KILN_STORAGE_URL": "s3://kiln-storage-tests/x",
                         "KILN_S3_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}", "KILN_ARTIFACTS_DIR": "/x"})
    with pytest.raises(StorageError, match="could not upload o/b/x.*127.0.0.1"):
        store.put_bytes("o/b/x", b"x")


def test_wrong_credentials_are_a_storage_error_naming_the_key(s3_store, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")
    fresh = from_config({"KILN_STORAGE_URL": f"s3://kiln-storage-tests/{s3_store.prefix}",
                         "KILN_S3_ENDPOINT_URL": s3_store.endpoint_url, "KILN_ARTIFACTS_DIR": "/x"})
    with pytest.raises(StorageError, match="could not upload o/b/x") as refused:
        fresh.put_bytes("o/b/x", b"x")
    assert not isinstance(refused.value, ObjectMissing)


def test_copy_inside_the_store(store):
    store.put_bytes("o/b1/image.tar", DATA)
    store.copy("o/b1/image.tar", "o/b2/image.tar")
    assert store.get_bytes("o/b2/image.tar") == DATA
    store.delete_prefix("o/b1/")
    assert store.get_bytes("o/b2/image.tar") == DATA
    with pytest.raises(ObjectMissing):
        store.copy("o/b1/image.tar", "o/b3/image.tar")
