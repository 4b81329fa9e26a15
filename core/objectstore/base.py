"""The one object-storage contract every capability uses; backends: local filesystem and S3-compatible.

Every object carries its SHA-256 (S3 user metadata `sha256`; a sidecar on the local backend) so it can
be re-verified at any time. Keys are validated by `core.keys` before any backend sees them.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

#: S3 DeleteObjects accepts at most this many keys per request.
DELETE_BATCH_SIZE = 1000


class ObjectStoreError(Exception):
    """A storage operation failed."""


class TransientStorageError(ObjectStoreError):
    """A failure worth retrying (throttling, 5xx, connection reset)."""


class ObjectNotFound(ObjectStoreError):
    """The key does not exist."""


class ChecksumMismatch(ObjectStoreError):
    """Stored bytes do not hash to the expected SHA-256."""


@dataclass(frozen=True)
class ObjectInfo:
    """What a HEAD or a listing tells about one object."""

    key: str
    size: int
    sha256: str | None
    content_type: str | None
    last_modified: datetime
    #: Set by a write whose response proved the server holds exactly these bytes (S3: the PutObject
    #: ETag equals the MD5 of what was sent, or the server returned the SHA-256 we computed), so no
    #: confirming HEAD is needed. False means "not proven by the write": confirm with a HEAD.
    confirmed: bool = False


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


class ObjectStore(ABC):
    """Backend-neutral object storage. All keys are relative to the store's own prefix."""

    #: short name for metadata and cost reports ("local", "s3")
    provider: str

    @abstractmethod
    def put_bytes(self, key: str, data: bytes, *, sha256: str, content_type: str) -> ObjectInfo:
        """Write `data` under `key`, recording `sha256`; the backend checks the digest on the way in."""

    @abstractmethod
    def put_file(self, key: str, path: Path, *, sha256: str, content_type: str) -> ObjectInfo:
        """Stream a (possibly large) local file to `key` without loading it into memory."""

    @abstractmethod
    def get_bytes(self, key: str) -> bytes:
        """Read a whole object (raises ObjectNotFound)."""

    @abstractmethod
    def open_stream(self, key: str) -> BinaryIO:
        """A readable stream of the object's bytes, for large objects (caller closes it)."""

    @abstractmethod
    def head(self, key: str) -> ObjectInfo | None:
        """Size, recorded checksum, type and time of `key`, or None when absent."""

    @abstractmethod
    def list_objects(self, prefix: str = "", start_after: str | None = None) -> Iterator[ObjectInfo]:
        """Objects under `prefix` in ascending key order, strictly after `start_after` when given."""

    def delete_keys(self, keys: Iterable[str]) -> list[tuple[str, str]]:
        """Delete keys in batches of at most DELETE_BATCH_SIZE; returns (key, error) for failures.

        A key that is already absent counts as deleted, so an interrupted sweep can simply rerun.
        """
        errors: list[tuple[str, str]] = []
        batch: list[str] = []
        for key in keys:
            batch.append(key)
            if len(batch) == DELETE_BATCH_SIZE:
                errors.extend(self._delete_batch(batch))
                batch = []
        if batch:
            errors.extend(self._delete_batch(batch))
        return errors

    @abstractmethod
    def _delete_batch(self, batch: list[str]) -> list[tuple[str, str]]:
        """Delete at most DELETE_BATCH_SIZE keys (one S3 DeleteObjects request); validate all first."""

    @abstractmethod
    def signed_url(self, key: str, expires_in_seconds: int = 3600) -> str:
        """A time-limited URL for reading `key`."""

    def exists(self, key: str) -> bool:
        return self.head(key) is not None

    def download_to(self, key: str, path: Path, chunk_size: int = 1 << 20) -> str:
        """Stream `key` into `path`; return the SHA-256 of the bytes written."""
        digest = hashlib.sha256()
        with self.open_stream(key) as source, path.open("wb") as target:
            while chunk := source.read(chunk_size):
                digest.update(chunk)
                target.write(chunk)
        return digest.hexdigest()

    def verify(self, key: str, expected_sha256: str | None = None) -> bool:
        """Re-read the stored bytes and compare with `expected_sha256` (default: the recorded one)."""
        info = self.head(key)
        if info is None:
            return False
        expected = expected_sha256 or info.sha256
        if expected is None:
            return False
        digest = hashlib.sha256()
        with self.open_stream(key) as source:
            while chunk := source.read(1 << 20):
                digest.update(chunk)
        return digest.hexdigest() == expected and (info.sha256 is None or info.sha256 == expected)
