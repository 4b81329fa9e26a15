"""config/retention.yaml is validated before a sweep runs; months are calendar months."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.retention.config import (
    ORPHANED_OBJECTS,
    POLICY_ORDER,
    RetentionConfigError,
    load_retention_config,
    months_before,
    parse_retention_config,
)


def test_the_shipped_configuration_enables_every_policy_with_the_seed_periods() -> None:
    config = load_retention_config()
    assert config.preset == "standard" and all(config.is_enabled(p) for p in POLICY_ORDER)
    assert config.orphan_after == timedelta(days=7) and config.soft_delete_after == timedelta(days=30)
    assert (config.warn_after_months, config.delete_after_months) == (12, 13)
    assert config.upload_after == timedelta(hours=24)


def test_keep_forever_disables_every_policy_whatever_each_says() -> None:
    config = parse_retention_config(
        {"preset": "keep_forever", "policies": {ORPHANED_OBJECTS: {"enabled": True}}}
    )
    assert not any(config.is_enabled(p) for p in POLICY_ORDER)
    assert config.disabled_reason(ORPHANED_OBJECTS) == "preset keep_forever"


def test_a_policy_can_be_turned_off() -> None:
    config = parse_retention_config({"policies": {ORPHANED_OBJECTS: {"enabled": False}}})
    assert (
        not config.is_enabled(ORPHANED_OBJECTS)
        and config.disabled_reason(ORPHANED_OBJECTS) == "disabled in config"
    )


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"preset": "forever"}, "preset"),
        ({"policies": {"old_stuff": {}}}, "unknown policies"),
        ({"policies": {ORPHANED_OBJECTS: {"after_days": -1}}}, "after_days"),
        ({"policies": {ORPHANED_OBJECTS: {"enabled": "yes"}}}, "enabled"),
        ({"policies": {"inactive_users": {"warn_after_months": 13, "delete_after_months": 13}}}, "less than"),
        ({"batch_size": 0}, "batch_size"),
    ],
)
def test_invalid_configuration_is_refused_with_a_reason(raw: dict, message: str) -> None:
    with pytest.raises(RetentionConfigError, match=message):
        parse_retention_config(raw)


def test_months_before_counts_calendar_months_and_clamps_the_day() -> None:
    assert months_before(datetime(2026, 3, 31, tzinfo=UTC), 13) == datetime(2025, 2, 28, tzinfo=UTC)
    assert months_before(datetime(2026, 11, 21, 5, tzinfo=UTC), 12) == datetime(2025, 11, 21, 5, tzinfo=UTC)
