"""Schedules: rate clocks, on-demand triggers and the EventBridge Scheduled Event shape."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from skylift.local.scheduler import (
    ScheduledJob,
    Scheduler,
    UnknownScheduleError,
    rate_seconds,
    scheduled_event,
)
from skylift.topology import Schedule

RULE = "arn:aws:events:us-east-1:123456789012:rule/skylift-churn-monitor"


@pytest.mark.parametrize(
    ("expression", "seconds"),
    [
        ("rate(1 minute)", 60.0),
        ("rate(5 minutes)", 300.0),
        ("rate(1 hour)", 3600.0),
        ("rate(2 days)", 172800.0),
        ("cron(0 3 * * ? *)", None),
    ],
)
def test_rate_seconds(expression, seconds):
    assert rate_seconds(expression) == seconds


@pytest.mark.parametrize("expression", ["rate(1 hours)", "rate(2 hour)", "rate(0 minutes)", "x"])
def test_rate_seconds_rejects_what_eventbridge_rejects(expression):
    with pytest.raises(ValueError, match="schedule expression"):
        rate_seconds(expression)


def test_scheduled_event_is_the_eventbridge_shape():
    event = scheduled_event(
        RULE, "us-east-1", "123456789012", datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    )
    assert event["version"] == "0"
    assert event["detail-type"] == "Scheduled Event"
    assert event["source"] == "aws.events"
    assert event["account"] == "123456789012"
    assert event["time"] == "2026-11-24T12:00:00Z"
    assert event["region"] == "us-east-1"
    assert event["resources"] == [RULE]
    assert event["detail"] == {}
    assert event["id"]


def test_scheduled_event_parses_with_powertools():
    from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent

    parsed = EventBridgeEvent(scheduled_event(RULE, "us-east-1", "123456789012"))
    assert parsed.detail_type == "Scheduled Event"
    assert parsed.resources == [RULE]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_scheduler(expression: str, enabled: bool = True):
    events: list[dict[str, Any]] = []
    clock = FakeClock()

    def invoke(event: dict[str, Any]) -> dict[str, Any]:
        events.append(event)
        return {"ok": True}

    job = ScheduledJob(
        schedule=Schedule("monitor", expression, enabled, "monitor"), rule_arn=RULE, invoke=invoke
    )
    return Scheduler([job], clock=clock), clock, events


def test_rate_schedule_fires_once_per_interval():
    scheduler, clock, events = make_scheduler("rate(1 hour)")
    scheduler.arm()
    assert scheduler.run_due() == []
    clock.now += 3599
    assert scheduler.run_due() == []
    clock.now += 1
    assert scheduler.run_due() == ["monitor"]
    assert scheduler.run_due() == []
    clock.now += 3600
    assert scheduler.run_due() == ["monitor"]
    assert len(events) == 2
    assert events[0]["resources"] == [RULE]


def test_cron_schedule_has_no_clock_but_can_be_triggered():
    scheduler, clock, events = make_scheduler("cron(0 3 * * ? *)")
    scheduler.arm()
    clock.now += 10 * 86400
    assert scheduler.run_due() == []
    assert scheduler.trigger("monitor") == {"ok": True}
    assert events[0]["source"] == "aws.events"


def test_disabled_schedule_has_no_clock():
    scheduler, clock, events = make_scheduler("rate(1 minute)", enabled=False)
    scheduler.arm()
    clock.now += 3600
    assert scheduler.run_due() == []
    assert events == []


def test_failing_scheduled_run_does_not_stop_the_clock():
    clock = FakeClock()

    def broken(event: dict[str, Any]) -> Any:
        raise RuntimeError("monitor crashed")

    job = ScheduledJob(Schedule("monitor", "rate(1 minute)", True, "monitor"), RULE, broken)
    scheduler = Scheduler([job], clock=clock)
    scheduler.arm()
    clock.now += 60
    assert scheduler.run_due() == ["monitor"]
    clock.now += 60
    assert scheduler.run_due() == ["monitor"]


def test_trigger_unknown_schedule_names_the_known_ones():
    scheduler, _, _ = make_scheduler("rate(1 hour)")
    with pytest.raises(UnknownScheduleError, match="known: monitor"):
        scheduler.trigger("nightly")
