"""The S3 store under a failing server: one retry layer, resumed body reads, store errors, counted faults."""

from __future__ import annotations

import hashlib
import os

import pytest

from core.objectstore.base import ObjectStoreError
from core.objectstore.retry import StoreStats, StoreUnavailable
from tests.support.faults import fault_proxy, flaky_s3_store


def _put(store, key: str, data: bytes) -> None:
    store.put_bytes(
        key, data, sha256=hashlib.sha256(data).hexdigest(), content_type="application/octet-stream"
    )


def test_reset_mid_body_resumes_from_the_last_byte_and_every_read_returns_the_right_bytes(
    s3_endpoint: str, s3_bucket: str, tmp_path
) -> None:
    data = os.urandom(3 * 1024 * 1024)
    with fault_proxy(s3_endpoint, rate=0.0) as proxy:
        _put(flaky_s3_store(proxy.endpoint, s3_bucket), "big/object", data)
        proxy.rate, proxy.mix = 0.5, {"reset_response": 1}
        store = flaky_s3_store(proxy.endpoint, s3_bucket)
        for _ in range(3):
            assert store.get_bytes("big/object") == data
            assert store.verify("big/object", hashlib.sha256(data).hexdigest())
            assert store.download_to("big/object", tmp_path / "copy") == hashlib.sha256(data).hexdigest()
    assert proxy.counts["reset_response"] > 0
    assert store.stats.resumed_reads > 0
    assert store.stats.gave_up == 0


def test_a_store_that_keeps_failing_raises_the_stores_own_error_for_reads_and_checks(
    s3_endpoint: str, s3_bucket: str, tmp_path
) -> None:
    with fault_proxy(s3_endpoint, rate=0.0) as proxy:
        _put(flaky_s3_store(proxy.endpoint, s3_bucket), "obj", os.urandom(200_000))
        proxy.rate, proxy.mix = 1.0, {"reset_response": 1}
        store = flaky_s3_store(proxy.endpoint, s3_bucket)
        for read in (
            lambda: store.get_bytes("obj"),
            lambda: store.verify("obj"),
            lambda: store.download_to("obj", tmp_path / "x"),
            lambda: store.head("obj"),
        ):
            with pytest.raises(StoreUnavailable) as caught:
                read()
            assert isinstance(caught.value, ObjectStoreError)
    assert store.stats.gave_up == 4


def test_every_request_is_attempted_by_the_store_alone_not_also_by_the_sdk(
    s3_endpoint: str, s3_bucket: str
) -> None:
    """botocore's own retries are off: the proxy sees exactly the requests the store counts."""
    with fault_proxy(s3_endpoint, rate=0.3, seed=5, stall_seconds=1.2) as proxy:
        store = flaky_s3_store(proxy.endpoint, s3_bucket)
        blobs = {f"k/{i}": os.urandom(50_000 + i) for i in range(15)}
        for key, data in blobs.items():
            _put(store, key, data)
        for key, data in blobs.items():
            assert store.get_bytes(key) == data
        assert sorted(info.key for info in store.list_objects("k/")) == sorted(blobs)
    assert proxy.counts["requests"] == store.stats.requests
    assert proxy.injected == store.stats.fault_count > 0
    assert store.stats.retried == store.stats.fault_count


def test_fault_rate_warning_only_above_the_threshold() -> None:
    stats = StoreStats()
    for _ in range(100):
        stats.request()
    stats.fault("throttled", retrying=True)
    assert stats.warning("x") is None
    for _ in range(9):
        stats.fault("connection", retrying=True)
    message = stats.warning("object backup")
    assert message and "10 of 100" in message and "10 retried" in message
    assert stats.as_metadata("backup_store")["backup_store_requests_retried"] == 10


def test_a_multipart_upload_through_a_faulty_store_resends_failed_parts_and_stores_the_right_bytes(
    s3_endpoint: str, s3_bucket: str, tmp_path
) -> None:
    data = os.urandom(12 * 1024 * 1024 + 123)
    path = tmp_path / "dump"
    path.write_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    with fault_proxy(s3_endpoint, rate=0.3, seed=9, stall_seconds=1.2) as proxy:
        store = flaky_s3_store(proxy.endpoint, s3_bucket, read_timeout=5.0)
        store.multipart_threshold = store.part_size = 5 * 1024 * 1024  # three parts
        info = store.put_file("dumps/one.dump", path, sha256=sha, content_type="application/octet-stream")
        assert info.size == len(data)
        assert store.head("dumps/one.dump").sha256 == sha
        assert store.verify("dumps/one.dump", sha)
    assert proxy.injected > 0 and store.stats.gave_up == 0


def test_the_platform_resource_store_makes_exactly_its_configured_attempts_despite_sdk_max_attempts(
    s3_endpoint: str, s3_bucket: str
) -> None:
    """S3Resource(max_attempts=5) as resources/settings.py builds it; the store's 3 attempts are all."""
    from dagster_aws.s3 import S3Resource

    from resources.object_store import ObjectStoreResource
    from tests.support.services import S3_ACCESS_KEY, S3_REGION, S3_SECRET_KEY

    with fault_proxy(s3_endpoint, rate=1.0, mix={"slowdown_503": 1}) as proxy:
        resource = ObjectStoreResource(
            backend="s3",
            bucket=s3_bucket,
            signing_secret="s",
            retry_attempts=3,
            s3=S3Resource(
                endpoint_url=proxy.endpoint,
                region_name=S3_REGION,
                aws_access_key_id=S3_ACCESS_KEY,
                aws_secret_access_key=S3_SECRET_KEY,
                max_attempts=5,
            ),
        )
        store = resource.store()
        with pytest.raises(StoreUnavailable, match="after 3 attempts"):
            store.head("anything")
    assert proxy.counts["requests"] == 3 and store.stats.gave_up == 1
