"""Monitoring: drift of live inputs and predictions against the champion's baseline, and live
accuracy from ground-truth labels.

Inputs in the window come from API capture (JSON Lines under capture/, written by Firehose)
and from batch scoring (the inputs and predictions its succeeded manifests name). Drift per
feature: PSI on the baseline's bins (numeric) or frequencies (categorical), with KS
(``scipy.stats.ks_2samp``) or chi-square (``scipy.stats.chisquare``) beside it.
"""

from __future__ import annotations

import gzip
import io
import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from skylift.config import SkyliftConfig
from skylift.profile import OTHER, CategoricalProfile, NumericProfile, bin_proportions
from skylift.registry import AliasNotFoundError, ModelRegistry
from skylift.reports import FeatureDrift, LiveMetrics, MonitorReport, MonitorWindow
from skylift.scoring import PREDICTION_COLUMN, PROBABILITY_PREFIX
from skylift.topology import DRIFT_DETAIL_TYPE, DRIFT_SOURCE

__all__ = [
    "categorical_drift",
    "live_metrics",
    "load_window",
    "monitor",
    "numeric_drift",
    "psi",
    "put_event",
    "read_capture",
]

logger = logging.getLogger(__name__)

EPSILON = 1e-4  # floor for empty bins: PSI stays finite


def psi(expected: list[float] | np.ndarray, actual: list[float] | np.ndarray) -> float:
    """Population stability index between two distributions over the same bins."""
    e = np.clip(np.asarray(expected, dtype="float64"), EPSILON, None)
    a = np.clip(np.asarray(actual, dtype="float64"), EPSILON, None)
    e, a = e / e.sum(), a / a.sum()
    return float(np.sum((a - e) * np.log(a / e)))


def numeric_drift(profile: NumericProfile, values: pd.Series) -> FeatureDrift:
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64")
    finite = numbers[np.isfinite(numbers)]
    if finite.size == 0 or not profile.edges:
        return FeatureDrift(psi=None, rows=int(finite.size))
    actual = bin_proportions(finite, profile.edges)
    return FeatureDrift(
        kind="numeric",
        psi=psi(profile.proportions, actual),
        rows=int(finite.size),
        baseline=profile.proportions,
        current=actual,
        bins=profile.edges,
        ks_pvalue=float(stats.ks_2samp(profile.sample, finite).pvalue) if profile.sample else None,
    )


def categorical_drift(profile: CategoricalProfile, values: pd.Series) -> FeatureDrift:
    present = values.dropna().astype(str)
    if present.empty:
        return FeatureDrift(psi=None, rows=0)
    categories = list(profile.frequencies)
    known = set(categories) - {OTHER}
    counts = present.where(present.isin(known), OTHER).value_counts()
    if OTHER not in categories and counts.get(OTHER, 0):
        categories.append(OTHER)
    expected = np.array([profile.frequencies.get(c, 0.0) for c in categories])
    observed = np.array([float(counts.get(c, 0)) for c in categories])
    actual = observed / observed.sum()
    expected_counts = np.clip(expected, EPSILON, None)
    expected_counts = expected_counts / expected_counts.sum() * observed.sum()
    return FeatureDrift(
        kind="categorical",
        psi=psi(expected, actual),
        chi2_pvalue=float(stats.chisquare(observed, expected_counts).pvalue),
        rows=int(present.size),
        categories=categories,
        baseline=expected.tolist(),
        current=actual.tolist(),
    )


# ---- the window ---------------------------------------------------------------------------------


def _objects(s3: Any, bucket: str, prefix: str, since: datetime) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        found += [o for o in page.get("Contents", []) if o["LastModified"] >= since]
    return found


def _read(s3: Any, bucket: str, key: str) -> bytes:
    data = bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    return gzip.decompress(data) if key.endswith(".gz") else data


def _table(data: bytes, key: str) -> pd.DataFrame:
    name = key.lower().removesuffix(".gz")
    if name.endswith((".jsonl", ".ndjson")):
        return pd.read_json(io.BytesIO(data), lines=True, dtype=False)
    return pd.read_csv(io.BytesIO(data))


def read_capture(
    config: SkyliftConfig, s3: Any, since: datetime
) -> tuple[list[dict[str, Any]], list[str]]:
    """The API capture lines of objects written since ``since``, parsed; notes for bad lines."""
    bucket = config.storage.bucket
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    for item in _objects(s3, bucket, config.storage.capture_prefix, since):
        for line in _read(s3, bucket, item["Key"]).decode("utf-8", "replace").splitlines():
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except ValueError:
                    notes.append(f"skipped a malformed capture line in {item['Key']}")
    return rows, notes


def load_window(
    config: SkyliftConfig, s3: Any, now: datetime
) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """(features, predictions with id/prediction/probability_*, notes) seen in the window."""
    bucket = config.storage.bucket
    since = now - timedelta(hours=config.monitor.window_hours)
    notes: list[str] = []
    feature_frames: list[pd.DataFrame] = []
    prediction_frames: list[pd.DataFrame] = []

    rows, capture_notes = read_capture(config, s3, since)
    notes += capture_notes
    # a canary's lines are the candidate's: the champion's drift is about its own answers
    rows = [r for r in rows if r.get("role", "champion") == "champion"]
    if rows:
        feature_frames.append(pd.DataFrame([r.get("features", {}) for r in rows]))
        prediction_frames.append(
            pd.DataFrame(
                {
                    "id": [r.get("id") for r in rows],
                    "prediction": [r.get("prediction") for r in rows],
                    **_probability_columns([r.get("probabilities") for r in rows]),
                }
            )
        )
    else:
        notes.append(f"no API capture under {config.storage.capture_prefix} in the window")

    manifests = [
        o
        for o in _objects(s3, bucket, config.storage.predictions_prefix, since)
        if o["Key"].endswith(".manifest.json")
    ]
    batch_files = 0
    id_column = config.model.id_column
    for item in manifests:
        manifest = json.loads(_read(s3, bucket, item["Key"]))
        if manifest.get("status") != "succeeded" or not manifest.get("rows_scored"):
            continue
        try:
            inputs = _table(_read(s3, bucket, manifest["input_key"]), manifest["input_key"])
            outputs = _table(
                _read(s3, bucket, manifest["predictions_key"]), manifest["predictions_key"]
            )
        except Exception as exc:  # an input deleted since: report it, keep going
            notes.append(f"could not read batch files of {item['Key']}: {exc}")
            continue
        if id_column and id_column in inputs.columns and id_column in outputs.columns:
            inputs = inputs[inputs[id_column].isin(outputs[id_column])]
            outputs = outputs.rename(columns={id_column: "id"})
        feature_frames.append(inputs)
        prediction_frames.append(outputs)
        batch_files += 1
    if not batch_files:
        notes.append(
            f"no scored batch files under {config.storage.predictions_prefix} in the window"
        )
    features = pd.concat(feature_frames, ignore_index=True) if feature_frames else pd.DataFrame()
    predictions = (
        pd.concat(prediction_frames, ignore_index=True) if prediction_frames else pd.DataFrame()
    )
    return features, predictions, notes


def _probability_columns(probabilities: list[dict[str, float] | None]) -> dict[str, list[Any]]:
    labels = sorted({k for p in probabilities if p for k in p})
    return {f"probability_{k}": [(p or {}).get(k) for p in probabilities] for k in labels}


# ---- labels and live metrics ----------------------------------------------------------------


def load_labels(config: SkyliftConfig, s3: Any) -> tuple[pd.DataFrame, list[str]]:
    """Ground truth under labels/: one row per id (the latest by time when duplicated)."""
    bucket, prefix = config.storage.bucket, config.storage.labels_prefix
    id_column = config.model.id_column or "id"
    frames = []
    notes: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            try:
                frames.append(_table(_read(s3, bucket, item["Key"]), item["Key"]))
            except Exception as exc:
                notes.append(f"unreadable labels file {item['Key']}: {exc}")
    if not frames:
        return pd.DataFrame(columns=["id", "label"]), [f"no labels under {prefix}", *notes]
    labels = pd.concat(frames, ignore_index=True)
    label_column = "label" if "label" in labels.columns else config.model.target
    if id_column not in labels.columns or label_column not in labels.columns:
        return pd.DataFrame(columns=["id", "label"]), [
            f"labels need columns {id_column!r} and 'label' (or {config.model.target!r})",
            *notes,
        ]
    labels = labels.rename(columns={id_column: "id", label_column: "label"})
    duplicates = int(labels["id"].duplicated().sum())
    if "time" in labels.columns:
        labels = labels.sort_values("time")
    labels = labels.drop_duplicates("id", keep="last")[["id", "label"]]
    if duplicates:
        notes.append(f"{duplicates} duplicate label id(s): kept the latest")
    return labels, notes


def live_metrics(
    predictions: pd.DataFrame, labels: pd.DataFrame, task: str, positive: Any = None
) -> tuple[LiveMetrics | None, list[str]]:
    """Join labels to predictions by id; accuracy and ROC AUC of P(``positive``), or RMSE.

    ``positive`` defaults to the last of the two probability columns' classes."""
    from sklearn import metrics as skm

    if predictions.empty or labels.empty or "id" not in predictions.columns:
        return None, []
    scored = predictions.dropna(subset=["id"]).drop_duplicates("id", keep="last")
    scored = scored.assign(id=scored["id"].astype(str))
    joined = scored.merge(labels.assign(id=labels["id"].astype(str)), on="id", how="inner")
    notes = []
    unmatched = len(labels) - len(joined)
    if unmatched:
        notes.append(f"{unmatched} label(s) matched no prediction in the window")
    if joined.empty:
        return None, notes
    result = LiveMetrics(rows=len(joined))
    if task == "classification":
        truth = joined["label"].astype(str)
        result.accuracy = float(skm.accuracy_score(truth, joined["prediction"].astype(str)))
        columns = [c for c in joined.columns if c.startswith(PROBABILITY_PREFIX)]
        if positive is None and len(columns) == 2:
            positive = columns[1].removeprefix(PROBABILITY_PREFIX)
        column = f"{PROBABILITY_PREFIX}{positive}"
        scores = pd.to_numeric(joined.get(column), errors="coerce")
        if positive is None or column not in joined.columns:
            notes.append(
                "live roc_auc not computed: no binary class probabilities in the predictions"
                + (f" (no {column!r} column)" if positive is not None else "")
            )
        elif truth.nunique() != 2:
            notes.append(
                f"live roc_auc not computed: the labels hold {truth.nunique()} class(es), not 2"
            )
        elif scores.isna().any():
            notes.append(
                f"live roc_auc not computed: {int(scores.isna().sum())} rows lack {column}"
            )
        else:
            result.roc_auc = float(skm.roc_auc_score(truth == str(positive), scores))
    else:
        errors = joined["prediction"].astype(float) - joined["label"].astype(float)
        result.rmse = float(np.sqrt(np.mean(errors**2)))
    return result, notes


# ---- the monitor run ------------------------------------------------------------------------


def monitor(
    config: SkyliftConfig, s3: Any, events: Any | None = None, *, now: datetime | None = None
) -> MonitorReport:
    """One monitoring run: the report (also stored under reports/monitoring/)."""
    now = now or datetime.now(UTC)
    threshold = config.monitor.psi_threshold
    report = MonitorReport(
        model=config.model.name,
        generated_at=now.isoformat(),
        window=MonitorWindow.model_validate(
            {
                "hours": config.monitor.window_hours,
                "from": (now - timedelta(hours=config.monitor.window_hours)).isoformat(),
                "to": now.isoformat(),
            }
        ),
        threshold=threshold,
    )
    registry = ModelRegistry.from_config(config, s3_client=s3)
    try:
        version = registry.resolve()
        manifest = registry.describe(version)
    except AliasNotFoundError:
        report.notes.append("no champion yet: nothing to monitor")
        return _store(config, s3, report, now)
    report.model_version = version
    features, predictions, notes = load_window(config, s3, now)
    report.notes += notes
    report.rows = len(features)
    baseline = manifest.baseline
    if baseline is None or features.empty:
        if features.empty:
            report.notes.append("empty window: no inputs to compare")
        return _store(config, s3, report, now)
    for name, profile in baseline.features.items():
        if name not in features.columns:
            report.notes.append(f"feature {name} absent from the window's inputs")
            continue
        if isinstance(profile, NumericProfile):
            result = numeric_drift(profile, features[name])
        else:
            result = categorical_drift(profile, features[name])
        result.drifted = result.psi is not None and result.psi > threshold
        report.features[name] = result
    scored = [r.psi for r in report.features.values() if r.psi is not None]
    report.max_psi = max(scored) if scored else None
    report.drifted_features = sorted(n for n, r in report.features.items() if r.drifted)
    positive = _positive_class(manifest.classes, config, report)
    report.prediction_psi = _prediction_psi(baseline.prediction, predictions, positive, report)
    labels, label_notes = load_labels(config, s3)
    report.notes += label_notes
    report.live_metrics, join_notes = live_metrics(predictions, labels, config.model.task, positive)
    report.notes += join_notes
    _store(config, s3, report, now)
    if report.drifted_features and config.monitor.publish_drift_event and events is not None:
        _publish_drift(config, s3, events, report, now)
    return report


def _positive_class(classes: list[Any] | None, config: SkyliftConfig, report: MonitorReport) -> Any:
    """The champion's positive class ([model].positive_class, else its last class)."""
    from skylift.training import TrainingError, positive_class

    try:
        positive = positive_class(classes, config.model.positive_class)
    except TrainingError as exc:  # configured after the champion was trained
        report.notes.append(f"{exc}: using the champion's last class")
        positive = positive_class(classes)
    report.positive_class = None if positive is None else str(positive)
    return positive


def _prediction_psi(
    profile: NumericProfile | CategoricalProfile | None,
    predictions: pd.DataFrame,
    positive: Any,
    report: MonitorReport,
) -> float | None:
    """PSI of P(positive) (binary) or of the predicted labels; a note says why when none."""
    if profile is None:
        report.notes.append("prediction PSI not computed: the champion has no prediction baseline")
        return None
    if isinstance(profile, NumericProfile):
        column = f"{PROBABILITY_PREFIX}{positive}" if positive is not None else PREDICTION_COLUMN
        what = f"P({positive})" if positive is not None else "predictions"
        result = numeric_drift(profile, predictions[column]) if column in predictions else None
    else:
        column, what = PREDICTION_COLUMN, "predicted labels"
        result = categorical_drift(profile, predictions[column]) if column in predictions else None
    if result is None or result.psi is None:
        report.notes.append(
            f"prediction PSI not computed: the window's predictions have no {what} "
            f"(column {column!r}; columns: {', '.join(map(str, predictions.columns)) or 'none'})"
        )
        return None
    return result.psi


def put_event(events: Any, source: str, detail_type: str, detail: dict[str, Any]) -> str | None:
    """PutEvents one event on the default bus; the failure (error code or exception), None
    when it went out. Never raises: a report's findings are stored whatever happens here."""
    from botocore.exceptions import BotoCoreError, ClientError

    entry = {"Source": source, "DetailType": detail_type, "Detail": json.dumps(detail)}
    try:
        reply = events.put_events(Entries=[entry])
    except (BotoCoreError, ClientError) as exc:
        return f"{type(exc).__name__}: {exc}"
    if reply.get("FailedEntryCount"):
        return str(reply.get("Entries", [{}])[0].get("ErrorCode"))
    return None


def _publish_drift(
    config: SkyliftConfig, s3: Any, events: Any, report: MonitorReport, now: datetime
) -> None:
    """Publish the drift event. The report is stored first: a failed publish is logged and
    recorded in the stored report, never raised (the run's findings are not lost)."""
    detail = {
        "model": config.model.name,
        "model_version": report.model_version,
        "drifted_features": report.drifted_features,
        "max_psi": report.max_psi,
        "threshold": report.threshold,
        "report_key": report.report_key,
    }
    failed = put_event(events, DRIFT_SOURCE, DRIFT_DETAIL_TYPE, detail)
    if failed is None:
        report.drift_event_published = True
    else:
        logger.error(
            "drift event not published (%s); the report is stored as %s", failed, report.report_key
        )
        report.notes.append(f"drift event not published: {failed}")
    _store(config, s3, report, now)  # same key: the stored report says whether it went out


def _store(config: SkyliftConfig, s3: Any, report: MonitorReport, now: datetime) -> MonitorReport:
    key = f"{config.storage.reports_prefix}monitoring/{now.strftime('%Y%m%dT%H%M%S%fZ')}.json"
    report.report_key = key
    s3.put_object(
        Bucket=config.storage.bucket,
        Key=key,
        Body=report.to_json(),
        ContentType="application/json",
    )
    return report
