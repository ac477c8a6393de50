"""The column-wise record validator against the pydantic one: same frames, ids and flags when
it accepts; every doubtful cell handed to the pydantic path (so errors keep their words)."""

from __future__ import annotations

import copy

import pandas as pd
import pytest

from skylift.schema import CategoricalFeature, FeatureSchema, NumericFeature

SCHEMA = FeatureSchema(
    features=[
        NumericFeature(name="tenure", integer=True, min=0, max=72),
        NumericFeature(name="charges", min=10.0, max=120.0),
        NumericFeature(name="total", nullable=True, min=0.0, max=9000.0),
        NumericFeature(name="score", min=0.0, max=1.0, enforced=True),
        CategoricalFeature(name="contract", categories=["monthly", "yearly"]),
        CategoricalFeature(name="plan", categories=["a", "b"], enforced=True, nullable=True),
        CategoricalFeature(name="notes text", nullable=True),
    ],
    id_column="customer_id",
    optional=["comment"],
)

GOOD = {
    "customer_id": "C1",
    "tenure": 12,
    "charges": 50.5,
    "total": 600.0,
    "score": 0.5,
    "contract": "monthly",
    "plan": "a",
    "notes text": "hi",
}

ACCEPTED = [
    [GOOD],
    [GOOD, {**GOOD, "customer_id": 7, "total": None, "plan": None, "notes text": None}],
    [{k: v for k, v in GOOD.items() if k not in ("total", "plan", "notes text")}],
    [{**GOOD, "total": "  "}, {**GOOD, "total": ""}],  # blank: null for a nullable number
    [{**GOOD, "comment": {"any": "thing"}}],  # optional: accepted and dropped
    [{k: v for k, v in GOOD.items() if k != "customer_id"}],
    # flagged, not rejected: outside the training range, unseen category
    [{**GOOD, "charges": 500, "tenure": -3, "contract": "weekly"}, GOOD],
    [{**GOOD, "score": 0}, {**GOOD, "score": 1}],  # declared bounds are inclusive
]

DOUBTFUL = [
    {"tenure": "12"},
    {"tenure": True},
    {"tenure": 12.5},  # a fraction for an integer feature: the pydantic path's rule
    {"tenure": None},
    {"charges": float("nan")},
    {"charges": float("inf")},
    {"charges": 10**400},
    {"total": "abc"},
    {"total": float("nan")},
    {"score": 1.5},
    {"score": -0.1},
    {"contract": 2},
    {"contract": None},
    {"plan": "c"},
    {"notes text": 3},
    {"customer_id": 1.5},
    {"customer_id": True},
    {"colour": "red"},
]


@pytest.mark.parametrize("records", ACCEPTED)
def test_accepted_records_give_what_the_pydantic_path_gives(records):
    fast = SCHEMA._columnar.validate(copy.deepcopy(records))
    exact = SCHEMA.validate_records_per_record(copy.deepcopy(records))
    assert fast is not None and exact.ok, exact.errors
    pd.testing.assert_frame_equal(fast.frame, exact.frame)
    assert fast.ids == exact.ids
    assert fast.flags == exact.flags


@pytest.mark.parametrize("change", DOUBTFUL)
def test_doubtful_cells_go_to_the_pydantic_path_with_its_messages(change):
    records = [GOOD, {**GOOD, **change}]
    assert SCHEMA._columnar.validate(records) is None
    result, exact = SCHEMA.validate_records(records), SCHEMA.validate_records_per_record(records)
    assert result.errors == exact.errors and result.flags == exact.flags
    assert (result.frame is None) == (exact.frame is None)


@pytest.mark.parametrize(
    "records",
    [
        [GOOD, [1, 2]],
        [{k: v for k, v in GOOD.items() if k != "contract"}],
        [],
    ],
)
def test_malformed_requests_go_to_the_pydantic_path(records):
    assert SCHEMA._columnar.validate(records) is None
    assert SCHEMA.validate_records(records).errors == (
        SCHEMA.validate_records_per_record(records).errors
    )


def test_the_churn_example_takes_the_columnar_path(churn_frame):
    schema = FeatureSchema.infer(churn_frame, target="churned", id_column="customer_id")
    records = churn_frame.drop(columns=["churned"]).head(100).to_dict(orient="records")
    records = [{k: (None if v != v else v) for k, v in r.items()} for r in records]  # NaN: null
    fast = schema._columnar.validate(records)
    exact = schema.validate_records_per_record(records)
    assert fast is not None and exact.ok
    pd.testing.assert_frame_equal(fast.frame, exact.frame)
    assert fast.ids == exact.ids and fast.flags == exact.flags
