"""Failed checks and runs reach people: alert_sensor delivers them to a Slack-compatible webhook and to
e-mail over SMTP (real servers on localhost), once per problem, and retries what it could not deliver."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    DagsterInstance,
    MaterializeResult,
    SensorResult,
    SkipReason,
    asset,
    build_sensor_context,
    job,
    materialize,
    op,
)

from assets.usage import OWNER_QUOTA_CHECK, usage_snapshot
from core.catalog.db import get_engine, upgrade_catalog
from orchestration.alerts import alert_sensor
from resources.alerts import AlertsResource
from resources.database import PostgresResource
from resources.object_store import ObjectStoreResource
from tests.support.receivers import smtp_receiver, webhook_receiver
from tests.support.services import free_port
from tests.support.usage import add_object, add_user, create_source_tables

MB = 1_000_000
STATE = {"pending": 50}


@asset(check_specs=[AssetCheckSpec("pending_below_100", asset="queue", description="WARN above 100 pending")])
def queue() -> MaterializeResult:
    pending = STATE["pending"]
    return MaterializeResult(
        check_results=[
            AssetCheckResult(
                check_name="pending_below_100",
                passed=pending <= 100,
                severity=AssetCheckSeverity.WARN,
                description=f"{pending} uploads pending",
                metadata={"pending": pending},
            )
        ]
    )


@asset(check_specs=[AssetCheckSpec("bytes_verified", asset="nightly_backup")])
def nightly_backup() -> MaterializeResult:
    return MaterializeResult(
        check_results=[
            AssetCheckResult(
                check_name="bytes_verified",
                passed=False,
                severity=AssetCheckSeverity.ERROR,
                description="1 dump does not match its SHA-256",
            )
        ]
    )


@op
def explode() -> None:
    raise RuntimeError("the legacy database refused the connection")


@job
def fragile_job() -> None:
    explode()


@pytest.fixture
def instance() -> Iterator[DagsterInstance]:
    with DagsterInstance.ephemeral() as instance:
        yield instance


def tick(instance: DagsterInstance, alerts: AlertsResource, cursor: str | None) -> SensorResult | SkipReason:
    context = build_sensor_context(instance=instance, cursor=cursor, resources={"alerts": alerts})
    return alert_sensor(context)


def set_pending(instance: DagsterInstance, pending: int) -> None:
    STATE["pending"] = pending
    assert materialize([queue], instance=instance).success


def test_without_a_target_the_sensor_does_nothing_and_says_so(instance: DagsterInstance) -> None:
    set_pending(instance, 500)
    result = tick(instance, AlertsResource(), None)
    assert isinstance(result, SkipReason)
    assert "no alert target configured" in result.skip_message


def test_a_failed_warn_check_reaches_webhook_and_email_once_per_problem(instance: DagsterInstance) -> None:
    with webhook_receiver() as hook, smtp_receiver() as smtp:
        alerts = AlertsResource(
            webhook_url=hook.url,
            email_to="ops@example.com, data@example.com",
            email_from="platform@example.com",
            smtp_host=smtp.host,
            smtp_port=smtp.port,
            ui_base_url="http://dagster.internal:3000",
        )
        cursor = tick(instance, alerts, None).cursor  # starts from now
        set_pending(instance, 250)
        result = tick(instance, alerts, cursor)
        cursor = result.cursor
        assert len(hook.payloads) == 1 and len(smtp.messages) == 1
        text = hook.payloads[0]["text"]
        assert "pending_below_100" in text and "250 uploads pending" in text and "Warning" in text
        assert "http://dagster.internal:3000/runs/" in text
        message = smtp.messages[0]
        assert message["Subject"].startswith("[WARNING] Warning: check pending_below_100 failed on queue")
        assert smtp.envelopes[0] == ("platform@example.com", ["ops@example.com", "data@example.com"])
        assert "pending: 250" in message.get_payload()

        # still failing on later evaluations and ticks: the same problem, no new alert
        set_pending(instance, 300)
        cursor = tick(instance, alerts, cursor).cursor
        cursor = tick(instance, alerts, cursor).cursor
        assert len(hook.payloads) == 1 and len(smtp.messages) == 1

        # it recovers, then fails again: a new problem, one new alert
        set_pending(instance, 10)
        cursor = tick(instance, alerts, cursor).cursor
        set_pending(instance, 400)
        tick(instance, alerts, cursor)
        assert len(hook.payloads) == 2 and "400 uploads pending" in hook.payloads[1]["text"]
        assert len(smtp.messages) == 2


def test_a_failed_error_check_is_delivered_as_an_error(instance: DagsterInstance) -> None:
    with smtp_receiver() as smtp:
        alerts = AlertsResource(email_to="ops@example.com", smtp_host=smtp.host, smtp_port=smtp.port)
        cursor = tick(instance, alerts, None).cursor
        assert materialize([nightly_backup], instance=instance).success
        tick(instance, alerts, cursor)
        assert [m["Subject"] for m in smtp.messages] == [
            "[ERROR] Error: check bytes_verified failed on nightly_backup"
        ]
        assert "does not match its SHA-256" in smtp.messages[0].get_payload()


def test_a_failed_run_alerts_once_with_its_error(instance: DagsterInstance) -> None:
    with webhook_receiver() as hook:
        alerts = AlertsResource(webhook_url=hook.url)
        cursor = tick(instance, alerts, None).cursor
        assert not fragile_job.execute_in_process(instance=instance, raise_on_error=False).success
        cursor = tick(instance, alerts, cursor).cursor
        tick(instance, alerts, cursor)
        assert len(hook.payloads) == 1
        text = hook.payloads[0]["text"]
        assert "Run failed: fragile_job" in text and "refused the connection" in text


def test_an_unreachable_target_logs_an_error_and_the_alert_is_retried_next_tick(
    instance: DagsterInstance,
) -> None:
    port = free_port()  # nothing listens here
    down = AlertsResource(webhook_url=f"http://127.0.0.1:{port}/hook")
    cursor = tick(instance, down, None).cursor
    set_pending(instance, 250)
    result = tick(instance, down, cursor)
    assert "could not deliver" in result.skip_reason.skip_message
    assert "unreachable" in result.skip_reason.skip_message
    cursor = result.cursor
    with webhook_receiver() as hook:
        hook.status = 503  # reachable but failing: still kept for the next tick
        alerts = AlertsResource(webhook_url=hook.url)
        result = tick(instance, alerts, cursor)
        assert "HTTP 503" in result.skip_reason.skip_message and hook.payloads == []
        cursor = result.cursor
        hook.status = 200
        cursor = tick(instance, alerts, cursor).cursor
        assert len(hook.payloads) == 1 and "250 uploads pending" in hook.payloads[0]["text"]
        tick(instance, alerts, cursor)
        assert len(hook.payloads) == 1


def test_the_seeds_quota_warning_is_delivered(
    instance: DagsterInstance, database_url: str, tmp_path: Path
) -> None:
    """Owner above 80 % of quota (usage/usage_snapshot's WARN check) reaches the webhook."""
    upgrade_catalog(database_url)
    engine = get_engine(database_url)
    with engine.begin() as conn:
        create_source_tables(conn)
        add_user(conn, 1, "free")
        add_object(conn, 85 * MB, owners=["1"])
    engine.dispose()
    resources: dict[str, Any] = {
        "postgres": PostgresResource(database_url=database_url),
        "object_store": ObjectStoreResource(
            backend="local", local_root=str(tmp_path / "objects"), signing_secret="s"
        ),
    }
    with webhook_receiver() as hook:
        alerts = AlertsResource(webhook_url=hook.url)
        cursor = tick(instance, alerts, None).cursor
        assert materialize(
            [usage_snapshot], partition_key="2026-03-10", resources=resources, instance=instance
        ).success
        tick(instance, alerts, cursor)
        assert len(hook.payloads) == 1
        text = hook.payloads[0]["text"]
        assert OWNER_QUOTA_CHECK in text and "usage/usage_snapshot" in text and "2026-03-10" in text
        assert "1 owner(s) above 80% of quota" in text


def test_the_alert_sensor_is_registered_in_the_definitions(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)  # loading the definitions never starts a server
    from orchestration.definitions import build_definitions

    assert alert_sensor in list(build_definitions().sensors)
