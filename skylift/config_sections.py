"""The sections of skylift.toml (``[model]``, ``[storage]``, ``[api]``, ``[batch]``,
``[retrain]``, ``[monitor]``, ``[deploy]``): every field with its default, bounds and the
description README's reference is generated from. :class:`skylift.config.SkyliftConfig` holds
one of each."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

__all__ = [
    "ApiConfig",
    "BatchConfig",
    "DeployConfig",
    "FeatureDeclaration",
    "ModelConfig",
    "MonitorConfig",
    "RegistryConfig",
    "RetrainConfig",
    "RolloutConfig",
    "StorageConfig",
]

_ENTRY_POINT = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")


def _schedule_shape(value: str) -> str:
    if not re.match(r"^(rate|cron)\(.+\)$", value):
        raise ValueError(f"must be 'rate(...)' or 'cron(...)', got {value!r}")
    return value


# An EventBridge schedule expression, checked for its shape here, for its content by AWS.
ScheduleExpression = Annotated[str, AfterValidator(_schedule_shape)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelConfig(_Section):
    name: str = Field(description="Model name; the registry key under models/<name>/.")
    task: Literal["classification", "regression"] = Field(
        description="'classification' or 'regression'."
    )
    target: str = Field(description="Target column in the training data.")
    id_column: str | None = Field(
        default=None, description="Column that identifies a row; echoed in predictions."
    )
    entry_point: str = Field(
        description="The user's training function, 'package.module:function', taking a "
        "DataFrame and returning a fitted-ready scikit-learn estimator or Pipeline."
    )
    source_dir: str = Field(
        default=".",
        description="Directory (relative to the config file) put on sys.path to import "
        "the entry point; shipped in the Lambda code asset.",
    )
    training_data: str | None = Field(
        default=None,
        description="Default training data for `skylift train`: a local path (relative to "
        "the config file) or an s3:// URI.",
    )
    holdout_fraction: float = Field(
        default=0.2, gt=0.0, lt=0.9, description="Share of rows held out to evaluate models."
    )
    seed: int = Field(default=42, description="Seed of the deterministic holdout split.")
    allow_version_skew: bool = Field(
        default=False,
        description="Load bundles pickled by another scikit-learn version (logged; "
        "scikit-learn only warns, and predictions may differ). Every function honours it.",
    )
    onnx_tolerance: float = Field(
        default=1e-5,
        gt=0,
        description="Largest difference of any holdout probability (prediction, for a "
        "regressor) between model.onnx and the pipeline for the ONNX export to be verified "
        "and stored; every label must agree too.",
    )
    sql_tolerance: float = Field(
        default=1e-9,
        gt=0,
        description="The same bar for the SQL export, run in DuckDB on the holdout.",
    )
    positive_class: bool | int | str | None = Field(
        default=None,
        description="The class ROC AUC, prediction PSI and reports treat as positive (binary "
        "classification), e.g. 'Yes'; none = the estimator's last class (`classes_[-1]`).",
    )

    @field_validator("entry_point")
    @classmethod
    def _entry_point_shape(cls, value: str) -> str:
        if not _ENTRY_POINT.match(value):
            raise ValueError(f"must look like 'package.module:function', got {value!r}")
        return value

    @field_validator("name")
    @classmethod
    def _name_shape(cls, value: str) -> str:
        if not _MODEL_NAME.match(value):
            raise ValueError(
                "must be 1-63 letters, digits, '-' or '_' and start with a letter or digit"
            )
        return value


class FeatureDeclaration(_Section):
    """``[features.<name>]``: what callers may send for one column, overriding inference."""

    type: Literal["numeric", "integer", "categorical"] | None = Field(
        default=None,
        description="'numeric', 'integer' or 'categorical'; none = inferred from the data.",
    )
    nullable: bool | None = Field(
        default=None,
        description="Whether the feature may be missing (null, blank); none = inferred "
        "(nullable when the training data has missing values).",
    )
    categories: list[str] | None = Field(
        default=None,
        description="Allowed values of a categorical feature: anything else is rejected "
        "(inferred categories are only flagged).",
    )
    min: float | None = Field(
        default=None,
        description="Smallest allowed value of a numeric feature: below it is rejected "
        "(the inferred training range is only flagged).",
    )
    max: float | None = Field(
        default=None, description="Largest allowed value of a numeric feature (rejected above)."
    )

    @model_validator(mode="after")
    def _fits_the_type(self) -> FeatureDeclaration:
        if self.categories is not None and self.type in ("numeric", "integer"):
            raise ValueError(f"categories are for categorical features, not type = {self.type!r}")
        if (self.min is not None or self.max is not None) and self.type == "categorical":
            raise ValueError("min and max are for numeric features, not type = 'categorical'")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min:g} is above max {self.max:g}")
        return self

    @property
    def bounded(self) -> bool:
        return self.min is not None or self.max is not None


class RegistryConfig(_Section):
    signing: Literal["kms", "none"] = Field(
        default="kms",
        description="Sign each registered version's manifest with an asymmetric KMS key and "
        "refuse to unpickle any version whose signature does not verify; 'none' turns both "
        "off (bundles are then trusted on their sha256 alone).",
    )
    signing_key_id: str | None = Field(
        default=None,
        description="KMS key (id, ARN or alias; ECC_NIST_P256, SIGN_VERIFY) to sign with; none "
        "= the stack's own key, alias/<stack_prefix>-<model name>-signing.",
    )
    trusted_key_ids: tuple[str, ...] = Field(
        default=(),
        description="Further keys (id or ARN) whose signatures are accepted: the previous key "
        "after the signing alias was re-pointed to a new one.",
    )
    writers: tuple[str, ...] = Field(
        default=(),
        description="IAM principal ARNs (wildcards allowed) that may write and delete under "
        "models/ besides the retrain function: whoever runs `skylift train` or `skylift "
        "models promote` against the deployed bucket. The bucket policy denies everyone else.",
    )

    @field_validator("writers")
    @classmethod
    def _principal_arns(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for arn in value:
            if not re.match(r"^arn:aws[\w-]*:(iam|sts)::(\d{12}|\*):", arn):
                raise ValueError(
                    f"{arn!r} is not an IAM principal ARN (arn:aws:iam::<account>:...)"
                )
        return value


class StorageConfig(_Section):
    bucket: str = Field(description="S3 bucket holding models and data (one bucket, prefixes).")
    models_prefix: str = Field(
        default="models/", description="Model registry: versions and aliases."
    )
    incoming_prefix: str = Field(
        default="incoming/", description="Files put here are batch-scored (S3 -> SQS -> Lambda)."
    )
    predictions_prefix: str = Field(
        default="predictions/", description="Batch outputs and their .manifest.json markers."
    )
    quarantine_prefix: str = Field(
        default="quarantine/", description="Rejected batch rows, as they came, with reasons."
    )
    training_prefix: str = Field(
        default="training/", description="Training data read by the scheduled retrain."
    )
    labels_prefix: str = Field(
        default="labels/", description="Ground truth (id, label, time) for live accuracy."
    )
    capture_prefix: str = Field(
        default="capture/", description="Sampled API inputs and outputs (via Firehose)."
    )
    reports_prefix: str = Field(
        default="reports/", description="Retrain decisions and monitoring reports (JSON)."
    )

    @field_validator("bucket")
    @classmethod
    def _bucket_shape(cls, value: str) -> str:
        if not _BUCKET.match(value):
            raise ValueError(
                f"{value!r} is not a valid S3 bucket name (3-63 lowercase letters, digits, '.', '-')"
            )
        return value

    @field_validator(
        "models_prefix",
        "incoming_prefix",
        "predictions_prefix",
        "quarantine_prefix",
        "training_prefix",
        "labels_prefix",
        "capture_prefix",
        "reports_prefix",
    )
    @classmethod
    def _prefix_shape(cls, value: str) -> str:
        if not value or value.startswith("/") or not value.endswith("/"):
            raise ValueError(f"must be a non-empty key prefix ending in '/', got {value!r}")
        return value


class ApiConfig(_Section):
    max_records: int = Field(default=1000, ge=1, description="Most records per request (413).")
    max_body_bytes: int = Field(
        default=1_000_000,
        ge=1024,
        le=10 * 1024 * 1024,
        description="Largest request body in bytes (413); API Gateway's own cap is 10 MB.",
    )
    model_refresh_seconds: float = Field(
        default=60.0, ge=0, description="How often the champion alias is re-checked."
    )
    capture_sample_rate: float = Field(
        default=0.1, ge=0.0, le=1.0, description="Share of requests sent to Firehose capture."
    )
    capture_stream: str | None = Field(
        default=None, description="Firehose delivery stream name (set by the stack)."
    )
    auth: Literal["api_key", "iam"] = Field(
        default="api_key", description="API Gateway auth: API keys + usage plan, or IAM (SigV4)."
    )
    throttle_rate: float = Field(default=50.0, gt=0, description="Steady requests per second.")
    throttle_burst: int = Field(default=100, ge=1, description="Burst requests (usage plan).")
    quota_per_day: int | None = Field(
        default=100_000,
        ge=1,
        description="Requests per API key per day (usage plan); none = no quota.",
    )
    memory_mb: int = Field(default=1024, ge=128, le=10240, description="Score function memory.")
    timeout_seconds: int = Field(
        default=15, ge=1, le=29, description="Score function timeout (API Gateway caps at 29 s)."
    )
    reserved_concurrency: int = Field(
        default=20,
        ge=1,
        description="Concurrency reserved for the score function: a flood of batch files "
        "cannot starve the API, and it is also the function's cap. Lambda keeps 100 of the "
        "account's concurrency unreserved: lower it on accounts with a small limit.",
    )
    provisioned_concurrency: int | None = Field(
        default=None, ge=1, description="Provisioned (pre-warmed) instances: no cold starts."
    )
    snap_start: bool | None = Field(
        default=None,
        description="Lambda SnapStart for the score function (model loaded and warmed before "
        "the snapshot); none = on where Lambda allows it: Python >= 3.12, layer packaging, no "
        "provisioned concurrency.",
    )

    @model_validator(mode="after")
    def _provisioned_within_reserved(self) -> ApiConfig:
        # Lambda refuses provisioned concurrency above the function's reserved concurrency.
        if (
            self.provisioned_concurrency
            and self.provisioned_concurrency > self.reserved_concurrency
        ):
            raise ValueError(
                f"provisioned_concurrency ({self.provisioned_concurrency}) must not exceed "
                f"reserved_concurrency ({self.reserved_concurrency})"
            )
        return self


class BatchConfig(_Section):
    chunk_rows: int = Field(default=50_000, ge=1, description="Rows read/scored/written at once.")
    memory_mb: int = Field(default=2048, ge=128, le=10240, description="Batch function memory.")
    timeout_seconds: int = Field(
        default=900, ge=10, le=900, description="Batch function timeout (one file per invocation)."
    )
    max_receive_count: int = Field(
        default=3, ge=1, le=1000, description="Deliveries before a message goes to the DLQ."
    )
    sqs_batch_size: int = Field(
        default=1, ge=1, le=10, description="S3 events per batch invocation (files per call)."
    )
    max_decompressed_bytes: int = Field(
        default=10 * 1024**3,
        ge=1,
        description="Largest file (once decompressed) a batch job reads; a bigger one fails "
        "for good (a gzip bomb).",
    )
    max_seconds: int | None = Field(
        default=None,
        ge=1,
        description="Time one file may take to read and score before it fails for good; none "
        "= `timeout_seconds` - 60 (a minute left to commit).",
    )
    max_concurrency: int = Field(
        default=5,
        ge=2,
        le=1000,
        description="Most batch invocations the SQS event source runs at once (its "
        "MaximumConcurrency; AWS allows 2-1000): a flood of files waits in the queue.",
    )
    # ~65k rows/s measured (benchmarks/RESULTS.md) x ~100 bytes a row: 1 GiB is ~160 s of
    # the 900 s timeout, leaving room for a slower runtime or wider rows.
    fanout_min_bytes: int = Field(
        default=1024**3,
        ge=1,
        description="Objects this large or larger are split across a Step Functions "
        "Distributed Map (uncompressed CSV/JSON Lines, Parquet); smaller ones are scored in "
        "place.",
    )
    fanout_range_bytes: int = Field(
        default=128 * 1024**2,
        ge=1,
        description="Target bytes per fan-out range (Parquet: rounded to row groups).",
    )
    fanout_max_concurrency: int = Field(
        default=100,
        ge=1,
        le=10_000,
        description="Ranges scored at once (the Distributed Map's MaxConcurrency).",
    )

    @property
    def file_seconds(self) -> int:
        """The per-file time budget: ``max_seconds`` or the timeout less a minute to commit."""
        return self.max_seconds or max(self.timeout_seconds - 60, self.timeout_seconds // 2)


class RetrainConfig(_Section):
    schedule: ScheduleExpression = Field(
        default="rate(1 day)", description="EventBridge schedule expression for retraining."
    )
    enabled: bool = Field(default=True, description="Schedule retraining at all.")
    metric: str = Field(default="roc_auc", description="Metric the challenger must improve.")
    min_improvement: float = Field(
        default=0.005, ge=0.0, description="Least gain in `metric` (absolute) to promote."
    )
    floor: float = Field(
        default=0.0, description="A first model is promoted only if its metric clears this."
    )
    guard_metrics: dict[str, float] = Field(
        default_factory=dict,
        description="Metric -> tolerance: how much worse each guard may get (absolute).",
    )
    promote_to: Literal["champion", "canary", "shadow"] = Field(
        default="champion",
        description="Where a challenger that passes the gate goes: straight to champion, or "
        "to the candidate alias as a canary or a shadow (the monitor decides the rest).",
    )
    canary_percent: float = Field(
        default=10.0,
        gt=0,
        lt=100,
        description="With promote_to = 'canary': the share of traffic the challenger answers.",
    )
    memory_mb: int = Field(default=3008, ge=128, le=10240, description="Retrain function memory.")
    timeout_seconds: int = Field(
        default=900, ge=10, le=900, description="Retrain function timeout."
    )


class MonitorConfig(_Section):
    schedule: ScheduleExpression = Field(
        default="rate(1 hour)", description="EventBridge schedule expression for monitoring."
    )
    enabled: bool = Field(default=True, description="Schedule monitoring at all.")
    window_hours: float = Field(
        default=24.0, gt=0, description="How far back captured and batch inputs are compared."
    )
    psi_threshold: float = Field(
        default=0.25, gt=0, description="PSI above which a feature counts as drifted."
    )
    publish_drift_event: bool = Field(
        default=True, description="Publish an EventBridge event when drift passes the threshold."
    )
    retrain_on_drift: bool = Field(
        default=False, description="Let the drift event trigger a retrain."
    )
    memory_mb: int = Field(default=1024, ge=128, le=10240, description="Monitor function memory.")
    timeout_seconds: int = Field(
        default=300, ge=10, le=900, description="Monitor function timeout."
    )


class RolloutConfig(_Section):
    min_requests: int = Field(
        default=200,
        ge=1,
        description="Captured candidate records needed before the monitor decides anything.",
    )
    hold_hours: float | None = Field(
        default=None,
        gt=0,
        description="How long the candidate must hold before promotion (none = "
        "[monitor].window_hours).",
    )
    max_error_rate_increase: float = Field(
        default=0.01,
        ge=0,
        le=1,
        description="How much higher the candidate's error rate may be (absolute).",
    )
    max_latency_ratio: float = Field(
        default=1.5, gt=0, description="Candidate p99 scoring time / champion's, at most (canary)."
    )
    max_prediction_psi: float = Field(
        default=0.2, gt=0, description="PSI of candidate vs champion predictions, at most."
    )
    metric: Literal["accuracy", "roc_auc", "rmse"] = Field(
        default="accuracy",
        description="Live metric compared when labels are present ('rmse' for regression).",
    )
    max_metric_drop: float = Field(
        default=0.02, ge=0, description="How much worse the live metric may be (absolute)."
    )
    auto_promote: bool = Field(
        default=False, description="Promote a candidate that held for the window."
    )
    auto_abort: bool = Field(default=True, description="Abort a candidate that breaches.")
    alarm_errors: int = Field(
        default=5,
        ge=1,
        description="Canary errors in one minute that trip the stack's alarm, which aborts "
        "the candidate at once (the schedule need not run).",
    )


class DeployConfig(_Section):
    stack_prefix: str = Field(default="Skylift", description="Prefix of the CDK stack names.")
    python_version: Literal["3.11", "3.12", "3.13"] = Field(
        default="3.12", description="Lambda Python runtime (and the layer's wheels)."
    )
    architecture: Literal["x86_64", "arm64"] = Field(
        default="x86_64", description="Lambda architecture (and the layer's wheels)."
    )
    packaging: Literal["layer", "image"] = Field(
        default="layer",
        description="Dependencies in a Lambda layer (built without Docker), or a container "
        "image for models that outgrow 250 MB.",
    )
    runtime: Literal["sklearn", "onnx"] = Field(
        default="sklearn",
        description="What the score and batch functions run: the pickled pipeline, or its "
        "verified model.onnx with onnxruntime (no scikit-learn/scipy; a smaller layer, faster "
        "cold starts). With onnx, a champion without a verified ONNX export is refused.",
    )
    alarm_email: str | None = Field(
        default=None, description="Subscribed to the alarm SNS topic when set."
    )
    log_retention_days: int = Field(default=30, ge=1, description="CloudWatch Logs retention.")
