"""Scheduled retraining: train a challenger on training/, compare it with the champion on the
same holdout, register it always, promote it only through the gate and a conditional alias
write, and leave a decision report under reports/retrain/."""

from __future__ import annotations

import hashlib
import logging
import resource
import sys
import time
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from skylift.bundle import TrainingDataRef
from skylift.config import SkyliftConfig
from skylift.gate import (
    GateCheck,
    GateDecision,
    decide,
    schema_compatible,
    servable,
    shared_holdout,
    with_check,
)
from skylift.registry import AliasNotFoundError, ConcurrentUpdateError, ModelRegistry
from skylift.reports import HoldoutInfo, ModelResult, RetrainDecision, RetrainReport, RunLimits
from skylift.rollout import start_candidate
from skylift.training import (
    TrainingError,
    evaluate,
    parse_table,
    positive_class,
    train_candidate,
)

__all__ = ["load_training_prefix", "retrain"]

logger = logging.getLogger(__name__)

_TABLE_SUFFIXES = (".csv", ".csv.gz", ".parquet", ".pq")
NEAR_LIMIT = 0.8  # "within 20% of Lambda's limits"


def load_training_prefix(config: SkyliftConfig, s3: Any) -> tuple[pd.DataFrame, TrainingDataRef]:
    """Every CSV/Parquet object under training/, concatenated in key order."""
    bucket, prefix = config.storage.bucket, config.storage.training_prefix
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys += [
            o["Key"] for o in page.get("Contents", []) if o["Key"].lower().endswith(_TABLE_SUFFIXES)
        ]
    if not keys:
        raise TrainingError(
            f"no training data (.csv, .csv.gz, .parquet) under s3://{bucket}/{prefix}"
        )
    digest = hashlib.sha256()
    frames = []
    for key in sorted(keys):
        data = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        digest.update(hashlib.sha256(data).digest())
        frames.append(parse_table(data, key))
    frame = pd.concat(frames, ignore_index=True)
    ref = TrainingDataRef(uri=f"s3://{bucket}/{prefix}", sha256=digest.hexdigest(), rows=len(frame))
    return frame, ref


def _peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def retrain(
    config: SkyliftConfig,
    s3: Any,
    *,
    context: Any = None,
    trigger: str = "schedule",
    now: datetime | None = None,
) -> RetrainReport:
    """Run one retrain; returns (and stores) the decision report. Never raises for a
    missing champion or data: the report says what happened."""
    started = time.perf_counter()
    now = now or datetime.now(UTC)
    registry = ModelRegistry.from_config(config, s3_client=s3)
    report = RetrainReport(
        model=config.model.name,
        started_at=now.isoformat(),
        trigger=trigger,
        metric=config.retrain.metric,
        min_improvement=config.retrain.min_improvement,
        status="failed",
        decision=RetrainDecision(promote=False, promoted=False, reason="not run"),
    )
    try:
        timings: dict[str, float] = {}
        clock = time.perf_counter()
        frame, data_ref = load_training_prefix(config, s3)
        timings["load_seconds"] = time.perf_counter() - clock
        report.data = data_ref
        try:
            champion = registry.load_alias(allow_version_skew=config.model.allow_version_skew)
        except AliasNotFoundError:
            champion = None
        result = train_candidate(config, frame, data_ref)
        timings.update(result.timings)
        report.warnings = result.warnings
        challenger = result.bundle
        report.holdout = HoldoutInfo(
            rows=len(result.holdout),
            seed=config.model.seed,
            fraction=config.model.holdout_fraction,
        )
        champion_schema = champion.manifest.feature_schema if champion is not None else None
        schema_check = schema_compatible(challenger.manifest.feature_schema, champion_schema)
        # Both models are scored on exactly the same rows: those both schemas accept.
        shared = shared_holdout(result.holdout, challenger.manifest.feature_schema, champion_schema)
        report.holdout.scored_rows = shared.rows
        report.holdout.excluded_rows = shared.excluded
        report.holdout.exclusions = shared.exclusions
        registry.register(challenger, actor=f"retrain ({trigger})")
        version = challenger.manifest.version
        challenger_metrics = dict(challenger.manifest.metrics)
        champion_metrics: dict[str, float] | None = None
        if champion is not None and shared.rows == 0:
            decision = GateDecision(
                False,
                "no holdout row is accepted by both the challenger's and the champion's "
                f"schema ({shared.excluded} excluded): the models cannot be compared",
                [schema_check],
            )
        else:
            if champion is not None and shared.champion is not None:
                target = result.holdout.loc[shared.index, config.model.target]
                challenger_metrics = _evaluate_on(
                    challenger.model, shared.challenger, target, config, report.warnings
                )
                champion_metrics = _evaluate_on(
                    champion.model, shared.champion, target, config, report.warnings
                )
            decision = decide(challenger_metrics, champion_metrics, config.retrain, schema_check)
        decision = with_check(decision, servable(challenger.manifest, config.deploy.runtime))
        promoted = False
        # [retrain].promote_to: a first model becomes champion; later ones may go to the
        # candidate alias first, as a canary or a shadow, and the monitor decides the rest.
        promoted_to = config.retrain.promote_to if champion is not None else "champion"
        if decision.promote:
            try:
                if promoted_to == "champion":
                    registry.promote(
                        version or 0,
                        expected_current=champion.version if champion else None,
                        reason=decision.reason,
                        actor=f"retrain ({trigger})",
                    )
                else:
                    start_candidate(
                        registry,
                        version or 0,
                        promoted_to,
                        percent=config.retrain.canary_percent,
                        reason=decision.reason,
                        actor=f"retrain ({trigger})",
                    )
                promoted = True
            except ConcurrentUpdateError as exc:
                decision = GateDecision(
                    False,
                    f"lost race: the champion changed while this retrain ran ({exc})",
                    [*decision.checks, GateCheck("alias", False, "conditional write lost")],
                )
        report.challenger = ModelResult(
            version=version, metrics=challenger_metrics, rows=shared.rows
        )
        if champion is not None:
            report.champion = ModelResult(
                version=champion.version, metrics=champion_metrics, rows=shared.rows
            )
        report.decision = RetrainDecision(
            **decision.as_dict(), promoted=promoted, promoted_to=promoted_to if promoted else None
        )
        report.status = "succeeded"
        timings["total_seconds"] = time.perf_counter() - started
        report.timings = timings
    except TrainingError as exc:
        report.reason = str(exc)
        report.decision = RetrainDecision(promote=False, promoted=False, reason=str(exc))
        report.timings = {"total_seconds": time.perf_counter() - started}
    report.limits = _limits(config, context, report.timings["total_seconds"])
    report.finished_at = datetime.now(UTC).isoformat()
    key = f"{config.storage.reports_prefix}retrain/{now.strftime('%Y%m%dT%H%M%S%fZ')}.json"
    s3.put_object(
        Bucket=config.storage.bucket,
        Key=key,
        Body=report.to_json(),
        ContentType="application/json",
    )
    report.report_key = key
    logger.info("retrain %s: %s", report.status, report.decision.reason)
    return report


def _evaluate_on(
    model: Any,
    features: pd.DataFrame,
    target: pd.Series,
    config: SkyliftConfig,
    notes: list[str],
) -> dict[str, float]:
    """A model's metrics on the shared holdout rows, its positive class the configured one
    (or, when the model lacks it, its own last class)."""
    classes = getattr(model, "classes_", None)
    classes = list(classes) if classes is not None else None
    try:
        positive = positive_class(classes, config.model.positive_class)
    except TrainingError as exc:
        notes.append(f"{exc}: scored with its last class as positive")
        positive = positive_class(classes)
    return evaluate(model, features, target, config.model.task, positive=positive, notes=notes)


def _limits(config: SkyliftConfig, context: Any, elapsed: float) -> RunLimits:
    """Whether this run came within 20% of the function's time or memory limits."""
    timeout = config.retrain.timeout_seconds
    memory = config.retrain.memory_mb
    if context is not None and hasattr(context, "memory_limit_in_mb"):
        memory = int(context.memory_limit_in_mb)
    peak = _peak_rss_mb()
    near_time = elapsed >= NEAR_LIMIT * timeout
    near_memory = peak >= NEAR_LIMIT * memory
    warnings = []
    if near_time:
        warnings.append(f"training took {elapsed:.0f} s of a {timeout} s timeout")
    if near_memory:
        warnings.append(f"peak memory {peak:.0f} MB of {memory} MB")
    return RunLimits(
        timeout_seconds=timeout,
        elapsed_seconds=round(elapsed, 3),
        memory_mb=memory,
        peak_rss_mb=round(peak, 1),
        near_limit=near_time or near_memory,
        warnings=warnings,
    )
