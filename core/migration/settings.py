"""config/migration.yaml, typed: one pydantic model holds every migration setting and its one default.

The engine's `MigrationSettings` (bytes, for code and tests) takes its defaults from this model, so the
file, the model and the engine cannot disagree. Prices are not here: the inventory reads them from the
price table (config/pricing.yaml), the one source of truth the cost reports use too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field, model_validator

from core.config import ConfigModel, load_model, validate_model
from core.media_types import DEFAULT_MAX_BYTES, refuse_moved_max_pixels

if TYPE_CHECKING:
    from core.migration.engine import MigrationSettings

MB = 1024 * 1024


class MigrationConfig(ConfigModel):
    """The file's settings, in its units (MB); defaults are the measured-good values (README)."""

    #: Keyset batches: at most this many rows and this many MB of stored column per batch.
    batch_rows: int = Field(default=32, ge=1)
    batch_mb: float = Field(default=16, gt=0)
    #: Rows whose column is bigger than this are read in slices, never whole.
    stream_above_mb: float = Field(default=4, ge=0)
    #: Base64 handed to the workers and not yet decoded, at most.
    in_flight_mb: float = Field(default=16, gt=0)
    #: Threads overlapping storage I/O inside one run.
    workers: int = Field(default=4, ge=1)
    #: Blobs over this size are quarantined (so are images over images.yaml's max_pixels).
    max_blob_mb: float = Field(default=DEFAULT_MAX_BYTES / MB, gt=0)
    #: Objects the reference check fully re-reads.
    reference_sample: int = Field(default=25, ge=0)
    #: The space check warns when more than this could be returned to the OS by VACUUM FULL / pg_repack.
    reclaim_warn_mb: float = Field(default=1024, ge=0)
    #: source name -> column holding the app's declared MIME type.
    declared_type_columns: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _max_pixels_has_moved(cls, data: Any) -> Any:
        return refuse_moved_max_pixels(data)

    @property
    def batch_bytes(self) -> int:
        return int(self.batch_mb * MB)

    @property
    def stream_above_bytes(self) -> int:
        return int(self.stream_above_mb * MB)

    @property
    def in_flight_bytes(self) -> int:
        return int(self.in_flight_mb * MB)

    @property
    def max_blob_bytes(self) -> int:
        return int(self.max_blob_mb * MB)

    @property
    def reclaim_warn_bytes(self) -> int:
        return int(self.reclaim_warn_mb * MB)

    @property
    def engine(self) -> MigrationSettings:
        """The engine's settings, in bytes."""
        from core.migration.engine import MigrationSettings

        return MigrationSettings(
            batch_rows=self.batch_rows,
            batch_bytes=self.batch_bytes,
            workers=self.workers,
            stream_above_bytes=self.stream_above_bytes,
            in_flight_bytes=self.in_flight_bytes,
            max_blob_bytes=self.max_blob_bytes,
            declared_type_columns=tuple(sorted(self.declared_type_columns.items())),
        )


#: The defaults alone (no file read): what `MigrationSettings()` starts from.
DEFAULTS = MigrationConfig()


def parse_migration_config(raw: dict) -> MigrationConfig:
    return validate_model("migration", MigrationConfig, raw)


def load_migration_config() -> MigrationConfig:
    return load_model("migration", MigrationConfig)
