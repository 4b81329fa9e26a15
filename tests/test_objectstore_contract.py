"""One contract, two backends: every ObjectStore must behave the same on a real filesystem and real S3 API.

The S3 side talks HTTP to moto's standalone server (tests/conftest.py), through the same boto3 client
type production uses.
"""

from __future__ import annotations

import hashlib
import os
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from core.keys import InvalidKeyError
from core.objectstore.base import (
    DELETE_BATCH_SIZE,
    ChecksumMismatch,
    ObjectNotFound,
    ObjectStore,
    ObjectStoreError,
    sha256_hex,
)
from core.objectstore.local import LocalObjectStore
from core.objectstore.s3 import S3ObjectStore
from core.signing import verify_signed_url
from tests.support.services import s3_client

SECRET = "contract-test-secret"
S3_PREFIX = "media"


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    if request.param == "local":
        return LocalObjectStore(tmp_path / "store", signing_secret=SECRET)
    endpoint = request.getfixturevalue("s3_endpoint")
    bucket = request.getfixturevalue("s3_bucket")
    return S3ObjectStore(s3_client(endpoint), bucket, prefix=S3_PREFIX)


def put(store: ObjectStore, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
    store.put_bytes(key, data, sha256=sha256_hex(data), content_type=content_type)


def overwrite_behind_the_stores_back(store: ObjectStore, key: str, data: bytes) -> None:
    """Simulate bit rot / a rogue writer: replace the bytes but leave the recorded checksum alone."""
    if isinstance(store, LocalObjectStore):
        (store.root / key).write_bytes(data)
        return
    assert isinstance(store, S3ObjectStore)
    full_key = f"{S3_PREFIX}/{key}"
    old = store.client.head_object(Bucket=store.bucket, Key=full_key)
    store.client.put_object(Bucket=store.bucket, Key=full_key, Body=data, Metadata=old["Metadata"])


def all_files(root: Path) -> list[Path]:
    return [path for path in root.rglob("*") if path.is_file()]


# -- writes and reads -------------------------------------------------------------------------------------


def test_put_bytes_round_trips_and_head_reports_size_type_and_recorded_sha256(store: ObjectStore) -> None:
    data = b"\x89PNG fake image bytes" * 100
    info = store.put_bytes(
        "originals/ab/cd/photo.png", data, sha256=sha256_hex(data), content_type="image/png"
    )

    assert info.key == "originals/ab/cd/photo.png"
    assert info.size == len(data)
    assert info.sha256 == sha256_hex(data)
    assert store.get_bytes("originals/ab/cd/photo.png") == data
    head = store.head("originals/ab/cd/photo.png")
    assert head is not None
    assert (head.key, head.size, head.sha256, head.content_type) == (
        "originals/ab/cd/photo.png",
        len(data),
        sha256_hex(data),
        "image/png",
    )
    assert head.last_modified.tzinfo is not None
    assert store.exists("originals/ab/cd/photo.png")


def test_put_bytes_overwrites_an_existing_key(store: ObjectStore) -> None:
    put(store, "k/obj", b"first")
    put(store, "k/obj", b"second version")

    assert store.get_bytes("k/obj") == b"second version"
    head = store.head("k/obj")
    assert head is not None and head.sha256 == sha256_hex(b"second version")


def test_wrong_sha256_is_refused_and_nothing_is_stored(store: ObjectStore, tmp_path: Path) -> None:
    wrong = sha256_hex(b"something else")
    source = tmp_path / "upload.bin"
    source.write_bytes(b"file payload")

    with pytest.raises(ChecksumMismatch):
        store.put_bytes("k/bytes", b"payload", sha256=wrong, content_type="text/plain")
    with pytest.raises(ChecksumMismatch):
        store.put_file("k/file", source, sha256=wrong, content_type="text/plain")

    assert store.head("k/bytes") is None
    assert store.head("k/file") is None
    assert list(store.list_objects()) == []
    if isinstance(store, LocalObjectStore):
        assert all_files(store.root) == []  # no temp file or sidecar left behind either


def test_put_file_streams_a_12mb_file_and_download_to_returns_the_same_sha256(
    store: ObjectStore, tmp_path: Path
) -> None:
    source = tmp_path / "big.bin"
    block = os.urandom(1 << 20)
    with source.open("wb") as handle:
        for index in range(12):
            handle.write(bytes([index]) + block[1:])
    expected = hashlib.sha256(source.read_bytes()).hexdigest()

    info = store.put_file("originals/big.bin", source, sha256=expected, content_type="video/mp4")
    target = tmp_path / "downloaded.bin"

    assert info.size == 12 << 20
    assert store.download_to("originals/big.bin", target) == expected
    assert target.stat().st_size == 12 << 20
    head = store.head("originals/big.bin")
    assert head is not None and (head.sha256, head.size) == (expected, 12 << 20)
    if isinstance(store, S3ObjectStore):  # a multipart upload's ETag is "<md5 of part md5s>-<part count>"
        raw = store.client.head_object(Bucket=store.bucket, Key=f"{S3_PREFIX}/originals/big.bin")
        assert "-" in raw["ETag"]


def test_verify_is_true_for_intact_bytes_and_false_once_they_are_corrupted(store: ObjectStore) -> None:
    data = b"precious original" * 1000
    put(store, "originals/precious.jpg", data)

    assert store.verify("originals/precious.jpg") is True
    assert store.verify("originals/precious.jpg", sha256_hex(data)) is True

    overwrite_behind_the_stores_back(store, "originals/precious.jpg", b"X" + data[1:])

    assert store.verify("originals/precious.jpg") is False
    assert store.verify("originals/precious.jpg", sha256_hex(data)) is False
    assert store.verify("originals/missing.jpg") is False


def test_open_stream_reads_the_object_in_chunks(store: ObjectStore) -> None:
    data = bytes(range(256)) * 64
    put(store, "k/stream", data)

    with store.open_stream("k/stream") as stream:
        chunks = list(iter(lambda: stream.read(1000), b""))

    assert b"".join(chunks) == data
    assert len(chunks) > 1


# -- absence ----------------------------------------------------------------------------------------------


def test_head_of_a_missing_key_is_none(store: ObjectStore) -> None:
    assert store.head("nothing/here") is None
    assert store.exists("nothing/here") is False


def test_reading_a_missing_key_raises_object_not_found(store: ObjectStore) -> None:
    with pytest.raises(ObjectNotFound):
        store.get_bytes("nothing/here")
    with pytest.raises(ObjectNotFound):
        store.open_stream("nothing/here")


def test_a_prefix_of_stored_keys_is_not_itself_an_object(store: ObjectStore) -> None:
    put(store, "dir/child", b"x")

    assert store.head("dir") is None
    with pytest.raises(ObjectNotFound):
        store.get_bytes("dir")


# -- listing ----------------------------------------------------------------------------------------------

# Chosen so a naive directory walk would disagree with S3's byte order: '-' and '.' sort before '/'.
LISTING_KEYS = ["b/1", "a/b", "a-c", "a.txt", "a0/x", "a/a/z", "ab", "a/b0", "A/upper"]


def test_list_objects_yields_every_key_once_in_ascending_byte_order(store: ObjectStore) -> None:
    for key in LISTING_KEYS:
        put(store, key, key.encode())

    listed = list(store.list_objects())

    assert [info.key for info in listed] == sorted(LISTING_KEYS)
    assert all(info.size == len(info.key) for info in listed)


def test_list_objects_is_lazy_and_validates_its_arguments_immediately(store: ObjectStore) -> None:
    put(store, "a/b", b"x")

    iterator = store.list_objects()
    assert next(iterator).key == "a/b"
    with pytest.raises(InvalidKeyError):
        store.list_objects(prefix="../")  # raised at the call, before any iteration


@pytest.mark.parametrize(
    ("prefix", "start_after", "expected"),
    [
        ("a/", None, ["a/a/z", "a/b", "a/b0"]),
        ("a", None, ["a-c", "a.txt", "a/a/z", "a/b", "a/b0", "a0/x", "ab"]),
        ("a/b", None, ["a/b", "a/b0"]),
        ("zzz", None, []),
        ("", "a/b", ["a/b0", "a0/x", "ab", "b/1"]),
        ("", "a/a", ["a/a/z", "a/b", "a/b0", "a0/x", "ab", "b/1"]),
        ("", "a-", ["a-c", "a.txt", "a/a/z", "a/b", "a/b0", "a0/x", "ab", "b/1"]),
        ("a/", "a/a/z", ["a/b", "a/b0"]),
        ("", "b/1", []),
    ],
)
def test_list_objects_honours_prefix_and_start_after(
    store: ObjectStore, prefix: str, start_after: str | None, expected: list[str]
) -> None:
    for key in LISTING_KEYS:
        put(store, key, key.encode())

    assert [info.key for info in store.list_objects(prefix, start_after)] == expected


# -- deleting ---------------------------------------------------------------------------------------------


def _put_many(store: ObjectStore, keys: list[str]) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda key: put(store, key, key.encode()), keys))


def test_delete_keys_removes_2500_keys_in_batches_and_absent_keys_count_as_deleted(
    store: ObjectStore,
) -> None:
    keys = [f"bulk/{index:05d}" for index in range(2500)]
    _put_many(store, keys)
    put(store, "keep/me", b"survivor")
    assert [info.key for info in store.list_objects("bulk/")] == keys  # pages through > 1000 on S3

    errors = store.delete_keys(key for key in [*keys, "bulk/never-existed", "other/absent"])

    assert errors == []
    assert list(store.list_objects("bulk/")) == []
    assert store.get_bytes("keep/me") == b"survivor"
    assert store.delete_keys(keys[:10]) == []  # rerunning an interrupted sweep is harmless


def test_s3_delete_keys_sends_at_most_one_batch_of_keys_per_request(s3_endpoint: str, s3_bucket: str) -> None:
    store = S3ObjectStore(s3_client(s3_endpoint), s3_bucket, prefix=S3_PREFIX)
    request_sizes: list[int] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        request_sizes.append(len(params["Delete"]["Objects"]))

    store.client.meta.events.register("provide-client-params.s3.DeleteObjects", record)
    errors = store.delete_keys(f"gone/{index}" for index in range(2 * DELETE_BATCH_SIZE + 500))

    assert errors == []
    assert request_sizes == [DELETE_BATCH_SIZE, DELETE_BATCH_SIZE, 500]


# -- hostile keys -----------------------------------------------------------------------------------------

HOSTILE_KEYS = [
    "../x",
    "/etc/passwd",
    "a/../../b",
    "a\x00b",
    "a\nb",
    "a" * 2000,
    ".meta/x",
    "",
    "a\\b",
    "a//b",
]

METHODS: dict[str, Callable[[ObjectStore, str, Path], object]] = {
    "put_bytes": lambda s, k, f: s.put_bytes(k, b"x", sha256=sha256_hex(b"x"), content_type="text/plain"),
    "put_file": lambda s, k, f: s.put_file(k, f, sha256=sha256_hex(b"x"), content_type="text/plain"),
    "get_bytes": lambda s, k, f: s.get_bytes(k),
    "open_stream": lambda s, k, f: s.open_stream(k),
    "head": lambda s, k, f: s.head(k),
    "exists": lambda s, k, f: s.exists(k),
    "verify": lambda s, k, f: s.verify(k),
    "download_to": lambda s, k, f: s.download_to(k, f.with_name("out.bin")),
    "list_objects_prefix": lambda s, k, f: s.list_objects(prefix=k or "/"),
    "list_objects_start_after": lambda s, k, f: s.list_objects(start_after=k or "/"),
    "delete_keys": lambda s, k, f: s.delete_keys(["fine/key", k]),
    "signed_url": lambda s, k, f: s.signed_url(k),
}


@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_refuses_every_hostile_key(store: ObjectStore, tmp_path: Path, method: str) -> None:
    source = tmp_path / "x.bin"
    source.write_bytes(b"x")
    put(store, "fine/key", b"still here")

    for key in HOSTILE_KEYS:
        with pytest.raises(InvalidKeyError):
            METHODS[method](store, key, source)

    assert [info.key for info in store.list_objects()] == ["fine/key"]  # nothing written, nothing deleted
    assert not (tmp_path / "out.bin").exists()


# -- signed URLs ------------------------------------------------------------------------------------------


def test_signed_url_grants_read_access_to_the_object(store: ObjectStore) -> None:
    data = b"shared media bytes"
    put(store, "originals/shared.bin", data)

    url = store.signed_url("originals/shared.bin", expires_in_seconds=300)

    if isinstance(store, S3ObjectStore):
        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.read() == data
    else:
        assert url.startswith("http://localhost:8080/media/originals/shared.bin?")
        assert verify_signed_url(url, SECRET) == "originals/shared.bin"


# -- backend specifics ------------------------------------------------------------------------------------


def test_local_store_keeps_sidecars_under_meta_and_lists_neither_them_nor_temp_files(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "store", signing_secret=SECRET)
    put(store, "a/b.txt", b"hello", content_type="text/plain")
    (store.root / "a" / ".tmp-leftover").write_bytes(b"crashed write")

    sidecar = store.root / ".meta" / "a" / "b.txt.json"
    assert sidecar.is_file()
    assert sha256_hex(b"hello") in sidecar.read_text()
    assert [info.key for info in store.list_objects()] == ["a/b.txt"]
    listed = next(store.list_objects())
    assert (listed.sha256, listed.content_type) == (sha256_hex(b"hello"), "text/plain")

    assert store.delete_keys(["a/b.txt"]) == []
    assert not sidecar.exists()


def test_local_store_refuses_a_key_that_resolves_outside_its_root_through_a_symlink(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    store = LocalObjectStore(tmp_path / "store", signing_secret=SECRET)
    (store.root / "escape").symlink_to(outside, target_is_directory=True)

    with pytest.raises(ObjectStoreError, match="outside the store root"):
        put(store, "escape/x", b"x")
    with pytest.raises(ObjectStoreError, match="outside the store root"):
        store.get_bytes("escape/x")
    assert list(outside.iterdir()) == []

    (outside / "x").write_bytes(b"not the store's")
    [(key, error)] = store.delete_keys(["escape/x"])
    assert key == "escape/x" and "outside the store root" in error
    assert (outside / "x").read_bytes() == b"not the store's"


def test_local_store_deletes_through_a_symlink_that_stays_inside_its_root(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "store", signing_secret=SECRET)
    put(store, "real/x", b"x")
    (store.root / "alias").symlink_to(store.root / "real", target_is_directory=True)

    assert store.delete_keys(["alias/x", "missing/dir/y"]) == []
    assert not (store.root / "real" / "x").exists()


def test_local_store_needs_a_signing_secret(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="signing_secret"):
        LocalObjectStore(tmp_path, signing_secret="")


def test_s3_store_keeps_every_object_under_its_prefix(s3_endpoint: str, s3_bucket: str) -> None:
    client = s3_client(s3_endpoint)
    store = S3ObjectStore(client, s3_bucket, prefix=S3_PREFIX)
    client.put_object(Bucket=s3_bucket, Key="elsewhere/foreign", Body=b"not ours")

    put(store, "a/b", b"x")

    raw_keys = [item["Key"] for item in client.list_objects_v2(Bucket=s3_bucket)["Contents"]]
    assert raw_keys == ["elsewhere/foreign", "media/a/b"]
    assert [info.key for info in store.list_objects()] == ["a/b"]
    assert client.head_object(Bucket=s3_bucket, Key="media/a/b")["Metadata"] == {"sha256": sha256_hex(b"x")}
