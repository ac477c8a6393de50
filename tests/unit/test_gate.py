"""The promotion gate, rule by rule."""

from __future__ import annotations

import pytest

from skylift.config import RetrainConfig
from skylift.gate import GateCheck, decide, schema_compatible, shared_holdout
from skylift.schema import CategoricalFeature, FeatureSchema, NumericFeature

CONFIG = RetrainConfig(
    metric="roc_auc", min_improvement=0.01, floor=0.7, guard_metrics={"accuracy": 0.02}
)
OK = GateCheck("schema", True, "compatible")


@pytest.mark.parametrize(
    ("challenger", "champion", "promote", "reason"),
    [
        (
            {"roc_auc": 0.85, "accuracy": 0.80},
            {"roc_auc": 0.80, "accuracy": 0.80},
            True,
            "improved by +0.0500",
        ),
        (
            {"roc_auc": 0.78, "accuracy": 0.80},
            {"roc_auc": 0.80, "accuracy": 0.80},
            False,
            "gain -0.0200",
        ),
        (
            {"roc_auc": 0.805, "accuracy": 0.80},
            {"roc_auc": 0.80, "accuracy": 0.80},
            False,
            "needs +0.0100",
        ),
        (
            {"roc_auc": 0.85, "accuracy": 0.75},
            {"roc_auc": 0.80, "accuracy": 0.80},
            False,
            "guard accuracy",
        ),
        (
            {"roc_auc": 0.85, "accuracy": 0.79},
            {"roc_auc": 0.80, "accuracy": 0.80},
            True,
            "all guards held",
        ),
        ({"roc_auc": 0.75}, None, True, "clears the floor"),
        ({"roc_auc": 0.65}, None, False, "does not clear the floor"),
        ({"accuracy": 0.9}, {"roc_auc": 0.8}, False, "no 'roc_auc' metric"),
    ],
)
def test_gate_table(challenger, champion, promote, reason):
    decision = decide(challenger, champion, CONFIG, OK)
    assert decision.promote is promote
    assert reason in decision.reason


def test_lower_is_better_metrics_point_the_other_way():
    config = RetrainConfig(metric="log_loss", min_improvement=0.01)
    assert decide({"log_loss": 0.40}, {"log_loss": 0.45}, config, OK).promote
    assert not decide({"log_loss": 0.45}, {"log_loss": 0.40}, config, OK).promote


def test_incompatible_schema_blocks_a_better_model():
    schema = GateCheck("schema", False, "requires new feature(s) x")
    decision = decide(
        {"roc_auc": 0.99, "accuracy": 0.9}, {"roc_auc": 0.5, "accuracy": 0.9}, CONFIG, schema
    )
    assert not decision.promote and "requires new feature" in decision.reason


def test_schema_compatibility_rules():
    champion = FeatureSchema(
        features=[NumericFeature(name="a"), CategoricalFeature(name="b", categories=["x"])]
    )
    same = schema_compatible(champion, champion)
    dropped = schema_compatible(FeatureSchema(features=[NumericFeature(name="a")]), champion)
    optional = schema_compatible(
        FeatureSchema(features=[*champion.features, NumericFeature(name="c", nullable=True)]),
        champion,
    )
    required = schema_compatible(
        FeatureSchema(features=[*champion.features, NumericFeature(name="c")]), champion
    )
    kind = schema_compatible(
        FeatureSchema(features=[CategoricalFeature(name="a"), champion.features[1]]), champion
    )
    assert same.passed and dropped.passed and optional.passed
    assert not required.passed and "requires new feature(s) c" in required.detail
    assert not kind.passed and "changes the kind of a" in kind.detail


def test_shared_holdout_keeps_the_rows_both_schemas_accept():
    import pandas as pd

    holdout = pd.DataFrame(
        {"x": ["1", None, "abc", "4", " "], "c": ["a", "b", "a", None, "a"]},
        index=[10, 11, 12, 13, 14],
    )
    challenger = FeatureSchema(
        features=[
            NumericFeature(name="x", nullable=True),
            CategoricalFeature(name="c", nullable=True),
        ]
    )
    champion = FeatureSchema(
        features=[NumericFeature(name="x"), CategoricalFeature(name="c", categories=["a"])]
    )
    shared = shared_holdout(holdout, challenger, champion)
    assert list(shared.index) == [10]
    assert list(shared.challenger.index) == list(shared.champion.index) == [10]
    assert shared.rows == 1 and shared.excluded == 4
    assert shared.exclusions == {
        "challenger: x: not a number": 1,
        "champion: x: missing value for a required feature": 2,
        "champion: x: not a number": 1,
        "champion: c: missing value for a required feature": 1,
    }
    alone = shared_holdout(holdout, challenger, None)
    assert alone.champion is None and list(alone.index) == [10, 11, 13, 14]
