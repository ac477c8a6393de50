"""CloudWatch Logs retention from [deploy].log_retention_days."""

from __future__ import annotations

from aws_cdk import aws_logs as logs

__all__ = ["log_retention"]

_RETENTION = [
    (1, logs.RetentionDays.ONE_DAY),
    (7, logs.RetentionDays.ONE_WEEK),
    (14, logs.RetentionDays.TWO_WEEKS),
    (30, logs.RetentionDays.ONE_MONTH),
    (90, logs.RetentionDays.THREE_MONTHS),
    (180, logs.RetentionDays.SIX_MONTHS),
    (365, logs.RetentionDays.ONE_YEAR),
    (731, logs.RetentionDays.TWO_YEARS),
]


def log_retention(days: int) -> logs.RetentionDays:
    """The shortest CloudWatch retention that keeps at least ``days``."""
    return next(
        (value for limit, value in _RETENTION if limit >= days), logs.RetentionDays.TEN_YEARS
    )
