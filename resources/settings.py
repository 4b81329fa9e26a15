"""The one settings path: environment variables become resources; nothing else changes for production.

Unset, everything falls back to the embedded default under the data folder (an embedded PostgreSQL and a
local object store), so a fresh machine needs no server or cloud account. Secrets are passed as
`EnvVar`, which Dagster resolves at run time and never shows in the UI, logs or metadata.

- MEDIA_PLATFORM_DATA_DIR: folder for embedded Postgres, local objects, backups, reports (`.data`).
- DATABASE_URL (secret): app database holding the sources, and the catalog. Unset: embedded Postgres,
  database `media_demo`.
- OBJECT_STORE_BACKEND: `local` (default) or `s3`.
- S3_BUCKET, S3_PREFIX, S3_ENDPOINT_URL, S3_REGION: the S3-compatible media store (R2, B2, MinIO,
  Spaces: set the endpoint).
- AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (secrets): S3 credentials; unset, boto3's default chain.
- BACKUP_STORE_BACKEND, BACKUP_S3_BUCKET, BACKUP_S3_PREFIX (default `backups`), BACKUP_S3_ENDPOINT_URL,
  BACKUP_S3_REGION, BACKUP_AWS_ACCESS_KEY_ID, BACKUP_AWS_SECRET_ACCESS_KEY: the backup location, another
  bucket/prefix or another provider; each falls back to the media store's variable. Unset: `backups/`
  in the data folder.
- MEDIA_SIGNING_SECRET (secret): HMAC secret for local signed URLs; unset, generated once into the data
  folder.
- MEDIA_PUBLIC_BASE_URL: base of local signed URLs (`http://localhost:8080/media`); `./dev ui` serves them.
- ALERT_WEBHOOK_URL (secret): Slack-compatible webhook for failed checks and runs (orchestration/alerts.py).
- ALERT_EMAIL_TO, ALERT_EMAIL_FROM, SMTP_HOST, SMTP_PORT (25), SMTP_USERNAME, SMTP_PASSWORD (secret),
  SMTP_STARTTLS (`true`/`false`): alert e-mails. Neither webhook nor recipients: alerts go nowhere, and
  the alert sensor says so on every tick. DAGSTER_UI_URL: the UI address used in alert links and in
  `python -m orchestration.lineage`'s run links (unset: http://localhost:3000 in the quick start, no
  links otherwise).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from dagster import EnvVar
from dagster_aws.s3 import S3Resource

from core.catalog.db import PROJECT_ROOT
from resources.alerts import AlertsResource
from resources.database import PostgresResource
from resources.object_store import ObjectStoreResource

EMBEDDED_DATABASE = "media_demo"


def data_dir() -> Path:
    path = Path(os.environ.get("MEDIA_PLATFORM_DATA_DIR") or PROJECT_ROOT / ".data").resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def uses_embedded_postgres() -> bool:
    return not os.environ.get("DATABASE_URL")


def embedded_database_url() -> str:
    """Start (or attach to) the embedded server and return the demo database's URL."""
    from core.embedded_postgres import start_embedded_postgres

    return start_embedded_postgres(data_dir() / "postgres").ensure_database(EMBEDDED_DATABASE)


def resolved_database_url() -> str:
    """The database URL as a plain string, for code outside Dagster runs (the quick start, benchmarks)."""
    return os.environ.get("DATABASE_URL") or embedded_database_url()


def postgres_resource() -> PostgresResource:
    if uses_embedded_postgres():
        return PostgresResource(database_url=embedded_database_url())
    return PostgresResource(database_url=EnvVar("DATABASE_URL"))


def _env_name(name: str, prefix: str = "") -> str | None:
    """The variable to read: `{prefix}{name}` if set, else the unprefixed one (backups share the media
    store's endpoint and credentials unless told otherwise)."""
    for candidate in (f"{prefix}{name}", name) if prefix else (name,):
        if os.environ.get(candidate):
            return candidate
    return None


def _plain(name: str, prefix: str = "") -> str | None:
    chosen = _env_name(name, prefix)
    return os.environ[chosen] if chosen else None


def _secret(name: str, prefix: str = "") -> Any:
    """EnvVar when set (resolved at run time, hidden in the UI); None lets boto3 use its default chain."""
    chosen = _env_name(name, prefix)
    return EnvVar(chosen) if chosen else None


def _signing_secret() -> Any:
    if os.environ.get("MEDIA_SIGNING_SECRET"):
        return EnvVar("MEDIA_SIGNING_SECRET")
    key_file = data_dir() / "signing.key"
    if not key_file.exists():
        key_file.write_text(secrets.token_hex(32))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


def _s3(prefix: str = "") -> S3Resource:
    return S3Resource(
        endpoint_url=_plain("S3_ENDPOINT_URL", prefix),
        region_name=_plain("S3_REGION", prefix) or "us-east-1",
        aws_access_key_id=_secret("AWS_ACCESS_KEY_ID", prefix),
        aws_secret_access_key=_secret("AWS_SECRET_ACCESS_KEY", prefix),
        max_attempts=5,
    )


def object_store_resource() -> ObjectStoreResource:
    backend = os.environ.get("OBJECT_STORE_BACKEND", "local")
    return ObjectStoreResource(
        backend=backend,  # type: ignore[arg-type]
        local_root=str(data_dir() / "objects"),
        bucket=os.environ.get("S3_BUCKET", ""),
        prefix=os.environ.get("S3_PREFIX", ""),
        s3=_s3(""),
        signing_secret=_signing_secret(),
        public_base_url=os.environ.get("MEDIA_PUBLIC_BASE_URL", "http://localhost:8080/media"),
    )


def backup_store_resource() -> ObjectStoreResource:
    backend = os.environ.get("BACKUP_STORE_BACKEND", "local")
    return ObjectStoreResource(
        backend=backend,  # type: ignore[arg-type]
        local_root=str(data_dir() / "backups"),
        bucket=_plain("S3_BUCKET", "BACKUP_") or "",
        prefix=os.environ.get("BACKUP_S3_PREFIX", "backups"),
        s3=_s3("BACKUP_"),
        signing_secret=_signing_secret(),
        public_base_url=os.environ.get("MEDIA_PUBLIC_BASE_URL", "http://localhost:8080/media"),
    )


def ui_base_url() -> str | None:
    """The Dagster UI's address for run links: DAGSTER_UI_URL, or `dagster dev`'s local address in the
    quick start (embedded Postgres); None in production without it, so no link points at a wrong host."""
    return os.environ.get("DAGSTER_UI_URL") or ("http://localhost:3000" if uses_embedded_postgres() else None)


def alerts_resource() -> AlertsResource:
    flag = os.environ.get("SMTP_STARTTLS", "false").strip().lower()
    return AlertsResource(
        webhook_url=_secret("ALERT_WEBHOOK_URL") or "",
        email_to=os.environ.get("ALERT_EMAIL_TO", ""),
        email_from=os.environ.get("ALERT_EMAIL_FROM") or "media-platform@localhost",
        smtp_host=os.environ.get("SMTP_HOST", ""),
        smtp_port=int(os.environ.get("SMTP_PORT") or 25),
        smtp_username=os.environ.get("SMTP_USERNAME", ""),
        smtp_password=_secret("SMTP_PASSWORD") or "",
        smtp_starttls=flag in ("1", "true", "yes"),
        ui_base_url=os.environ.get("DAGSTER_UI_URL") or "http://localhost:3000",
    )


def build_resources() -> dict[str, Any]:
    """Every resource the platform's assets, sensors and schedules use, from the environment."""
    return {
        "postgres": postgres_resource(),
        "object_store": object_store_resource(),
        "backup_store": backup_store_resource(),
        "alerts": alerts_resource(),
    }
