"""Logs and metrics for every function: one set-up, and the metric names the functions publish
and the CDK dashboard and alarms read (``infrastructure/`` imports them from here, so a renamed
metric cannot leave an alarm watching nothing).

Metrics are CloudWatch EMF lines (Powertools) in the namespace and with the ``service`` the
stack sets (``POWERTOOLS_METRICS_NAMESPACE``, ``POWERTOOLS_SERVICE_NAME``), dimension ``model``.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric

from skylift.topology import METRICS_NAMESPACE, SERVICE_NAME

if TYPE_CHECKING:
    from skylift.batch.manifest import BatchManifest
    from skylift.reports import MonitorReport, RetrainReport

__all__ = [
    "FunctionObservability",
    "Metric",
    "metrics_namespace",
    "publish_batch_metrics",
    "publish_monitor_metrics",
    "publish_retrain_metrics",
    "service_name",
]


class Metric:
    """Every metric name skylift publishes."""

    # score function (per request; also per model_version and error_code)
    REQUESTS = "Requests"
    RECORDS_SCORED = "RecordsScored"
    LATENCY = "Latency"
    CLIENT_ERRORS = "ClientErrors"
    SERVER_ERRORS = "ServerErrors"
    MODEL_RELOAD_FAILURES = "ModelReloadFailures"
    CAPTURE_FAILURES = "CaptureFailures"
    CANDIDATE_LOAD_FAILURES = "CandidateLoadFailures"
    # score function, per version while a canary answers part of the traffic (dimension
    # role = champion | candidate, and role + model_version)
    VERSION_REQUESTS = "VersionRequests"
    VERSION_RECORDS = "VersionRecords"
    VERSION_ERRORS = "VersionErrors"
    VERSION_LATENCY = "VersionLatency"
    VERSION_PREDICTION_MEAN = "VersionPredictionMean"
    # batch function (per file)
    BATCH_ROWS_READ = "BatchRowsRead"
    BATCH_ROWS_SCORED = "BatchRowsScored"
    BATCH_ROWS_QUARANTINED = "BatchRowsQuarantined"
    BATCH_FILES_FAILED = "BatchFilesFailed"
    # retrain function (per run)
    RETRAIN_RUNS = "RetrainRuns"
    RETRAIN_FAILURES = "RetrainFailures"
    RETRAIN_PROMOTED = "RetrainPromoted"
    CHALLENGER_METRIC = "ChallengerMetric"
    # monitor function (per run; FeaturePSI also per feature)
    DRIFT_MAX_PSI = "DriftMaxPSI"
    DRIFTED_FEATURES = "DriftedFeatures"
    PREDICTION_PSI = "PredictionPSI"
    FEATURE_PSI = "FeaturePSI"
    LIVE_ACCURACY = "LiveAccuracy"
    LIVE_ROC_AUC = "LiveRocAuc"
    LIVE_RMSE = "LiveRmse"


def service_name() -> str:
    """The stack sets POWERTOOLS_SERVICE_NAME; "skylift" outside it (skylift invoke)."""
    return os.environ.get("POWERTOOLS_SERVICE_NAME") or SERVICE_NAME


def metrics_namespace() -> str:
    return os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or METRICS_NAMESPACE


class FunctionObservability:
    """A function's Logger and Metrics, set up once at module scope in its handler."""

    def __init__(self, model: str) -> None:
        self.model = model
        # Powertools' Logger is the stdlib logger named after the service; named "skylift" it
        # is the parent of skylift.*'s loggers, so their records get its JSON format too.
        self.logger = Logger(service=service_name())
        self.metrics = Metrics(service=service_name(), namespace=metrics_namespace())
        self.metrics.set_default_dimensions(model=model)

    def start_invocation(self, context: Any) -> None:
        """Tag the invocation's log lines (a local stand-in context may lack the name)."""
        function = getattr(context, "function_name", None)
        if function:
            self.logger.append_keys(function_name=function)


def publish_batch_metrics(metrics: Metrics, manifest: BatchManifest) -> None:
    metrics.add_metric(Metric.BATCH_ROWS_READ, MetricUnit.Count, manifest.rows_read)
    metrics.add_metric(Metric.BATCH_ROWS_SCORED, MetricUnit.Count, manifest.rows_scored)
    metrics.add_metric(Metric.BATCH_ROWS_QUARANTINED, MetricUnit.Count, manifest.rows_quarantined)
    metrics.add_metric(
        Metric.BATCH_FILES_FAILED, MetricUnit.Count, int(manifest.status == "failed")
    )


def publish_retrain_metrics(metrics: Metrics, report: RetrainReport) -> None:
    metrics.add_metric(Metric.RETRAIN_RUNS, MetricUnit.Count, 1)
    metrics.add_metric(Metric.RETRAIN_FAILURES, MetricUnit.Count, int(not report.succeeded))
    metrics.add_metric(Metric.RETRAIN_PROMOTED, MetricUnit.Count, int(report.decision.promoted))
    if report.challenger_metric is not None:
        metrics.add_metric(Metric.CHALLENGER_METRIC, MetricUnit.NoUnit, report.challenger_metric)


def publish_monitor_metrics(metrics: Metrics, report: MonitorReport) -> None:
    if report.max_psi is not None:
        metrics.add_metric(Metric.DRIFT_MAX_PSI, MetricUnit.NoUnit, report.max_psi)
        metrics.add_metric(Metric.DRIFTED_FEATURES, MetricUnit.Count, len(report.drifted_features))
    if report.prediction_psi is not None:
        metrics.add_metric(Metric.PREDICTION_PSI, MetricUnit.NoUnit, report.prediction_psi)
    live = report.live_metrics
    if live is not None:
        for name, value in (
            (Metric.LIVE_ACCURACY, live.accuracy),
            (Metric.LIVE_ROC_AUC, live.roc_auc),
            (Metric.LIVE_RMSE, live.rmse),
        ):
            if value is not None:
                metrics.add_metric(name, MetricUnit.NoUnit, value)
    for feature, result in report.features.items():
        if result.psi is None:
            continue
        # Its own EMF line: the per-feature dimension must not apply to the run's metrics.
        with single_metric(
            name=Metric.FEATURE_PSI,
            unit=MetricUnit.NoUnit,
            value=result.psi,
            namespace=metrics_namespace(),
            default_dimensions={"service": service_name(), "model": report.model},
        ) as single:
            single.add_dimension(name="feature", value=feature)
