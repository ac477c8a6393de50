"""Topology: what should exist for one SkyliftConfig, described once.

The CDK stacks (infrastructure/) and the local stack (skylift/local/) both provision from this
description: the functions with their handlers, environment, limits and S3 access; the batch
queue and its dead-letter queue; the S3 notification; the capture delivery stream; the
schedules; the API routes; the drift event. Describing it once is what keeps the two in step;
a parity test checks the synthesized template against the local stack anyway.

Plain data, no AWS calls, no CDK imports: safe to import anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from skylift.config import SkyliftConfig

# Where a batch fan-out's ranges stage their outputs until the commit assembles them.
FANOUT_STAGING_PREFIX = "batch-fanout/"

__all__ = [
    "DRIFT_DETAIL_TYPE",
    "DRIFT_SOURCE",
    "LAYERS",
    "METRICS_NAMESPACE",
    "ROLLOUT_DETAIL_TYPE",
    "ROLLOUT_SOURCE",
    "SCORE_THREADING",
    "SERVICE_NAME",
    "FunctionSpec",
    "Route",
    "Schedule",
    "Topology",
    "describe",
]

SERVICE_NAME = "skylift"
METRICS_NAMESPACE = "Skylift"
DRIFT_SOURCE = "skylift.monitor"
DRIFT_DETAIL_TYPE = "Model Drift Detected"
ROLLOUT_SOURCE = "skylift.rollout"
ROLLOUT_DETAIL_TYPE = "Rollout Decision"
CONFIG_FILE_IN_ASSET = "skylift.toml"  # at the code asset's root (/var/task in Lambda)
# The score function scores a few records per request, one request at a time: a thread pool
# buys nothing, and under CPU contention OpenMP's spin-waiting workers made p99 1.76 s for one
# record (26 ms single-threaded). Read by OpenMP/OpenBLAS/MKL when they load, in Lambda; the
# service applies the same limit with threadpoolctl where they were loaded before (in-process).
SCORE_THREADING = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
# The Lambda layer a function runs on (layers/build.py builds each from its requirements file):
# "sklearn" the pickled pipeline's (scikit-learn, scipy, pandas); with [deploy].runtime = "onnx",
# "onnx" for the functions that only score (onnxruntime, no scikit-learn/scipy) and "exports"
# for retrain (sklearn's plus the ONNX exporter: a new champion must carry a verified model.onnx).
LAYERS = ("sklearn", "onnx", "exports")


@dataclass(frozen=True)
class Route:
    method: str
    path: str


# The scoring API's routes: the REST API's resources and methods, and the table the function
# answers 404 / 405 (with Allow) from.
API_ROUTES = (
    Route("POST", "/predict"),
    Route("GET", "/health"),
    Route("GET", "/model"),
    Route("GET", "/openapi.json"),
)

# The REST API's binaryMediaTypes: every request body reaches the function base64-encoded, as
# sent. API Gateway picks binary by Content-Type, not Content-Encoding, so without "*/*" a
# gzip-compressed application/json body would be decoded as UTF-8 text on the way (and
# mangled); the function decodes base64 and gzip itself (skylift.serving.screening).
API_BINARY_MEDIA_TYPES = ("*/*",)


@dataclass(frozen=True)
class Schedule:
    name: str  # "retrain" or "monitor"
    expression: str  # rate(...) or cron(...)
    enabled: bool
    function: str


@dataclass(frozen=True)
class FunctionSpec:
    """One Lambda function: entry point, limits, environment and the S3 access it needs."""

    name: str
    handler: str
    description: str
    memory_mb: int
    timeout_seconds: int
    environment: dict[str, str]
    s3_read: tuple[str, ...] = ()  # key prefixes it may GetObject (and list)
    s3_write: tuple[str, ...] = ()  # key prefixes it may PutObject (and multipart)
    s3_delete: tuple[str, ...] = ()  # key prefixes it may DeleteObject (staging it cleans up)
    firehose_put: bool = False
    events_put: bool = False
    kms_sign: bool = False  # may sign model versions with the signing key (kms:Sign)
    kms_verify: bool = False  # may check signatures (kms:GetPublicKey, kms:Verify)
    reserved_concurrency: int | None = None
    provisioned_concurrency: int | None = None
    snap_start: bool = False  # published versions start from a snapshot of the warmed init
    layer: str = "sklearn"  # one of LAYERS: the dependencies it runs on

    @property
    def module(self) -> str:
        """The handler's module (what the layer's bytecode is traced from)."""
        return self.handler.rsplit(".", 1)[0]

    @property
    def s3_list(self) -> tuple[str, ...]:
        """Key prefixes it may list (ListBucket with an ``s3:prefix`` condition): exactly those
        it reads. Without ListBucket, S3 answers a GET of a missing key with 403 AccessDenied,
        not 404, so "is there a manifest / an alias yet?" would fail; AWS evaluates the
        condition with the requested key as ``s3:prefix``."""
        return self.s3_read


@dataclass(frozen=True)
class Topology:
    model_name: str
    bucket: str
    functions: dict[str, FunctionSpec]
    routes: tuple[Route, ...]
    schedules: tuple[Schedule, ...]
    incoming_prefix: str
    notification_events: tuple[str, ...]
    queue_name: str
    dlq_name: str
    queue_visibility_timeout_seconds: int
    max_receive_count: int
    sqs_batch_size: int
    sqs_max_concurrency: int
    capture_stream: str
    capture_prefix: str
    capture_error_prefix: str
    predictions_prefix: str
    quarantine_prefix: str
    drift_event_source: str = DRIFT_SOURCE
    drift_event_detail_type: str = DRIFT_DETAIL_TYPE
    drift_function: str = "retrain"  # what a drift event starts (when retrain_on_drift)
    retrain_on_drift: bool = False
    signing_key: str | None = None  # the KMS key versions are signed with; None = no signing
    provision_signing_key: bool = False  # the stack creates it (as signing_key, an alias)
    tags: dict[str, str] = field(default_factory=dict)
    fanout_state_machine: str = ""  # the batch fan-out's state machine (Distributed Map)
    fanout_max_concurrency: int = 100
    fanout_staging_prefix: str = FANOUT_STAGING_PREFIX
    # VersionErrors of role=candidate in one minute that abort the candidate through the
    # rollout function (an alarm -> EventBridge rule -> the monitor), without the schedule
    candidate_alarm_errors: int = 5
    rollout_function: str = "monitor"

    @property
    def layers(self) -> dict[str, tuple[str, ...]]:
        """Each layer in use -> the functions that run on it (in topology order)."""
        out: dict[str, tuple[str, ...]] = {}
        for name, spec in self.functions.items():
            out[spec.layer] = (*out.get(spec.layer, ()), name)
        return out


def describe(
    config: SkyliftConfig, *, config_path_in_asset: str = CONFIG_FILE_IN_ASSET
) -> Topology:
    """The resources skylift needs for ``config``."""
    s = config.storage
    name = config.model.name
    model_prefix = f"{s.models_prefix}{name}/"
    stream = config.api.capture_stream or f"skylift-{name}-capture"
    signing = config.signing_key is not None
    onnx = config.deploy.runtime == "onnx"
    # score, batch and the fan-out steps only score: model.onnx on onnxruntime. Monitor reads
    # captures and reports, and keeps the pickle's layer, as retrain (which also exports).
    scoring_layer = "onnx" if onnx else "sklearn"
    common = {
        "SKYLIFT_CONFIG": config_path_in_asset,
        "POWERTOOLS_SERVICE_NAME": SERVICE_NAME,
        "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
        "POWERTOOLS_LOG_LEVEL": "INFO",
    }
    functions = {
        "score": FunctionSpec(
            name="score",
            handler="functions.score.app.handler",
            description=f"HTTPS scoring API for model {name}",
            memory_mb=config.api.memory_mb,
            timeout_seconds=config.api.timeout_seconds,
            environment={**common, **SCORE_THREADING, "SKYLIFT_API__CAPTURE_STREAM": stream},
            s3_read=(model_prefix,),
            firehose_put=True,
            kms_verify=signing,
            reserved_concurrency=config.api.reserved_concurrency,
            provisioned_concurrency=config.api.provisioned_concurrency,
            snap_start=config.score_snap_start,
            layer=scoring_layer,
        ),
        "batch": FunctionSpec(
            name="batch",
            handler="functions.batch.app.handler",
            description=f"S3-triggered batch scoring for model {name}",
            memory_mb=config.batch.memory_mb,
            timeout_seconds=config.batch.timeout_seconds,
            environment=dict(common),
            s3_read=(model_prefix, s.incoming_prefix, s.predictions_prefix),
            s3_write=(s.predictions_prefix, s.quarantine_prefix),
            kms_verify=signing,
            layer=scoring_layer,
        ),
        "fanout": FunctionSpec(
            name="fanout",
            handler="functions.batch.fanout.handler",
            description=f"Batch fan-out steps (plan, range, commit) for model {name}",
            memory_mb=config.batch.memory_mb,
            timeout_seconds=config.batch.timeout_seconds,
            environment=dict(common),
            s3_read=(model_prefix, s.incoming_prefix, s.predictions_prefix, FANOUT_STAGING_PREFIX),
            s3_write=(s.predictions_prefix, s.quarantine_prefix, FANOUT_STAGING_PREFIX),
            s3_delete=(FANOUT_STAGING_PREFIX,),
            kms_verify=signing,
            layer=scoring_layer,
        ),
        "retrain": FunctionSpec(
            name="retrain",
            handler="functions.retrain.app.handler",
            description=f"Scheduled retraining with a champion/challenger gate for {name}",
            memory_mb=config.retrain.memory_mb,
            timeout_seconds=config.retrain.timeout_seconds,
            environment=dict(common),
            s3_read=(model_prefix, s.training_prefix),
            s3_write=(model_prefix, f"{s.reports_prefix}retrain/"),
            kms_sign=signing,
            kms_verify=signing,
            layer="exports" if onnx else "sklearn",
        ),
        "monitor": FunctionSpec(
            name="monitor",
            handler="functions.monitor.app.handler",
            description=f"Drift and live-accuracy monitoring for {name}",
            memory_mb=config.monitor.memory_mb,
            timeout_seconds=config.monitor.timeout_seconds,
            environment=dict(common),
            s3_read=(
                model_prefix,
                s.capture_prefix,
                s.predictions_prefix,
                s.incoming_prefix,
                s.labels_prefix,
                s.reports_prefix,
            ),
            # the rollout decision moves the candidate alias (and, promoting, the champion's)
            s3_write=(
                f"{s.reports_prefix}monitoring/",
                f"{s.reports_prefix}rollout/",
                f"{model_prefix}aliases/",
            ),
            events_put=True,
            kms_verify=signing,
        ),
    }
    return Topology(
        model_name=name,
        bucket=s.bucket,
        functions=functions,
        routes=API_ROUTES,
        schedules=(
            Schedule("retrain", config.retrain.schedule, config.retrain.enabled, "retrain"),
            Schedule("monitor", config.monitor.schedule, config.monitor.enabled, "monitor"),
        ),
        incoming_prefix=s.incoming_prefix,
        notification_events=("s3:ObjectCreated:*",),
        queue_name=f"skylift-{name}-batch",
        dlq_name=f"skylift-{name}-batch-dlq",
        # AWS advises at least six times the function timeout so a retried batch is not
        # redelivered while still running.
        queue_visibility_timeout_seconds=min(6 * config.batch.timeout_seconds, 43_200),
        max_receive_count=config.batch.max_receive_count,
        sqs_batch_size=config.batch.sqs_batch_size,
        sqs_max_concurrency=config.batch.max_concurrency,
        capture_stream=stream,
        capture_prefix=s.capture_prefix,
        capture_error_prefix=f"{s.reports_prefix}capture-errors/",
        predictions_prefix=s.predictions_prefix,
        quarantine_prefix=s.quarantine_prefix,
        retrain_on_drift=config.monitor.retrain_on_drift,
        candidate_alarm_errors=config.rollout.alarm_errors,
        signing_key=config.signing_key,
        provision_signing_key=signing and config.registry.signing_key_id is None,
        tags={"skylift:model": name},
        fanout_state_machine=f"skylift-{name}-batch-fanout",
        fanout_max_concurrency=config.batch.fanout_max_concurrency,
    )
