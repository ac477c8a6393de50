"""The monitor's rollout decision on mocked S3 and EventBridge: abort on an injected error
rate, hold then promote after the window, wait below min_requests, shadow's paired
predictions, and the alarm's immediate abort."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pytest

from skylift.registry_types import ConcurrentUpdateError
from skylift.rollout import CANDIDATE_ALIAS, read_rollout, start_candidate
from skylift.rollout_decision import abort_on_alarm, decide_rollout
from skylift.scoring import Scorer
from tests.helpers import load_event


@pytest.fixture
def events(s3):
    import boto3

    return boto3.client("events", region_name="us-east-1")


@pytest.fixture
def two_versions(registry, churn_bundle):
    registry.register(churn_bundle)
    registry.register(churn_bundle)
    registry.promote(1)
    return registry


def policy(config, **changes: Any):
    rollout = config.rollout.model_copy(update=changes)
    return config.model_copy(update={"rollout": rollout})


def write_capture(
    s3,
    config,
    frame: pd.DataFrame,
    *,
    version: int,
    role: str | None,
    error_every: int = 0,
    scoring_ms: float = 5.0,
    key: str,
) -> None:
    """Capture lines as the score function writes them while a canary is active."""
    scorer = Scorer(_bundle_cache["bundle"])
    features = frame.drop(columns=["churned", "customer_id"])
    scored = scorer.score_frame(scorer.schema.validate_frame(features).valid)
    lines = []
    for n, ((_, row), (_, score), cid) in enumerate(
        zip(features.iterrows(), scored.iterrows(), frame["customer_id"], strict=True)
    ):
        failed = error_every and n % error_every == 0
        item = {
            "captured_at": datetime.now(UTC).isoformat(),
            "model": "churn",
            "model_version": version,
            "request_id": f"r{n // 5}",
            "id": cid,
            "features": {k: (None if pd.isna(v) else v) for k, v in row.items()},
            "prediction": None if failed else _plain(score["prediction"]),
            "probabilities": None
            if failed
            else {str(c): score[f"probability_{c}"] for c in scorer.classes or []},
        }
        if role is not None:
            item.update(role=role, scoring_ms=scoring_ms)
        if failed:
            item["error"] = "RuntimeError: injected"
        lines.append(json.dumps(item))
    s3.put_object(Bucket=config.storage.bucket, Key=key, Body=("\n".join(lines) + "\n").encode())


_bundle_cache: dict[str, Any] = {}


@pytest.fixture(autouse=True)
def _bundle(churn_bundle):
    _bundle_cache["bundle"] = churn_bundle


def _plain(value):
    return value.item() if hasattr(value, "item") else value


def canary_traffic(s3, config, frame, *, error_every: int = 0, candidate_ms: float = 5.0):
    write_capture(s3, config, frame.iloc[:400], version=1, role="champion", key="capture/a")
    write_capture(
        s3,
        config,
        frame.iloc[400:700],
        version=2,
        role="candidate",
        error_every=error_every,
        scoring_ms=candidate_ms,
        key="capture/b",
    )


def stored(s3, config, key: str) -> dict[str, Any]:
    return json.loads(s3.get_object(Bucket=config.storage.bucket, Key=key)["Body"].read())


def test_abort_on_an_injected_error_rate(two_versions, s3, events, churn_config, churn_frame):
    config = policy(churn_config, min_requests=100)
    start_candidate(two_versions, 2, "canary", percent=30)
    canary_traffic(s3, config, churn_frame, error_every=10)  # 10% of its records fail
    report = decide_rollout(config, s3, events, registry=two_versions)
    assert report is not None and report.decision == "abort" and report.applied
    assert report.candidate.records == 300 and report.candidate.error_rate == pytest.approx(0.1)
    assert report.champion.error_rate == 0.0
    assert any("error rate" in reason for reason in report.reasons)
    assert two_versions.alias(CANDIDATE_ALIAS).mode == "aborted"
    assert two_versions.resolve() == 1
    assert report.report_key and report.report_key.startswith("reports/rollout/")
    assert stored(s3, config, report.report_key)["decision"] == "abort"
    assert report.event_published


def test_breach_without_auto_abort_is_reported_not_applied(
    two_versions, s3, churn_config, churn_frame
):
    config = policy(churn_config, min_requests=100, auto_abort=False)
    start_candidate(two_versions, 2, "canary", percent=30)
    canary_traffic(s3, config, churn_frame, candidate_ms=50.0)  # 10x the champion's p99
    report = decide_rollout(config, s3, registry=two_versions)
    assert report is not None and report.decision == "breach" and not report.applied
    assert any("p99 scoring time" in reason for reason in report.reasons)
    assert read_rollout(two_versions).candidate is not None


def test_hold_then_promote_after_the_window(two_versions, s3, churn_config, churn_frame):
    config = policy(churn_config, min_requests=100, hold_hours=1.0, auto_promote=True)
    started = start_candidate(two_versions, 2, "canary", percent=30).updated_at
    canary_traffic(s3, config, churn_frame)
    early = decide_rollout(config, s3, registry=two_versions, now=started + timedelta(minutes=30))
    assert early is not None and early.decision == "hold" and not early.applied
    assert early.prediction_psi is not None and early.prediction_psi < 0.2
    late = decide_rollout(config, s3, registry=two_versions, now=started + timedelta(hours=1))
    assert late is not None and late.decision == "promote" and late.applied
    assert two_versions.resolve() == 2
    assert two_versions.alias(CANDIDATE_ALIAS).mode == "promoted"
    assert decide_rollout(config, s3, registry=two_versions) is None  # nothing left to decide


def test_too_few_records_waits(two_versions, s3, churn_config, churn_frame):
    config = policy(churn_config, min_requests=1000, auto_promote=True)
    started = start_candidate(two_versions, 2, "canary", percent=30).updated_at
    canary_traffic(s3, config, churn_frame, error_every=2)
    report = decide_rollout(config, s3, registry=two_versions, now=started + timedelta(days=2))
    assert report is not None and report.decision == "hold"
    assert "min_requests" in report.reasons[0]


def test_shadow_is_judged_on_paired_predictions(two_versions, s3, churn_config, churn_frame):
    config = policy(churn_config, min_requests=100, hold_hours=1.0, auto_promote=True)
    started = start_candidate(two_versions, 2, "shadow").updated_at
    write_capture(s3, config, churn_frame.iloc[:300], version=1, role=None, key="capture/c")
    report = decide_rollout(config, s3, registry=two_versions, now=started + timedelta(hours=2))
    assert report is not None and report.mode == "shadow"
    assert report.candidate.records == 300 and report.agreement == 1.0  # same model: paired
    assert report.prediction_psi == pytest.approx(0.0, abs=1e-9)
    assert report.decision == "promote" and two_versions.resolve() == 2


def test_labels_drive_the_live_metric(two_versions, s3, churn_config, churn_frame):
    config = policy(churn_config, min_requests=100, metric="accuracy")
    start_candidate(two_versions, 2, "canary", percent=30)
    canary_traffic(s3, config, churn_frame)
    labels = churn_frame.iloc[:700][["customer_id", "churned"]].rename(columns={"churned": "label"})
    labels.loc[400:700, "label"] = 1 - labels.loc[400:700, "label"]  # the canary's are wrong
    s3.put_object(
        Bucket=config.storage.bucket,
        Key=f"{config.storage.labels_prefix}labels.csv",
        Body=labels.to_csv(index=False).encode(),
    )
    report = decide_rollout(config, s3, registry=two_versions)
    assert report is not None and report.candidate.labelled == 300
    assert report.champion.live_metric is not None and report.candidate.live_metric is not None
    assert report.candidate.live_metric < report.champion.live_metric
    assert report.decision == "abort" and any("live accuracy" in r for r in report.reasons)


def test_alarm_aborts_without_waiting(two_versions, s3, events, churn_config):
    start_candidate(two_versions, 2, "canary", percent=30)
    event = load_event("cloudwatch_alarm_candidate_errors.json")
    report = abort_on_alarm(churn_config, s3, event, events, registry=two_versions)
    assert report is not None and report.applied and "in ALARM" in report.reasons[0]
    assert read_rollout(two_versions).candidate is None
    ok = {**event, "detail": {**event["detail"], "state": {"value": "OK"}}}
    assert abort_on_alarm(churn_config, s3, ok, registry=two_versions) is None


def test_a_decision_that_lost_the_race_is_recorded_not_applied(
    two_versions, s3, churn_config, churn_frame, monkeypatch
):
    config = policy(churn_config, min_requests=100)
    start_candidate(two_versions, 2, "canary", percent=30)
    canary_traffic(s3, config, churn_frame, error_every=5)
    real = two_versions.replace_alias

    def someone_else_first(state, etag):
        raise ConcurrentUpdateError("changed concurrently")

    monkeypatch.setattr(two_versions, "replace_alias", someone_else_first)
    report = decide_rollout(config, s3, registry=two_versions)
    monkeypatch.setattr(two_versions, "replace_alias", real)
    assert report is not None and report.decision == "abort" and not report.applied
    assert any("not applied" in note for note in report.notes)
