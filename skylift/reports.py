"""What the scheduled functions decide, as typed reports: :class:`RetrainReport` (a retrain's
decision) and :class:`MonitorReport` (a monitoring run's drift and live metrics). Both are
stored as JSON under ``reports/`` and read back through the same models."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from skylift.bundle import TrainingDataRef

__all__ = [
    "FeatureDrift",
    "HoldoutInfo",
    "LiveMetrics",
    "ModelResult",
    "MonitorReport",
    "MonitorWindow",
    "RetrainDecision",
    "RetrainReport",
    "RunLimits",
]


class _Report(BaseModel):
    model_config = ConfigDict(extra="forbid")

    def to_json(self) -> bytes:
        """What is stored (the key it is stored under is not part of it)."""
        return self.model_dump_json(indent=2, exclude={"report_key"}).encode()


# ---- retrain ------------------------------------------------------------------------------------


class HoldoutInfo(BaseModel):
    rows: int
    seed: int
    fraction: float
    # The gate scores both models on the rows both schemas accept: how many, and why not others.
    scored_rows: int | None = None
    excluded_rows: int = 0
    exclusions: dict[str, int] = Field(default_factory=dict)  # reason -> rows


class ModelResult(BaseModel):
    version: int | None
    metrics: dict[str, float] | None
    rows: int | None = None  # holdout rows these metrics were computed on


class RetrainDecision(BaseModel):
    promote: bool  # what the gate said
    promoted: bool  # what happened (a lost race turns a promote into not promoted)
    promoted_to: Literal["champion", "canary", "shadow"] | None = None  # [retrain].promote_to
    reason: str
    checks: list[dict[str, Any]] = Field(default_factory=list)


class RunLimits(BaseModel):
    """Whether the run came within 20% of the function's time or memory limits."""

    timeout_seconds: int
    elapsed_seconds: float
    memory_mb: int
    peak_rss_mb: float
    near_limit: bool
    warnings: list[str] = Field(default_factory=list)


class RetrainReport(_Report):
    model: str
    started_at: str
    finished_at: str | None = None
    trigger: str
    metric: str
    min_improvement: float
    status: Literal["succeeded", "failed"]
    reason: str | None = None  # why a run failed
    decision: RetrainDecision
    data: TrainingDataRef | None = None
    holdout: HoldoutInfo | None = None
    challenger: ModelResult | None = None
    champion: ModelResult | None = None
    timings: dict[str, float] = Field(default_factory=dict)
    limits: RunLimits | None = None
    # The challenger's training warnings: ambiguous column types, metrics not computed.
    warnings: list[str] = Field(default_factory=list)
    report_key: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.status == "succeeded"

    def summary(self) -> dict[str, Any]:
        """What the retrain function answers its invoker."""
        return {
            "status": self.status,
            "promoted": self.decision.promoted,
            "promoted_to": self.decision.promoted_to,
            "reason": self.decision.reason,
            "report_key": self.report_key,
        }

    @property
    def challenger_metric(self) -> float | None:
        """The challenger's value of the gate's metric, when it was evaluated."""
        metrics = (self.challenger.metrics if self.challenger else None) or {}
        return metrics.get(self.metric)


# ---- monitor ------------------------------------------------------------------------------------


class MonitorWindow(BaseModel):
    hours: float
    start: str = Field(alias="from")
    end: str = Field(alias="to")

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)


class FeatureDrift(BaseModel):
    """One feature's drift: PSI against the baseline, a KS (numeric) or chi-square
    (categorical) p-value, and the two distributions over the baseline's bins."""

    kind: Literal["numeric", "categorical"] | None = None  # None: no values in the window
    psi: float | None
    rows: int
    drifted: bool = False
    ks_pvalue: float | None = None
    chi2_pvalue: float | None = None
    bins: list[float] | None = None
    categories: list[str] | None = None
    baseline: list[float] | None = None
    current: list[float] | None = None


class LiveMetrics(BaseModel):
    """Predictions joined to ground truth by id."""

    rows: int
    accuracy: float | None = None
    roc_auc: float | None = None
    rmse: float | None = None


class MonitorReport(_Report):
    model: str
    generated_at: str
    window: MonitorWindow
    threshold: float
    model_version: int | None = None
    rows: int | None = None
    features: dict[str, FeatureDrift] = Field(default_factory=dict)
    max_psi: float | None = None
    drifted_features: list[str] = Field(default_factory=list)
    prediction_psi: float | None = None
    positive_class: str | None = None  # P(this class) is what prediction PSI compares
    live_metrics: LiveMetrics | None = None
    notes: list[str] = Field(default_factory=list)
    drift_event_published: bool = False
    report_key: str | None = None

    def summary(self) -> dict[str, Any]:
        """What the monitor function answers its invoker."""
        return {
            "max_psi": self.max_psi,
            "drifted_features": self.drifted_features,
            "live_metrics": self.live_metrics.model_dump() if self.live_metrics else None,
            "report_key": self.report_key,
            "drift_event_published": self.drift_event_published,
        }
