"""S3-compatible backend (AWS S3, Cloudflare R2, Backblaze B2, MinIO) on a plain boto3 client.

Only widely supported calls are used (PutObject, multipart upload via s3transfer, HeadObject, GetObject,
ListObjectsV2, DeleteObjects, presigned GET). The SHA-256 travels as user metadata `sha256`, and
PutObject also sends it as `ChecksumSHA256` so a server that checks additional checksums rejects bytes
damaged in transit.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from boto3.exceptions import S3UploadFailedError
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    IncompleteReadError,
    ResponseStreamingError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from core.keys import validate_key, validate_prefix
from core.objectstore.base import (
    ChecksumMismatch,
    ObjectInfo,
    ObjectNotFound,
    ObjectStore,
    ObjectStoreError,
    TransientStorageError,
    sha256_file,
)

logger = logging.getLogger(__name__)

#: SigV4 presigned URLs cannot live longer than seven days.
MAX_SIGNED_URL_SECONDS = 7 * 24 * 3600

_NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound"})
_TRANSIENT_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequests",
        "TooManyRequestsException",
        "SlowDown",
        "RequestLimitExceeded",
        "ProvisionedThroughputExceededException",
        "BandwidthLimitExceeded",
        "InternalError",
        "ServiceUnavailable",
        "RequestTimeout",
        "RequestTimeoutException",
        "PriorRequestNotComplete",
    }
)
_CHECKSUM_CODES = frozenset({"BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch"})
_TRANSIENT_EXCEPTIONS = (BotoConnectionError, HTTPClientError, IncompleteReadError, ResponseStreamingError)


def _map_error(exc: BaseException, action: str, key: str) -> ObjectStoreError:
    """Translate a boto error into the store's errors; messages carry only the code and the server's text.

    `str(ClientError)` is also just code + message, but building the text here keeps request details
    (headers, signatures, access key ids some servers echo in the error body) out of logs for sure.
    """
    if isinstance(exc, S3UploadFailedError):
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, ClientError | BotoCoreError):
            return _map_error(cause, action, key)
        return ObjectStoreError(f"{action} {key!r} failed: upload failed")
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", "Unknown"))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        message = f"{action} {key!r} failed: {code} (HTTP {status or '?'}): {error.get('Message', '')}"
        if code in _NOT_FOUND_CODES:  # not any 404: NoSuchBucket is a configuration error, not absence
            return ObjectNotFound(f"no object at {key!r}")
        if code in _CHECKSUM_CODES:
            return ChecksumMismatch(message)
        if code in _TRANSIENT_CODES or status == 429 or status >= 500:
            return TransientStorageError(message)
        return ObjectStoreError(message)
    if isinstance(exc, _TRANSIENT_EXCEPTIONS):
        return TransientStorageError(f"{action} {key!r} failed: {type(exc).__name__}")
    return ObjectStoreError(f"{action} {key!r} failed: {type(exc).__name__}")


def _as_utc(value: datetime) -> datetime:
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


class S3ObjectStore(ObjectStore):
    """Object storage in one bucket, optionally under a key prefix shared by every object of this store."""

    provider = "s3"

    def __init__(self, client: Any, bucket: str, prefix: str = "") -> None:
        if not bucket:
            raise ValueError("S3ObjectStore needs a bucket name")
        prefix = prefix.strip("/")
        if prefix:
            validate_key(prefix)
        self.client = client
        self.bucket = bucket
        self.prefix = prefix

    def __repr__(self) -> str:  # the client holds credentials; never let it into a repr
        return f"S3ObjectStore(bucket={self.bucket!r}, prefix={self.prefix!r})"

    def _full(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _strip(self, full_key: str) -> str:
        return full_key[len(self.prefix) + 1 :] if self.prefix else full_key

    # -- writes -----------------------------------------------------------------------------------------

    def put_bytes(self, key: str, data: bytes, *, sha256: str, content_type: str) -> ObjectInfo:
        validate_key(key)
        digest = hashlib.sha256(data).digest()
        actual = digest.hex()
        if actual != sha256.lower():
            raise ChecksumMismatch(f"refusing to store {key!r}: data hashes to {actual}, not {sha256}")
        try:
            self.client.put_object(
                Bucket=self.bucket,
                Key=self._full(key),
                Body=data,
                ContentType=content_type,
                Metadata={"sha256": actual},
                ChecksumSHA256=base64.b64encode(digest).decode("ascii"),
            )
        except (ClientError, BotoCoreError) as exc:
            raise _map_error(exc, "put", key) from exc
        # PutObject does not return LastModified; the client clock is close enough and saves a HEAD.
        return ObjectInfo(key, len(data), actual, content_type, datetime.now(UTC))

    def put_file(self, key: str, path: Path, *, sha256: str, content_type: str) -> ObjectInfo:
        """Hash the file first (refusing a mismatch before any upload), then stream it with s3transfer.

        Large files go up as a multipart upload, whose parts the SDK checksums; because the file is read
        twice, a change between hashing and uploading is detected by its size/mtime and the object removed.
        """
        validate_key(key)
        path = Path(path)
        before = path.stat()
        actual = sha256_file(path)
        if actual != sha256.lower():
            raise ChecksumMismatch(f"refusing to store {key!r}: file hashes to {actual}, not {sha256}")
        full_key = self._full(key)
        try:
            self.client.upload_file(
                str(path),
                self.bucket,
                full_key,
                ExtraArgs={"Metadata": {"sha256": actual}, "ContentType": content_type},
            )
        except (ClientError, BotoCoreError, S3UploadFailedError) as exc:
            raise _map_error(exc, "put", key) from exc
        after = path.stat()
        if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
            self.delete_keys([key])
            raise ChecksumMismatch(f"{path.name} changed while it was uploaded to {key!r}; upload removed")
        return ObjectInfo(key, before.st_size, actual, content_type, datetime.now(UTC))

    # -- reads ------------------------------------------------------------------------------------------

    def open_stream(self, key: str) -> BinaryIO:
        validate_key(key)
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._full(key))
        except (ClientError, BotoCoreError) as exc:
            raise _map_error(exc, "get", key) from exc
        body: BinaryIO = response["Body"]
        return body

    def get_bytes(self, key: str) -> bytes:
        with self.open_stream(key) as body:
            try:
                return body.read()
            except (ClientError, BotoCoreError) as exc:
                raise _map_error(exc, "get", key) from exc

    def head(self, key: str) -> ObjectInfo | None:
        validate_key(key)
        try:
            response = self.client.head_object(Bucket=self.bucket, Key=self._full(key))
        except (ClientError, BotoCoreError) as exc:
            error = _map_error(exc, "head", key)
            if isinstance(error, ObjectNotFound):
                return None
            raise error from exc
        metadata = {name.lower(): value for name, value in (response.get("Metadata") or {}).items()}
        return ObjectInfo(
            key=key,
            size=int(response["ContentLength"]),
            sha256=metadata.get("sha256"),
            content_type=response.get("ContentType"),
            last_modified=_as_utc(response["LastModified"]),
        )

    def list_objects(self, prefix: str = "", start_after: str | None = None) -> Iterator[ObjectInfo]:
        """Validated eagerly; pages are fetched lazily. Listings carry no metadata, so sha256 is None."""
        validate_prefix(prefix)
        if start_after is not None:
            validate_prefix(start_after)
        return self._list(prefix, start_after)

    def _list(self, prefix: str, start_after: str | None) -> Iterator[ObjectInfo]:
        params: dict[str, Any] = {"Bucket": self.bucket, "Prefix": self._full(prefix)}
        if start_after is not None:
            params["StartAfter"] = self._full(start_after)
        pages = self.client.get_paginator("list_objects_v2").paginate(**params)
        try:
            for page in pages:
                for item in page.get("Contents", []):
                    key = self._strip(item["Key"])
                    try:
                        validate_key(key)
                    except ValueError:
                        # Written behind the store's back; every other method would refuse it anyway.
                        logger.warning("skipping object with an invalid key in listing: %r", key[:200])
                        continue
                    yield ObjectInfo(
                        key=key,
                        size=int(item["Size"]),
                        sha256=None,
                        content_type=None,
                        last_modified=_as_utc(item["LastModified"]),
                    )
        except (ClientError, BotoCoreError) as exc:
            raise _map_error(exc, "list", prefix) from exc

    # -- deletes ----------------------------------------------------------------------------------------

    def _delete_batch(self, batch: list[str]) -> list[tuple[str, str]]:
        for key in batch:  # refuse the whole batch before deleting any of it
            validate_key(key)
        unique = list(dict.fromkeys(batch))
        try:
            response = self.client.delete_objects(
                Bucket=self.bucket,
                Delete={"Objects": [{"Key": self._full(key)} for key in unique], "Quiet": True},
            )
        except (ClientError, BotoCoreError) as exc:
            raise _map_error(exc, "delete", f"{unique[0]} (+{len(unique) - 1} more)") from exc
        errors: list[tuple[str, str]] = []
        for error in response.get("Errors", []):
            code = str(error.get("Code", "Unknown"))
            if code in _NOT_FOUND_CODES:
                continue  # already gone counts as deleted
            errors.append((self._strip(str(error.get("Key", ""))), f"{code}: {error.get('Message', '')}"))
        return errors

    # -- URLs -------------------------------------------------------------------------------------------

    def signed_url(self, key: str, expires_in_seconds: int = 3600) -> str:
        validate_key(key)
        if not 0 < expires_in_seconds <= MAX_SIGNED_URL_SECONDS:
            raise ValueError(
                f"expires_in_seconds must be between 1 and {MAX_SIGNED_URL_SECONDS}, got {expires_in_seconds}"
            )
        try:
            url: str = self.client.generate_presigned_url(
                "get_object",
                Params={"Bucket": self.bucket, "Key": self._full(key)},
                ExpiresIn=expires_in_seconds,
            )
        except (ClientError, BotoCoreError) as exc:
            raise _map_error(exc, "sign", key) from exc
        return url
