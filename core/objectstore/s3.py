"""S3-compatible backend (AWS S3, Cloudflare R2, Backblaze B2, MinIO) on a plain boto3 client.

Only widely supported calls are used (PutObject, multipart upload via s3transfer, HeadObject, GetObject,
ListObjectsV2, DeleteObjects, presigned GET). The SHA-256 travels as user metadata `sha256`, and
PutObject also sends it as `ChecksumSHA256` so a server that checks additional checksums rejects bytes
damaged in transit.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import logging
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from http.client import HTTPException
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from boto3.exceptions import S3UploadFailedError
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    IncompleteReadError,
    ResponseStreamingError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError
from urllib3.exceptions import HTTPError as URLLib3HTTPError

from core.keys import check_shareable, validate_key, validate_prefix
from core.objectstore.base import (
    ChecksumMismatch,
    ObjectInfo,
    ObjectNotFound,
    ObjectStore,
    ObjectStoreError,
    TransientStorageError,
    sha256_file,
)
from core.objectstore.retry import RetryPolicy, StoreRetry, StoreStats, fault_kind

T = TypeVar("T")

logger = logging.getLogger(__name__)

#: Files above this go up as multipart uploads, in parts of MULTIPART_PART_SIZE, MULTIPART_WORKERS at once.
MULTIPART_THRESHOLD = 8 * 1024 * 1024  # as s3transfer
MULTIPART_PART_SIZE = 8 * 1024 * 1024
MULTIPART_WORKERS = 4

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
_TRANSIENT_EXCEPTIONS = (
    BotoConnectionError,
    HTTPClientError,
    IncompleteReadError,
    ResponseStreamingError,
    # A body read goes straight to urllib3/http.client: a reset or stall mid-body surfaces as these.
    URLLib3HTTPError,
    HTTPException,
    ConnectionError,
    TimeoutError,
)


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
    if isinstance(exc, ObjectStoreError):
        return exc
    return ObjectStoreError(f"{action} {key!r} failed: {type(exc).__name__}")


def put_confirms(response: Any, data: bytes, checksum_sha256: str) -> bool:
    """Whether a single-part PutObject's response proves the server stored exactly `data`.

    Either the server echoes the SHA-256 it checked (`ChecksumSHA256`, AWS S3 and others that support
    additional checksums), or its ETag is the MD5 of `data` (S3, R2, B2, MinIO and moto for single-part
    uploads without SSE-KMS). Anything else (an ETag that is not the MD5, e.g. SSE-KMS) proves nothing:
    the caller confirms with a HEAD instead."""
    if not isinstance(response, dict):
        return False
    echoed = response.get("ChecksumSHA256")
    if echoed:
        return bool(echoed == checksum_sha256)
    etag = str(response.get("ETag") or "").strip('"').lower()
    return bool(etag) and etag == hashlib.md5(data, usedforsecurity=False).hexdigest()


def _as_utc(value: datetime) -> datetime:
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def disable_sdk_retries(client: Any) -> None:
    """Switch off botocore's retry handler on `client`, so the store's policy is the only retry layer.

    botocore registers its handler (legacy, standard or adaptive mode alike) under this unique id; without
    it a failed request is returned at once. Clients built elsewhere (dagster-aws S3Resource with
    max_attempts=5, a test's boto3.client) thus behave the same.
    """
    events = client.meta.events
    service = client.meta.service_model.service_id.hyphenize()
    events.unregister(f"needs-retry.{service}", unique_id=f"retry-config-{service}")


class _ResumableBody(io.RawIOBase):
    """A GetObject body that survives a reset or stall mid-body: it re-requests the rest with a Range
    request (If-Match the first response's ETag, so a replaced object is never spliced), within the
    store's retry policy. Failures are raised as the store's own errors."""

    def __init__(self, store: S3ObjectStore, key: str) -> None:
        super().__init__()
        self._store = store
        self._key = key
        self._position = 0
        self._etag: str | None = None
        self._length: int | None = None
        self._body: Any = None
        self._open()

    def _open(self) -> None:
        params: dict[str, Any] = {"Bucket": self._store.bucket, "Key": self._store._full(self._key)}
        if self._position:
            params["Range"] = f"bytes={self._position}-"
            if self._etag:
                params["IfMatch"] = self._etag
        response = self._store._run("get", self._key, lambda: self._store.client.get_object(**params))
        if self._etag is None:
            self._etag = response.get("ETag")
            self._length = int(response.get("ContentLength", 0))
        self._body = response["Body"]

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def read(self, size: int = -1) -> bytes:
        retry = self._store.retry
        started = retry.clock()
        attempt = 0
        while True:
            try:
                if self._length is not None and self._position >= self._length:
                    return b""
                data = self._body.read() if size is None or size < 0 else self._body.read(size)
                if self._length is not None and self._position + len(data) > self._length:
                    raise ObjectStoreError(f"get {self._key!r}: more bytes than the object holds")
                if not data and self._length is not None and self._position < self._length:
                    raise IncompleteReadError(actual_bytes=self._position, expected_bytes=self._length)
                if size is None or size < 0:
                    # A whole read may have been cut short and raised after consuming; keep reading.
                    chunks = [data]
                    self._position += len(data)
                    while self._length is not None and self._position < self._length:
                        more = self.read(1 << 20)
                        if not more:
                            break
                        chunks.append(more)
                    return b"".join(chunks)
                self._position += len(data)
                return data
            except Exception as exc:
                error = _map_error(exc, "get", self._key) if _is_store_failure(exc) else None
                if error is None or error is exc:
                    raise
                if not isinstance(error, TransientStorageError):
                    raise error from exc
                self._close_body()
                retry.wait(
                    f"get {self._key!r}", error, attempt, started, fault_kind(exc, error), resumed=True
                )
                attempt += 1
                self._open()

    def _close_body(self) -> None:
        try:
            if self._body is not None:
                self._body.close()
        except Exception:
            pass

    def close(self) -> None:
        self._close_body()
        super().close()


def _is_store_failure(exc: BaseException) -> bool:
    return isinstance(
        exc, (ClientError, BotoCoreError, S3UploadFailedError, ObjectStoreError, *_TRANSIENT_EXCEPTIONS)
    )


class S3ObjectStore(ObjectStore):
    """Object storage in one bucket, optionally under a key prefix shared by every object of this store.

    Every call runs under one retry policy (`policy`), the SDK's retries being switched off; `stats`
    counts requests, faults and retries for the run's metadata.
    """

    provider = "s3"
    multipart_threshold = MULTIPART_THRESHOLD
    part_size = MULTIPART_PART_SIZE

    def __init__(
        self,
        client: Any,
        bucket: str,
        prefix: str = "",
        *,
        policy: RetryPolicy | None = None,
        stats: StoreStats | None = None,
    ) -> None:
        if not bucket:
            raise ValueError("S3ObjectStore needs a bucket name")
        prefix = prefix.strip("/")
        if prefix:
            validate_key(prefix)
        disable_sdk_retries(client)
        self.client = client
        self.bucket = bucket
        self.prefix = prefix
        self.stats = stats or StoreStats()
        self.retry = StoreRetry(policy or RetryPolicy(), self.stats)

    def __repr__(self) -> str:  # the client holds credentials; never let it into a repr
        return f"S3ObjectStore(bucket={self.bucket!r}, prefix={self.prefix!r})"

    def _full(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _strip(self, full_key: str) -> str:
        return full_key[len(self.prefix) + 1 :] if self.prefix else full_key

    def _run(self, action: str, key: str, fn: Callable[[], T]) -> T:
        """One request under the retry policy; errors come out as the store's own."""

        def classify(exc: BaseException) -> ObjectStoreError:
            if _is_store_failure(exc):
                return _map_error(exc, action, key)
            raise exc

        return self.retry.call(f"{action} {key!r}", fn, classify)

    # -- writes -----------------------------------------------------------------------------------------

    def put_bytes(self, key: str, data: bytes, *, sha256: str, content_type: str) -> ObjectInfo:
        validate_key(key)
        digest = hashlib.sha256(data).digest()
        actual = digest.hex()
        if actual != sha256.lower():
            raise ChecksumMismatch(f"refusing to store {key!r}: data hashes to {actual}, not {sha256}")
        checksum = base64.b64encode(digest).decode("ascii")
        response = self._run(
            "put",
            key,
            lambda: self.client.put_object(
                Bucket=self.bucket,
                Key=self._full(key),
                Body=data,
                ContentType=content_type,
                Metadata={"sha256": actual},
                ChecksumSHA256=checksum,
            ),
        )
        # PutObject does not return LastModified; the client clock is close enough and saves a HEAD.
        return ObjectInfo(
            key, len(data), actual, content_type, datetime.now(UTC), put_confirms(response, data, checksum)
        )

    def put_file(self, key: str, path: Path, *, sha256: str, content_type: str) -> ObjectInfo:
        """Hash the file first (refusing a mismatch before any upload), then stream it up.

        Up to MULTIPART_THRESHOLD in one PutObject (SHA-256 checked by the server); larger files as a
        multipart upload whose parts go up in parallel, each part one request under the retry policy (a
        failed part is sent again, not the whole file). Because the file is read twice, a change between
        hashing and uploading is detected by its size/mtime and the object removed.
        """
        validate_key(key)
        path = Path(path)
        before = path.stat()
        actual = sha256_file(path)
        if actual != sha256.lower():
            raise ChecksumMismatch(f"refusing to store {key!r}: file hashes to {actual}, not {sha256}")
        if before.st_size <= self.multipart_threshold:
            digest = base64.b64encode(bytes.fromhex(actual)).decode("ascii")

            def put_once() -> Any:
                with path.open("rb") as body:
                    return self.client.put_object(
                        Bucket=self.bucket,
                        Key=self._full(key),
                        Body=body,
                        ContentType=content_type,
                        Metadata={"sha256": actual},
                        ChecksumSHA256=digest,
                    )

            self._run("put", key, put_once)
        else:
            self._put_multipart(key, path, before.st_size, actual, content_type)
        after = path.stat()
        if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
            self.delete_keys([key])
            raise ChecksumMismatch(f"{path.name} changed while it was uploaded to {key!r}; upload removed")
        return ObjectInfo(key, before.st_size, actual, content_type, datetime.now(UTC))

    def _put_multipart(self, key: str, path: Path, size: int, sha256: str, content_type: str) -> None:
        full_key = self._full(key)
        upload_id = self._run(
            "put",
            key,
            lambda: self.client.create_multipart_upload(
                Bucket=self.bucket, Key=full_key, ContentType=content_type, Metadata={"sha256": sha256}
            ),
        )["UploadId"]

        def part(number: int) -> dict[str, Any]:
            offset = (number - 1) * self.part_size

            def send() -> Any:
                with path.open("rb") as handle:
                    handle.seek(offset)
                    data = handle.read(self.part_size)
                md5 = hashlib.md5(data, usedforsecurity=False).digest()
                return self.client.upload_part(
                    Bucket=self.bucket,
                    Key=full_key,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=data,
                    ContentMD5=base64.b64encode(md5).decode("ascii"),
                )

            return {"PartNumber": number, "ETag": self._run("put", f"{key} part {number}", send)["ETag"]}

        count = max(1, -(-size // self.part_size))
        try:
            with ThreadPoolExecutor(MULTIPART_WORKERS) as pool:
                parts = list(pool.map(part, range(1, count + 1)))
            self._run(
                "put",
                key,
                lambda: self.client.complete_multipart_upload(
                    Bucket=self.bucket, Key=full_key, UploadId=upload_id, MultipartUpload={"Parts": parts}
                ),
            )
        except BaseException:
            with contextlib.suppress(Exception):
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=full_key, UploadId=upload_id)
            raise

    # -- reads ------------------------------------------------------------------------------------------

    def open_stream(self, key: str) -> BinaryIO:
        """A stream that resumes after a reset mid-body (Range request from the last byte received)."""
        validate_key(key)
        return io.BufferedReader(_ResumableBody(self, key), buffer_size=1 << 20)  # type: ignore[return-value]

    def get_bytes(self, key: str) -> bytes:
        validate_key(key)
        with _ResumableBody(self, key) as body:
            return body.read()

    def head(self, key: str) -> ObjectInfo | None:
        validate_key(key)
        try:
            response = self._run(
                "head", key, lambda: self.client.head_object(Bucket=self.bucket, Key=self._full(key))
            )
        except ObjectNotFound:
            return None
        metadata = {name.lower(): value for name, value in (response.get("Metadata") or {}).items()}
        return ObjectInfo(
            key=key,
            size=int(response["ContentLength"]),
            sha256=metadata.get("sha256"),
            content_type=response.get("ContentType"),
            last_modified=_as_utc(response["LastModified"]),
        )

    def list_objects(self, prefix: str = "", start_after: str | None = None) -> Iterator[ObjectInfo]:
        """Validated eagerly; pages are fetched lazily, each page under the retry policy. Listings carry
        no metadata, so sha256 is None."""
        validate_prefix(prefix)
        if start_after is not None:
            validate_prefix(start_after)
        return self._list(prefix, start_after)

    def _list(self, prefix: str, start_after: str | None) -> Iterator[ObjectInfo]:
        params: dict[str, Any] = {"Bucket": self.bucket, "Prefix": self._full(prefix)}
        if start_after is not None:
            params["StartAfter"] = self._full(start_after)
        while True:
            page = self._run("list", prefix, lambda p=dict(params): self.client.list_objects_v2(**p))
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
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return
            params.pop("StartAfter", None)
            params["ContinuationToken"] = token

    # -- deletes ----------------------------------------------------------------------------------------

    def _delete_batch(self, batch: list[str]) -> list[tuple[str, str]]:
        for key in batch:  # refuse the whole batch before deleting any of it
            validate_key(key)
        unique = list(dict.fromkeys(batch))
        response = self._run(
            "delete",
            f"{unique[0]} (+{len(unique) - 1} more)",
            lambda: self.client.delete_objects(
                Bucket=self.bucket,
                Delete={"Objects": [{"Key": self._full(key)} for key in unique], "Quiet": True},
            ),
        )
        errors: list[tuple[str, str]] = []
        for error in response.get("Errors", []):
            code = str(error.get("Code", "Unknown"))
            if code in _NOT_FOUND_CODES:
                continue  # already gone counts as deleted
            errors.append((self._strip(str(error.get("Key", ""))), f"{code}: {error.get('Message', '')}"))
        return errors

    # -- URLs -------------------------------------------------------------------------------------------

    def signed_url(self, key: str, expires_in_seconds: int = 3600) -> str:
        check_shareable(key)  # no presigned URL for the quarantine area
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
