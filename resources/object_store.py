"""Object storage as a Dagster resource: the local filesystem, or any S3-compatible service via S3Resource."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from dagster import ConfigurableResource
from dagster_aws.s3 import S3Resource
from pydantic import Field

from core.objectstore.base import ObjectStore


class ObjectStoreResource(ConfigurableResource):
    """Where objects live. `backend="s3"` works with AWS S3, R2, B2, MinIO and Spaces through `s3`.

    The same class configures the media store and the (separate) backup location.
    """

    backend: Literal["local", "s3"] = "local"
    local_root: str = Field(default=".data/objects", description="Folder for the local backend")
    bucket: str = Field(default="", description="Bucket for the s3 backend")
    prefix: str = Field(default="", description="Key prefix inside the bucket (s3 backend)")
    s3: S3Resource = Field(default_factory=S3Resource)
    signing_secret: str = Field(description="HMAC secret for local signed URLs (a secret)")
    public_base_url: str = Field(
        default="http://localhost:8080/media", description="Base of local signed URLs"
    )
    retry_attempts: int = Field(default=6, description="Attempts per S3 call (the store's one retry layer)")
    retry_max_seconds: float = Field(default=120.0, description="Time budget per S3 call, retries included")

    def store(self) -> ObjectStore:
        if self.backend == "s3":
            from core.objectstore.s3 import S3ObjectStore

            if not self.bucket:
                raise ValueError("ObjectStoreResource(backend='s3') needs a bucket")
            from core.objectstore.retry import RetryPolicy

            policy = RetryPolicy(attempts=self.retry_attempts, max_seconds=self.retry_max_seconds)
            return S3ObjectStore(self.s3.get_client(), self.bucket, prefix=self.prefix, policy=policy)
        from core.objectstore.local import LocalObjectStore

        return LocalObjectStore(
            Path(self.local_root), signing_secret=self.signing_secret, base_url=self.public_base_url
        )
