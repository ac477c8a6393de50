"""The monitor's rollout decision: candidate vs champion over the window, then abort, promote
or hold, by the policy in ``[rollout]``.

Evidence comes from API capture, since the candidate started (or the window's start, if later):

* **canary**: the lines tagged ``role: candidate`` (its answers, and ``error`` lines for the
  rows it failed) against the champion's lines of the same period: error rate, p99 of each
  version's per-request scoring time, PSI between the two prediction distributions, and the
  live metric from labels joined by id.
* **shadow**: the champion's captured records are scored here by the candidate (loaded
  through the registry's verified ``load``): paired predictions on the same records. The
  comparison is as fresh as the capture (Firehose buffering, then the monitor's schedule);
  latency is not compared (it is not measured on the request path).

Abort on any breach (``auto_abort``); promote when the candidate held for ``hold_hours`` with
at least ``min_requests`` records (``auto_promote``). The decision is applied through
:mod:`skylift.rollout`'s conditional writes, conditional on the candidate version compared:
a concurrent decision (the alarm's abort, a person's promote) wins or loses cleanly. Each run
with a candidate stores a report under ``reports/rollout/`` and publishes an EventBridge event.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field

from skylift.config import SkyliftConfig
from skylift.monitoring import load_labels, psi, put_event, read_capture
from skylift.registry import ModelRegistry
from skylift.registry_types import RegistryError
from skylift.reports import _Report
from skylift.rollout import Rollout, abort_candidate, promote_candidate, read_rollout
from skylift.scoring import Scorer
from skylift.topology import ROLLOUT_DETAIL_TYPE, ROLLOUT_SOURCE

__all__ = ["RolloutReport", "VersionEvidence", "abort_on_alarm", "decide_rollout"]

logger = logging.getLogger(__name__)

Decision = Literal["abort", "promote", "hold", "breach", "ready"]
_BINS = 10


class VersionEvidence(_Report):
    version: int | None
    records: int = 0
    errors: int = 0
    error_rate: float | None = None
    p99_scoring_ms: float | None = None
    prediction_mean: float | None = None
    live_metric: float | None = None
    labelled: int = 0


class RolloutReport(_Report):
    model: str
    generated_at: str
    mode: str
    champion: VersionEvidence
    candidate: VersionEvidence
    since: str
    decision: Decision
    applied: bool = False
    reasons: list[str] = Field(default_factory=list)
    prediction_psi: float | None = None
    agreement: float | None = None  # shadow: share of paired predictions that agree
    metric: str = ""
    notes: list[str] = Field(default_factory=list)
    event_published: bool = False
    report_key: str | None = None


def decide_rollout(
    config: SkyliftConfig,
    s3: Any,
    events: Any | None = None,
    *,
    now: datetime | None = None,
    registry: ModelRegistry | None = None,
) -> RolloutReport | None:
    """One decision about the active candidate; None when there is none."""
    now = now or datetime.now(UTC)
    registry = registry or ModelRegistry.from_config(config, s3_client=s3)
    rollout = read_rollout(registry)
    if rollout.candidate is None or rollout.champion is None:
        return None
    candidate = rollout.candidate
    since = max(now - timedelta(hours=config.monitor.window_hours), candidate.updated_at)
    # objects by LastModified with a margin (it has whole seconds), then lines by captured_at
    rows, notes = read_capture(config, s3, since - timedelta(minutes=5))
    rows = [r for r in rows if _at(r) >= since]
    policy = config.rollout
    report = RolloutReport(
        model=config.model.name,
        generated_at=now.isoformat(),
        mode=str(candidate.mode),
        champion=VersionEvidence(version=rollout.champion),
        candidate=VersionEvidence(version=candidate.version),
        since=since.isoformat(),
        decision="hold",
        metric=policy.metric,
        notes=notes,
    )
    champion_rows = [
        r
        for r in rows
        if r.get("role", "champion") == "champion" and r.get("model_version") == rollout.champion
    ]
    if candidate.mode == "canary":
        candidate_rows = [
            r
            for r in rows
            if r.get("role") == "candidate" and r.get("model_version") == candidate.version
        ]
    else:
        candidate_rows = _shadow_rows(registry, candidate.version, champion_rows, report)
    labels = load_labels(config, s3)[0] if config.model.id_column else pd.DataFrame()
    report.champion = _evidence(rollout.champion, champion_rows, labels, config)
    report.candidate = _evidence(candidate.version, candidate_rows, labels, config)
    report.prediction_psi = _prediction_psi(champion_rows, candidate_rows)
    if candidate.mode == "shadow":
        report.agreement = _agreement(champion_rows, candidate_rows)
    _decide(report, rollout, now, config)
    if report.decision in ("abort", "promote"):
        _apply(report, registry, candidate.version)
    _store(config, s3, report, now)
    if events is not None:
        _publish(config, s3, events, report, now)
    return report


def abort_on_alarm(
    config: SkyliftConfig,
    s3: Any,
    event: dict[str, Any],
    events: Any | None = None,
    *,
    registry: ModelRegistry | None = None,
) -> RolloutReport | None:
    """A "CloudWatch Alarm State Change" to ALARM on candidate errors: abort the candidate
    now, without waiting for the schedule. None for any other state or without a candidate."""
    detail = event.get("detail") or {}
    if (detail.get("state") or {}).get("value") != "ALARM":
        return None
    registry = registry or ModelRegistry.from_config(config, s3_client=s3)
    rollout = read_rollout(registry)
    if rollout.candidate is None or rollout.champion is None:
        return None
    now = datetime.now(UTC)
    alarm = detail.get("alarmName", "an alarm")
    report = RolloutReport(
        model=config.model.name,
        generated_at=now.isoformat(),
        mode=str(rollout.candidate.mode),
        champion=VersionEvidence(version=rollout.champion),
        candidate=VersionEvidence(version=rollout.candidate.version),
        since=str(rollout.candidate.updated_at.isoformat()),
        decision="abort",
        reasons=[f"alarm {alarm} is in ALARM: {detail.get('state', {}).get('reason', '')}"],
    )
    _apply(report, registry, rollout.candidate.version)
    _store(config, s3, report, now)
    if events is not None:
        _publish(config, s3, events, report, now)
    return report


# ---- evidence -----------------------------------------------------------------------------


def _at(row: dict[str, Any]) -> datetime:
    try:
        return datetime.fromisoformat(str(row.get("captured_at")))
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)


def _score_value(row: dict[str, Any]) -> float | None:
    """The number a prediction is compared by: P(last class), else a numeric prediction."""
    probabilities = row.get("probabilities")
    if probabilities:
        return float(list(probabilities.values())[-1])
    try:
        return float(row["prediction"])
    except (TypeError, ValueError, KeyError):
        return None


def _evidence(
    version: int | None, rows: list[dict[str, Any]], labels: pd.DataFrame, config: SkyliftConfig
) -> VersionEvidence:
    result = VersionEvidence(version=version, records=len(rows))
    if not rows:
        return result
    result.errors = sum(1 for r in rows if r.get("error"))
    result.error_rate = result.errors / len(rows)
    per_request = {(r.get("request_id"), r.get("scoring_ms")) for r in rows}
    timings = [ms for _, ms in per_request if isinstance(ms, int | float)]
    if timings:
        result.p99_scoring_ms = float(np.percentile(timings, 99))
    values = [v for r in rows if not r.get("error") and (v := _score_value(r)) is not None]
    if values:
        result.prediction_mean = float(np.mean(values))
    answered = [r for r in rows if not r.get("error") and r.get("id") is not None]
    if not labels.empty and answered:
        frame = pd.DataFrame(
            {
                "id": [str(r["id"]) for r in answered],
                "prediction": [r["prediction"] for r in answered],
                "score": [_score_value(r) for r in answered],
            }
        ).drop_duplicates("id", keep="last")
        joined = frame.merge(labels.assign(id=labels["id"].astype(str)), on="id")
        result.labelled = len(joined)
        if len(joined):
            result.live_metric = _live_metric(joined, config.rollout.metric)
    return result


def _live_metric(joined: pd.DataFrame, metric: str) -> float | None:
    from sklearn import metrics as skm

    if metric == "rmse":
        errors = joined["prediction"].astype(float) - joined["label"].astype(float)
        return float(np.sqrt(np.mean(errors**2)))
    truth = joined["label"].astype(str)
    if metric == "roc_auc":
        if truth.nunique() != 2 or joined["score"].isna().any():
            return None
        positive = sorted(truth.unique())[-1]
        return float(skm.roc_auc_score(truth == positive, joined["score"]))
    return float(skm.accuracy_score(truth, joined["prediction"].astype(str)))


def _prediction_psi(
    champion: list[dict[str, Any]], candidate: list[dict[str, Any]]
) -> float | None:
    """PSI of the candidate's scores against the champion's, on the champion's deciles (or
    label frequencies when the predictions are labels without probabilities)."""
    base = [v for r in champion if not r.get("error") and (v := _score_value(r)) is not None]
    new = [v for r in candidate if not r.get("error") and (v := _score_value(r)) is not None]
    if len(base) >= _BINS and len(new) >= _BINS:
        edges = np.unique(np.quantile(base, np.linspace(0, 1, _BINS + 1)[1:-1]))
        expected = np.bincount(np.searchsorted(edges, base), minlength=len(edges) + 1)
        actual = np.bincount(np.searchsorted(edges, new), minlength=len(edges) + 1)
        return psi(expected / expected.sum(), actual / actual.sum())
    labels_base = [str(r["prediction"]) for r in champion if not r.get("error")]
    labels_new = [str(r["prediction"]) for r in candidate if not r.get("error")]
    if not labels_base or not labels_new:
        return None
    categories = sorted(set(labels_base) | set(labels_new))
    expected = np.array([labels_base.count(c) for c in categories], dtype=float)
    actual = np.array([labels_new.count(c) for c in categories], dtype=float)
    return psi(expected / expected.sum(), actual / actual.sum())


def _agreement(champion: list[dict[str, Any]], candidate: list[dict[str, Any]]) -> float | None:
    pairs = [
        (a.get("prediction"), b.get("prediction"))
        for a, b in zip(champion, candidate, strict=True)
        if not b.get("error")
    ]
    if not pairs:
        return None
    return sum(str(a) == str(b) for a, b in pairs) / len(pairs)


def _shadow_rows(
    registry: ModelRegistry,
    version: int,
    champion_rows: list[dict[str, Any]],
    report: RolloutReport,
) -> list[dict[str, Any]]:
    """The shadow's predictions on the champion's captured records, one per record (paired),
    with ``error`` on the records it refused or failed."""
    if not champion_rows:
        return []
    try:
        scorer = Scorer(registry.load(version))
    except Exception as exc:  # a shadow that cannot load is an error on every record
        report.notes.append(f"shadow version {version} could not be loaded: {exc}")
        return [{**r, "prediction": None, "error": str(exc)} for r in champion_rows]
    started = time.perf_counter()
    try:
        features = pd.DataFrame([r.get("features") or {} for r in champion_rows])
        validation = scorer.schema.validate_frame(features)
        scored = scorer.score_frame(validation.valid) if len(validation.valid) else pd.DataFrame()
    except Exception as exc:  # a schema it cannot take, a model that raises: all errors
        report.notes.append(f"shadow version {version} failed on the captured records: {exc}")
        return [{**r, "prediction": None, "error": str(exc)} for r in champion_rows]
    report.notes.append(
        f"shadow scored {len(validation.valid)} captured record(s) offline in "
        f"{(time.perf_counter() - started) * 1000:.0f} ms (latency is not compared in shadow)"
    )
    out: list[dict[str, Any]] = []
    probability_columns = [c for c in scored.columns if c.startswith("probability_")]
    for position, row in enumerate(champion_rows):
        base = {"id": row.get("id"), "request_id": row.get("request_id")}
        if position not in scored.index:
            out.append({**base, "prediction": None, "error": "refused by the shadow's schema"})
            continue
        item = scored.loc[position]
        probabilities = {
            c.removeprefix("probability_"): float(item[c]) for c in probability_columns
        }
        out.append(
            {
                **base,
                "prediction": _plain(item["prediction"]),
                "probabilities": probabilities or None,
            }
        )
    return out


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


# ---- the decision -------------------------------------------------------------------------


def _decide(report: RolloutReport, rollout: Rollout, now: datetime, config: SkyliftConfig) -> None:
    policy = config.rollout
    champion, candidate = report.champion, report.candidate
    if candidate.records < policy.min_requests:
        report.reasons.append(
            f"{candidate.records} candidate record(s) captured, {policy.min_requests} needed "
            "([rollout].min_requests): waiting"
        )
        return
    breaches = []
    increase = (candidate.error_rate or 0.0) - (champion.error_rate or 0.0)
    if increase > policy.max_error_rate_increase:
        breaches.append(
            f"error rate {candidate.error_rate:.4f} vs champion {champion.error_rate or 0.0:.4f} "
            f"(+{increase:.4f} > {policy.max_error_rate_increase})"
        )
    if (
        report.mode == "canary"
        and candidate.p99_scoring_ms is not None
        and champion.p99_scoring_ms
        and candidate.p99_scoring_ms / champion.p99_scoring_ms > policy.max_latency_ratio
    ):
        breaches.append(
            f"p99 scoring time {candidate.p99_scoring_ms:.1f} ms vs champion "
            f"{champion.p99_scoring_ms:.1f} ms (ratio > {policy.max_latency_ratio})"
        )
    if report.prediction_psi is not None and report.prediction_psi > policy.max_prediction_psi:
        breaches.append(
            f"prediction PSI vs champion {report.prediction_psi:.4f} > {policy.max_prediction_psi}"
        )
    if candidate.live_metric is not None and champion.live_metric is not None:
        drop = candidate.live_metric - champion.live_metric
        drop = drop if policy.metric == "rmse" else -drop  # rmse: higher is worse
        if drop > policy.max_metric_drop:
            breaches.append(
                f"live {policy.metric} {candidate.live_metric:.4f} vs champion "
                f"{champion.live_metric:.4f} (worse by {drop:.4f} > {policy.max_metric_drop})"
            )
    if breaches:
        report.reasons += breaches
        report.decision = "abort" if policy.auto_abort else "breach"
        return
    assert rollout.candidate is not None
    hold = timedelta(hours=policy.hold_hours or config.monitor.window_hours)
    held = now - rollout.candidate.updated_at
    if held < hold:
        report.reasons.append(f"no breach; held {held} of {hold}: waiting")
        return
    report.reasons.append(f"held {held} (>= {hold}) with {candidate.records} records, no breach")
    report.decision = "promote" if policy.auto_promote else "ready"


def _apply(report: RolloutReport, registry: ModelRegistry, version: int | None) -> None:
    reason = "; ".join(report.reasons)[:500]
    try:
        if report.decision == "promote":
            promote_candidate(registry, expected_version=version, reason=reason, actor="monitor")
        else:
            abort_candidate(registry, expected_version=version, reason=reason, actor="monitor")
        report.applied = True
    except RegistryError as exc:  # a concurrent decision won: ours is recorded, not applied
        report.notes.append(f"{report.decision} not applied: {type(exc).__name__}: {exc}")
        logger.warning("rollout %s not applied: %s", report.decision, exc)


def _store(config: SkyliftConfig, s3: Any, report: RolloutReport, now: datetime) -> None:
    key = f"{config.storage.reports_prefix}rollout/{now.strftime('%Y%m%dT%H%M%S%fZ')}.json"
    report.report_key = key
    s3.put_object(
        Bucket=config.storage.bucket, Key=key, Body=report.to_json(), ContentType="application/json"
    )


def _publish(
    config: SkyliftConfig, s3: Any, events: Any, report: RolloutReport, now: datetime
) -> None:
    """The decision as an EventBridge event; a failed publish is noted in the stored report."""
    detail = {
        "model": report.model,
        "decision": report.decision,
        "applied": report.applied,
        "mode": report.mode,
        "champion_version": report.champion.version,
        "candidate_version": report.candidate.version,
        "reasons": report.reasons,
        "report_key": report.report_key,
    }
    failed = put_event(events, ROLLOUT_SOURCE, ROLLOUT_DETAIL_TYPE, detail)
    if failed is None:
        report.event_published = True
    else:
        report.notes.append(f"rollout event not published: {failed}")
    _store(config, s3, report, now)
