"""The schedules: fired on their ``rate(...)`` clock, or on demand, as EventBridge Scheduled Events.

``cron(...)`` expressions are fired on demand only (a local session rarely lives to the next
cron time, and a cron parser is not worth its weight here). Disabled schedules have no clock
but can still be triggered. An on-demand :meth:`Scheduler.trigger` runs the function
synchronously in the caller and returns its result.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from skylift.topology import Schedule

__all__ = ["ScheduledJob", "Scheduler", "UnknownScheduleError", "rate_seconds", "scheduled_event"]

logger = logging.getLogger(__name__)

_RATE = re.compile(r"^rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)$")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}


class UnknownScheduleError(KeyError):
    """No schedule of that name."""


def rate_seconds(expression: str) -> float | None:
    """Seconds between firings of a ``rate(...)`` expression; None for ``cron(...)``.

    EventBridge insists on the singular unit for 1 and the plural otherwise.
    """
    match = _RATE.match(expression.strip())
    if match is None:
        if expression.strip().startswith("cron("):
            return None
        raise ValueError(f"not a schedule expression EventBridge accepts: {expression!r}")
    value, unit = int(match.group(1)), match.group(2)
    if value < 1 or (value == 1) != (not unit.endswith("s")):
        raise ValueError(f"not a schedule expression EventBridge accepts: {expression!r}")
    return float(value * _UNIT_SECONDS[unit.rstrip("s")])


def scheduled_event(
    rule_arn: str, region: str, account: str, now: datetime | None = None
) -> dict[str, Any]:
    """The event EventBridge sends a target of a scheduled rule."""
    moment = (now or datetime.now(UTC)).replace(microsecond=0)
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": account,
        "time": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [rule_arn],
        "detail": {},
    }


@dataclass
class ScheduledJob:
    schedule: Schedule
    rule_arn: str
    invoke: Callable[[dict[str, Any]], Any]
    interval: float | None = None
    next_due: float | None = None
    fired: int = 0


class Scheduler:
    """Fires each schedule's function on its clock; :meth:`trigger` fires one now."""

    def __init__(
        self,
        jobs: list[ScheduledJob],
        region: str = "us-east-1",
        account: str = "123456789012",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.jobs = {job.schedule.name: job for job in jobs}
        self.region = region
        self.account = account
        self.clock = clock
        for job in jobs:
            job.interval = rate_seconds(job.schedule.expression)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def trigger(self, name: str) -> Any:
        """Fire ``name`` now, in the caller's thread; returns the function's result."""
        job = self.jobs.get(name)
        if job is None:
            raise UnknownScheduleError(
                f"no schedule named {name!r}; known: {', '.join(sorted(self.jobs))}"
            )
        event = scheduled_event(job.rule_arn, self.region, self.account)
        job.fired += 1
        return job.invoke(event)

    def arm(self) -> None:
        """Start each enabled rate clock from now (first firing one interval later)."""
        now = self.clock()
        for job in self.jobs.values():
            if job.schedule.enabled and job.interval is not None:
                job.next_due = now + job.interval

    def due(self) -> list[str]:
        now = self.clock()
        return [
            name
            for name, job in self.jobs.items()
            if job.next_due is not None and job.next_due <= now
        ]

    def run_due(self) -> list[str]:
        """Fire every schedule whose time has come; returns their names."""
        fired = self.due()
        for name in fired:
            job = self.jobs[name]
            assert job.next_due is not None and job.interval is not None
            job.next_due += job.interval
            try:
                self.trigger(name)
            except Exception:
                logger.exception("scheduled %s failed", name)
        return fired

    def _run(self) -> None:
        while not self._stop.is_set():
            self.run_due()
            pending = [j.next_due for j in self.jobs.values() if j.next_due is not None]
            wait = min(pending) - self.clock() if pending else 60.0
            self._stop.wait(max(0.05, min(wait, 60.0)))

    def start(self) -> None:
        self.arm()
        self._thread = threading.Thread(target=self._run, name="skylift-scheduler", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)
