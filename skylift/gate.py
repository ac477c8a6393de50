"""The promotion gate: should a challenger replace the champion? A pure function of metrics,
schemas and the config, so every rule is table-tested; :func:`shared_holdout` picks the
holdout rows both models are scored on (the rows both schemas accept)."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

from skylift.bundle import Manifest, no_verified_onnx
from skylift.config import RetrainConfig
from skylift.schema import FeatureSchema

__all__ = [
    "LOWER_IS_BETTER",
    "GateCheck",
    "GateDecision",
    "SharedHoldout",
    "decide",
    "schema_compatible",
    "servable",
    "shared_holdout",
    "with_check",
]

MAX_EXCLUSION_REASONS = 10  # distinct reasons the report lists (the counts stay exact)

LOWER_IS_BETTER = frozenset({"log_loss", "rmse", "mae", "mse", "brier"})


@dataclass(frozen=True)
class GateCheck:
    name: str
    passed: bool
    detail: str


@dataclass
class GateDecision:
    promote: bool
    reason: str
    checks: list[GateCheck] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "promote": self.promote,
            "reason": self.reason,
            "checks": [asdict(c) for c in self.checks],
        }


def _gain(metric: str, challenger: float, champion: float) -> float:
    """How much better the challenger is (positive = better), whichever way the metric points."""
    return champion - challenger if metric in LOWER_IS_BETTER else challenger - champion


def schema_compatible(challenger: FeatureSchema, champion: FeatureSchema | None) -> GateCheck:
    """API callers send what the champion asked for: the challenger may drop features or add
    optional ones, but must not require a feature the champion did not have, nor change a
    feature's kind (numeric <-> categorical)."""
    if champion is None:
        return GateCheck("schema", True, "no champion: nothing to stay compatible with")
    known = {f.name: f.kind for f in champion.features}
    new_required = [f.name for f in challenger.features if not f.nullable and f.name not in known]
    changed = [f.name for f in challenger.features if f.name in known and known[f.name] != f.kind]
    if new_required or changed:
        problems = []
        if new_required:
            problems.append(f"requires new feature(s) {', '.join(new_required)}")
        if changed:
            problems.append(f"changes the kind of {', '.join(changed)}")
        return GateCheck("schema", False, "; ".join(problems))
    return GateCheck("schema", True, "callers of the champion's API can call the challenger")


@dataclass
class SharedHoldout:
    """The holdout rows both models are scored on, as each model's schema validated them."""

    challenger: pd.DataFrame
    champion: pd.DataFrame | None
    index: pd.Index
    excluded: int
    exclusions: dict[str, int] = field(default_factory=dict)  # "<model>: <field>: <problem>"

    @property
    def rows(self) -> int:
        return len(self.index)


def shared_holdout(
    holdout: pd.DataFrame, challenger: FeatureSchema, champion: FeatureSchema | None
) -> SharedHoldout:
    """Validate the holdout with each schema and keep the rows both accept, so an identical
    model scores identically; every excluded row is counted under its reasons."""
    checked = {"challenger": challenger.validate_frame(holdout)}
    if champion is not None:
        checked["champion"] = champion.validate_frame(holdout)
    index = holdout.index
    reasons: Counter[str] = Counter()
    for who, validation in checked.items():
        index = index.intersection(validation.valid.index, sort=False)
        for text in validation.rejected:
            for piece in str(text).split("; "):
                # "field: problem: 'value'" -> "who: field: problem" (values vary per row)
                reasons[f"{who}: " + ": ".join(piece.split(": ")[:2])] += 1
    index = holdout.index[holdout.index.isin(index)]  # the holdout's order
    return SharedHoldout(
        challenger=checked["challenger"].valid.loc[index],
        champion=checked["champion"].valid.loc[index] if champion is not None else None,
        index=index,
        excluded=len(holdout) - len(index),
        exclusions=dict(reasons.most_common(MAX_EXCLUSION_REASONS)),
    )


def servable(manifest: Manifest, runtime: str) -> GateCheck:
    """With [deploy].runtime = "onnx" the functions load model.onnx: a challenger without a
    verified export would leave them nothing to serve (the registry refuses it too)."""
    if runtime != "onnx":
        return GateCheck("onnx export", True, "runtime sklearn: the pickle is served")
    if manifest.exports is not None and manifest.exports.onnx_verified:
        return GateCheck("onnx export", True, manifest.exports.onnx.summary())  # type: ignore[union-attr]
    return GateCheck("onnx export", False, no_verified_onnx(manifest))


def with_check(decision: GateDecision, check: GateCheck) -> GateDecision:
    """``decision`` with one more check; a failed one stops the promotion, named first."""
    checks = [*decision.checks, check]
    if check.passed:
        return GateDecision(decision.promote, decision.reason, checks)
    reason = f"{check.name}: {check.detail}"
    if not decision.promote:
        reason = f"{reason}; {decision.reason}"
    return GateDecision(False, reason, checks)


def decide(
    challenger: dict[str, float],
    champion: dict[str, float] | None,
    config: RetrainConfig,
    schema: GateCheck,
) -> GateDecision:
    """Promote when the metric gains >= min_improvement, no guard regresses past its
    tolerance and the schema stays compatible; a first model must clear the floor."""
    metric = config.metric
    checks: list[GateCheck] = [schema]
    if metric not in challenger:
        checks.append(GateCheck(metric, False, f"challenger has no {metric!r} metric"))
        return GateDecision(False, f"challenger has no {metric!r} metric", checks)
    value = challenger[metric]
    if champion is None:
        better = value <= config.floor if metric in LOWER_IS_BETTER else value >= config.floor
        checks.append(
            GateCheck("floor", better, f"{metric} {value:.4f} vs floor {config.floor:.4f}")
        )
        promote = better and schema.passed
        reason = (
            f"first model: {metric} {value:.4f} clears the floor {config.floor:.4f}"
            if promote
            else f"first model: {metric} {value:.4f} does not clear the floor {config.floor:.4f}"
        )
        return GateDecision(promote, reason, checks)
    if metric not in champion:
        checks.append(GateCheck(metric, True, f"champion has no {metric!r}: challenger wins it"))
        gain = float("inf")
    else:
        gain = _gain(metric, value, champion[metric])
        checks.append(
            GateCheck(
                metric,
                gain >= config.min_improvement,
                f"{metric} {value:.4f} vs champion {champion[metric]:.4f} "
                f"(gain {gain:+.4f}, needs {config.min_improvement:+.4f})",
            )
        )
    for guard, tolerance in sorted(config.guard_metrics.items()):
        if guard not in challenger or guard not in champion:
            checks.append(GateCheck(f"guard {guard}", True, "not measured on both: skipped"))
            continue
        loss = -_gain(guard, challenger[guard], champion[guard])
        checks.append(
            GateCheck(
                f"guard {guard}",
                loss <= tolerance,
                f"{guard} {challenger[guard]:.4f} vs champion {champion[guard]:.4f} "
                f"(worse by {max(loss, 0):.4f}, tolerance {tolerance:.4f})",
            )
        )
    failed = [c for c in checks if not c.passed]
    if failed:
        return GateDecision(False, "; ".join(f"{c.name}: {c.detail}" for c in failed), checks)
    return GateDecision(True, f"{metric} improved by {gain:+.4f}; all guards held", checks)
