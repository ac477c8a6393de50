"""Integer features take whole numbers only: 12.5 for a count is a client's bug. The API
refuses it (400 naming record and field), batch quarantines the row with its reason."""

from __future__ import annotations

import pandas as pd

from skylift.schema import FeatureSchema, NumericFeature

SCHEMA = FeatureSchema(
    features=[NumericFeature(name="tenure_months", integer=True), NumericFeature(name="age")]
)


def test_a_fraction_for_an_integer_feature_is_an_error_naming_record_and_field():
    validation = SCHEMA.validate_records(
        [{"tenure_months": 12, "age": 1.5}, {"tenure_months": 12.5, "age": 1.5}]
    )
    assert [(p.record, p.field) for p in validation.errors] == [(1, "tenure_months")]
    assert "whole number" in validation.errors[0].problem
    assert "12.5" in validation.errors[0].problem


def test_whole_floats_are_integers():
    validation = SCHEMA.validate_records([{"tenure_months": 12.0, "age": 2}])
    assert validation.ok
    assert validation.frame is not None
    assert validation.frame["tenure_months"].tolist() == [12.0]


def test_batch_quarantines_a_fraction_for_an_integer_feature():
    frame = pd.DataFrame({"tenure_months": ["12", "12.5", "7.0"], "age": ["1.5", "2", "3"]})
    result = SCHEMA.validate_frame(frame)
    assert result.valid.index.tolist() == [0, 2]
    assert result.rejected.to_dict() == {1: "tenure_months: not a whole number: 12.5"}
