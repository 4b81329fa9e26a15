"""The one partition calendar: a configured start date wins; unset, the data folder's first day, written
once so every process (webserver, daemon, run workers) builds the same partitions."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from core.calendar import CalendarConfig, calendar_start, load_calendar_config, recorded_start
from core.config import ConfigError


def test_the_first_day_is_recorded_once_and_reused(tmp_path: Path) -> None:
    assert recorded_start(tmp_path, today=dt.date(2026, 11, 20)) == dt.date(2026, 11, 20)
    assert recorded_start(tmp_path, today=dt.date(2027, 1, 5)) == dt.date(2026, 11, 20)


def test_a_configured_start_date_wins_over_the_recorded_day(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEDIA_PLATFORM_DATA_DIR", str(tmp_path))
    recorded_start(tmp_path, today=dt.date(2026, 11, 20))
    assert calendar_start(CalendarConfig()) == dt.date(2026, 11, 20)
    assert calendar_start(CalendarConfig(start_date=dt.date(2025, 6, 1))) == dt.date(2025, 6, 1)


def test_a_bad_calendar_file_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "calendar.yaml").write_text("start_date: soon\n")
    monkeypatch.setenv("MEDIA_CONFIG_DIR", str(tmp_path))
    with pytest.raises(ConfigError, match=r"calendar\.yaml"):
        load_calendar_config()
