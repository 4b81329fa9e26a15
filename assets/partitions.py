"""The one partition calendar (config/calendar.yaml) every time-partitioned asset shares, and the
concurrency pool that keeps reference writers and deleters apart."""

from __future__ import annotations

from dagster import DailyPartitionsDefinition, MonthlyPartitionsDefinition

from core.calendar import calendar_start, load_calendar_config

CALENDAR = load_calendar_config()
START_DATE = calendar_start(CALENDAR)

#: `end_offset=1`: today's partition exists, so uploads, backups, retention and usage can run the day
#: they cover (and the automation targets it as the latest time window).
daily_partitions = DailyPartitionsDefinition(start_date=START_DATE.isoformat(), end_offset=1, timezone="UTC")
monthly_partitions = MonthlyPartitionsDefinition(
    start_date=START_DATE.replace(day=1).isoformat(), end_offset=1, timezone="UTC"
)

#: Dagster concurrency pool (limit 1, `concurrency.pools.default_limit` in dagster.yaml) shared by every
#: step that adds references to the catalog from a scan of the world (a migration, a backup) or deletes on
#: their strength (a real retention sweep, a GDPR hard delete): one migration per source at a time, and no
#: deletion while a migration or backup runs. Dagster's pools are counting semaphores, so migrations of
#: two sources also take turns (each is parallel inside, through its storage threads).
REFERENCES_POOL = "media_references"
