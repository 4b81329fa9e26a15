"""The partition calendar (config/calendar.yaml): one start date for every daily and monthly partition,
so a day means the same thing to uploads, variants, backups, retention and usage."""

from __future__ import annotations

import datetime as dt
import logging
import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from core.config import ConfigError, config_path, load_config

START_FILE = "calendar_start"


class CalendarConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    start_date: dt.date | None = None
    """First partition day; None: the day the data folder was first used (quick start)."""
    daily_cron: str = "30 23 * * *"
    """When a day's backups become due (UTC)."""


def load_calendar_config() -> CalendarConfig:
    try:
        return CalendarConfig.model_validate(load_config("calendar"))
    except ValidationError as exc:
        raise ConfigError(f"{config_path('calendar')}: {exc}") from exc


def recorded_start(folder: Path, today: dt.date | None = None) -> dt.date:
    """The day recorded in `folder` on first use (written once), so every process agrees on it."""
    path = folder / START_FILE
    if path.exists():
        return dt.date.fromisoformat(path.read_text().strip())
    folder.mkdir(parents=True, exist_ok=True)
    day = today or dt.datetime.now(dt.UTC).date()
    path.write_text(day.isoformat() + "\n")
    return day


def calendar_start(config: CalendarConfig | None = None) -> dt.date:
    config = config or load_calendar_config()
    if config.start_date is not None:
        return config.start_date
    from core.catalog.db import PROJECT_ROOT

    folder = Path(os.environ.get("MEDIA_PLATFORM_DATA_DIR") or PROJECT_ROOT / ".data").resolve()
    day = recorded_start(folder)
    if os.environ.get("DATABASE_URL"):  # not the quick start: say so rather than guess silently
        logging.getLogger(__name__).warning(
            "%s sets no start_date: partitions start on %s, the day %s was first used; set start_date so "
            "every host builds the same partitions",
            config_path("calendar"),
            day,
            folder,
        )
    return day
