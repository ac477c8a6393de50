"""The promotion gate: should a challenger replace the champion? A pure function of metrics,
schemas and the config, so every rule is table-tested."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from skylift.config import RetrainConfig
from skylift.schema import FeatureSchema

__all__ = ["LOWER_IS_BETTER", "GateCheck", "GateDecision", "decide", "schema_compatible"]

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
