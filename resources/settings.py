"""The one settings path: environment variables become resources; nothing else changes for production.

Nothing falls back silently. The quick start's defaults (an embedded PostgreSQL, a local object store and
a signing key generated once per machine, all under the data folder) apply only when they are chosen
explicitly with MEDIA_QUICKSTART=1, which `./dev demo`, `./dev ui`, `./dev test` and `./dev bench` set.
Anywhere else a missing setting is an error naming it, raised when the definitions load
(`check_settings`), so a worker started without DATABASE_URL fails instead of running on the wrong
database. Importing the definitions never starts a server, not even in the quick start: its entry points
start the embedded PostgreSQL and export DATABASE_URL (`resolved_database_url`). Secrets are passed as
`EnvVar`, which Dagster resolves at run time and never shows in the UI, logs or metadata.

- MEDIA_QUICKSTART: `1` selects the quick start's defaults for everything below that is unset.
- DATABASE_URL (secret, required): app database holding the sources, and the catalog.
- OBJECT_STORE_BACKEND (required; quick start: `local`): `s3` or `local`.
- S3_BUCKET (required for `s3`), S3_PREFIX, S3_ENDPOINT_URL, S3_REGION (`us-east-1`): the S3-compatible
  media store (R2, B2, MinIO, Spaces: set the endpoint).
- AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (secrets): S3 credentials; unset, boto3's default chain.
- BACKUP_STORE_BACKEND (required; quick start: `local`), BACKUP_S3_BUCKET (required for `s3`, or
  S3_BUCKET), BACKUP_S3_PREFIX (default `backups`), BACKUP_S3_ENDPOINT_URL, BACKUP_S3_REGION,
  BACKUP_AWS_ACCESS_KEY_ID, BACKUP_AWS_SECRET_ACCESS_KEY: the backup location, another bucket/prefix or
  another provider; each falls back to the media store's variable.
- MEDIA_PLATFORM_DATA_DIR (required for a `local` store; quick start: `.data`): folder for local
  objects and backups (and the quick start's embedded Postgres and signing key).
- MEDIA_SIGNING_SECRET (secret; required for a `local` media store, which signs URLs; quick start:
  generated once into the data folder): HMAC secret for local signed URLs.
- MEDIA_PUBLIC_BASE_URL (required for a `local` media store; quick start: `http://localhost:8080/media`):
  base of local signed URLs; `./dev ui` serves them.
- MEDIA_CONFIG_DIR: folder holding every configuration file (`config/*.yaml`); unset, the project's
  `config/`. A file missing there is an error, never a fallback to the project's copy.
- ALERT_WEBHOOK_URL (secret): Slack-compatible webhook for failed checks and runs (orchestration/alerts.py).
- ALERT_EMAIL_TO, ALERT_EMAIL_FROM, SMTP_HOST, SMTP_PORT (25), SMTP_USERNAME, SMTP_PASSWORD (secret),
  SMTP_STARTTLS (`true`/`false`): alert e-mails. Neither webhook nor recipients: alerts go nowhere, and
  the alert sensor says so on every tick. DAGSTER_UI_URL: the UI address used in alert links and in
  `python -m orchestration.lineage`'s run links (unset: http://localhost:3000 in the quick start, no
  links otherwise).
"""

from __future__ import annotations

import importlib
import os
import secrets
from pathlib import Path
from typing import Any

from dagster import EnvVar
from dagster_aws.s3 import S3Resource

from core.catalog.db import PROJECT_ROOT
from core.config import ConfigError, config_path, missing_config_files
from resources.alerts import AlertsResource
from resources.database import PostgresResource
from resources.object_store import ObjectStoreResource

QUICKSTART_ENV = "MEDIA_QUICKSTART"
EMBEDDED_DATABASE = "media_demo"
QUICKSTART_PUBLIC_BASE_URL = "http://localhost:8080/media"
BACKENDS = ("local", "s3")
SIGNING_HELP = "MEDIA_SIGNING_SECRET (HMAC secret for the local store's signed URLs)"
DATABASE_URL_HELP = "DATABASE_URL (the app database: postgresql://user:password@host:5432/db)"


class MissingSettingsError(ConfigError):
    """Settings the platform needs are unset (outside the quick start nothing has a local default)."""

    def __init__(self, problems: list[str]) -> None:
        # The list is the exception's only argument: Celery (and pickle) rebuild an exception from its
        # args, so a message string here would come back as `problems` split into single characters.
        self.problems = list(problems)
        super().__init__(self.problems)

    def __str__(self) -> str:
        return (
            "the platform is not configured; missing or invalid settings:\n"
            + "\n".join(f"  - {p}" for p in self.problems)
            + f"\nSet them (see resources/settings.py and the README), or set {QUICKSTART_ENV}=1 for the "
            "quick start's local defaults (embedded PostgreSQL, local object store) on one machine."
        )


def is_quickstart() -> bool:
    """True only when the quick start's local defaults were chosen explicitly (MEDIA_QUICKSTART=1)."""
    return os.environ.get(QUICKSTART_ENV, "").strip().lower() in ("1", "true", "yes")


def data_dir() -> Path:
    """The data folder: MEDIA_PLATFORM_DATA_DIR, or `.data` in the project for the quick start only."""
    configured = os.environ.get("MEDIA_PLATFORM_DATA_DIR")
    if not configured and not is_quickstart():
        raise MissingSettingsError(["MEDIA_PLATFORM_DATA_DIR (folder for the local store and backups)"])
    path = Path(configured or PROJECT_ROOT / ".data").resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def _backend(variable: str) -> str | None:
    value = os.environ.get(variable) or ("local" if is_quickstart() else None)
    return value.strip().lower() if value else None


#: Each configuration file's loader, run when the definitions load so that a wrong value fails there, with
#: every other problem, rather than in the first run that reads it (on some worker, hours later).
CONFIG_LOADERS = {
    "backups": "core.backups.settings:load_settings",
    "calendar": "core.calendar:load_calendar_config",
    "images": "core.media_types:load_image_rules",
    "migration": "core.migration.settings:load_migration_config",
    "pricing": "core.usage.pricing:load_price_table",
    "quotas": "core.usage.quotas:load_quota_config",
    "retention": "core.retention.config:load_retention_config",
    "sources": "core.sources:load_sources_config",
    "variants": "core.imaging:load_variant_plan",
}


def invalid_config_files() -> list[str]:
    """Every configuration file (present; a missing one is reported as missing) its loader refuses."""
    problems = []
    for name, target in CONFIG_LOADERS.items():
        if not config_path(name).is_file():
            continue
        module, function = target.split(":")
        try:
            getattr(importlib.import_module(module), function)()
        except ConfigError as exc:
            problems.append(str(exc))
    return problems


def calendar_problems() -> list[str]:
    """Outside the quick start the calendar must state its start date: the quick start's default (the
    day this machine's data folder was first used) would give each host different partitions."""
    if is_quickstart() or not config_path("calendar").is_file():
        return []
    from core.calendar import load_calendar_config

    try:
        start = load_calendar_config().start_date
    except ConfigError:
        return []  # reported by its loader (CONFIG_LOADERS)
    if start is not None:
        return []
    return [f"start_date in {config_path('calendar')} (the first partition day; every host must agree)"]


def missing_settings() -> list[str]:
    """Every required setting that is unset or invalid, every configuration file missing from
    MEDIA_CONFIG_DIR or refused by its model, described for one error message. Reads the environment and
    the configuration files only; starts nothing."""
    problems: list[str] = []
    quick = is_quickstart()
    if not os.environ.get("DATABASE_URL"):
        hint = " (./dev demo and ./dev ui start the embedded PostgreSQL and set it)" if quick else ""
        problems.append(DATABASE_URL_HELP + hint)
    local_needed = False
    media = _backend("OBJECT_STORE_BACKEND")
    if media is None:
        problems.append("OBJECT_STORE_BACKEND (`s3`, or `local` for a folder)")
    elif media not in BACKENDS:
        problems.append(f"OBJECT_STORE_BACKEND must be one of {BACKENDS}, got {media!r}")
    elif media == "s3" and not os.environ.get("S3_BUCKET"):
        problems.append("S3_BUCKET (the media bucket; OBJECT_STORE_BACKEND=s3)")
    elif media == "local":
        local_needed = True
        if not quick:
            if not os.environ.get("MEDIA_SIGNING_SECRET"):
                problems.append(SIGNING_HELP)
            if not os.environ.get("MEDIA_PUBLIC_BASE_URL"):
                problems.append("MEDIA_PUBLIC_BASE_URL (base of the local store's signed URLs)")
    backup = _backend("BACKUP_STORE_BACKEND")
    if backup is None:
        problems.append("BACKUP_STORE_BACKEND (`s3`, or `local` for a folder)")
    elif backup not in BACKENDS:
        problems.append(f"BACKUP_STORE_BACKEND must be one of {BACKENDS}, got {backup!r}")
    elif backup == "s3" and not (os.environ.get("BACKUP_S3_BUCKET") or os.environ.get("S3_BUCKET")):
        problems.append("BACKUP_S3_BUCKET (the backup bucket, or S3_BUCKET; BACKUP_STORE_BACKEND=s3)")
    elif backup == "local":
        local_needed = True
    if local_needed and not quick and not os.environ.get("MEDIA_PLATFORM_DATA_DIR"):
        problems.append("MEDIA_PLATFORM_DATA_DIR (folder of the `local` object or backup store)")
    problems.extend(missing_config_files())
    problems.extend(invalid_config_files())
    problems.extend(calendar_problems())
    return problems


def check_settings() -> None:
    """Raise MissingSettingsError naming everything missing at once; called when the definitions load."""
    problems = missing_settings()
    if problems:
        raise MissingSettingsError(problems)


def uses_embedded_postgres() -> bool:
    """The quick start without DATABASE_URL: its entry points start the embedded server."""
    return is_quickstart() and not os.environ.get("DATABASE_URL")


def resolved_database_url() -> str:
    """DATABASE_URL as a plain string, for entry points outside Dagster runs (the quick start, restore
    CLI, benchmarks). In the quick start with DATABASE_URL unset this starts (or attaches to) the
    embedded PostgreSQL and exports DATABASE_URL for this process and its children (run workers, the
    code server of `dagster dev`); never called when the definitions load."""
    if os.environ.get("DATABASE_URL"):
        return os.environ["DATABASE_URL"]
    if not is_quickstart():
        raise MissingSettingsError([DATABASE_URL_HELP])
    from core.embedded_postgres import start_embedded_postgres

    url = start_embedded_postgres(data_dir() / "postgres").ensure_database(EMBEDDED_DATABASE)
    os.environ["DATABASE_URL"] = url
    return url


def postgres_resource() -> PostgresResource:
    if not os.environ.get("DATABASE_URL"):
        raise MissingSettingsError([DATABASE_URL_HELP])
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


def _signing_secret(required: bool) -> Any:
    """MEDIA_SIGNING_SECRET as an EnvVar; the quick start generates one into the data folder. A store
    that signs no URLs (S3 presigns itself; the backup location) gets a placeholder it never uses."""
    if os.environ.get("MEDIA_SIGNING_SECRET"):
        return EnvVar("MEDIA_SIGNING_SECRET")
    if not is_quickstart():
        if required:
            raise MissingSettingsError([SIGNING_HELP])
        return "unused: this store signs no URLs"
    key_file = data_dir() / "signing.key"
    if not key_file.exists():
        key_file.write_text(secrets.token_hex(32))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


def _public_base_url() -> str:
    if os.environ.get("MEDIA_PUBLIC_BASE_URL"):
        return os.environ["MEDIA_PUBLIC_BASE_URL"]
    return QUICKSTART_PUBLIC_BASE_URL if is_quickstart() else ""


def _s3(prefix: str = "") -> S3Resource:
    return S3Resource(
        endpoint_url=_plain("S3_ENDPOINT_URL", prefix),
        region_name=_plain("S3_REGION", prefix) or "us-east-1",
        aws_access_key_id=_secret("AWS_ACCESS_KEY_ID", prefix),
        aws_secret_access_key=_secret("AWS_SECRET_ACCESS_KEY", prefix),
        max_attempts=5,
    )


def _store(variable: str, folder: str, bucket: str, prefix: str, s3_prefix: str) -> ObjectStoreResource:
    backend = _backend(variable)
    if backend is None:
        raise MissingSettingsError([f"{variable} (`s3`, or `local` for a folder)"])
    if backend not in BACKENDS:
        raise MissingSettingsError([f"{variable} must be one of {BACKENDS}, got {backend!r}"])
    local = backend == "local"
    return ObjectStoreResource(
        backend=backend,  # type: ignore[arg-type]
        local_root=str(data_dir() / folder) if local else "",
        bucket=bucket,
        prefix=prefix,
        s3=_s3(s3_prefix),
        signing_secret=_signing_secret(required=local and variable == "OBJECT_STORE_BACKEND"),
        public_base_url=_public_base_url(),
    )


def object_store_resource() -> ObjectStoreResource:
    bucket, prefix = os.environ.get("S3_BUCKET", ""), os.environ.get("S3_PREFIX", "")
    return _store("OBJECT_STORE_BACKEND", "objects", bucket, prefix, "")


def backup_store_resource() -> ObjectStoreResource:
    return _store(
        "BACKUP_STORE_BACKEND",
        "backups",
        _plain("S3_BUCKET", "BACKUP_") or "",
        os.environ.get("BACKUP_S3_PREFIX", "backups"),
        "BACKUP_",
    )


def ui_base_url() -> str | None:
    """The Dagster UI's address for run links: DAGSTER_UI_URL, or `dagster dev`'s local address in the
    quick start (MEDIA_QUICKSTART=1); None in production without it, so no link points at a wrong host."""
    return os.environ.get("DAGSTER_UI_URL") or ("http://localhost:3000" if is_quickstart() else None)


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
    """Every resource the platform's assets, sensors and schedules use, from the environment; fails
    first with every missing setting named (see `check_settings`)."""
    check_settings()
    return {
        "postgres": postgres_resource(),
        "object_store": object_store_resource(),
        "backup_store": backup_store_resource(),
        "alerts": alerts_resource(),
    }
