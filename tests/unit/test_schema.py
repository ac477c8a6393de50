"""FeatureSchema: inference from training data, record validation, frame validation."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from skylift.schema import CategoricalFeature, FeatureSchema, NumericFeature, SchemaMismatchError


@pytest.fixture(scope="module")
def schema(churn_frame) -> FeatureSchema:
    return FeatureSchema.infer(churn_frame, target="churned", id_column="customer_id")


def good_record(schema: FeatureSchema) -> dict:
    record: dict = {"customer_id": "C1"}
    for feature in schema.features:
        if isinstance(feature, NumericFeature):
            middle = (feature.min + feature.max) / 2
            record[feature.name] = int(middle) if feature.integer else middle  # whole numbers
        else:
            record[feature.name] = feature.categories[0]
    return record


def test_inference_types_ranges_and_nullability(schema, churn_frame):
    assert "churned" not in schema.names and "customer_id" not in schema.names
    age = schema.feature("age")
    assert isinstance(age, NumericFeature) and age.nullable  # the generator blanks ~3%
    assert age.min == churn_frame["age"].min() and age.max == churn_frame["age"].max()
    tenure = schema.feature("tenure_months")
    assert isinstance(tenure, NumericFeature) and tenure.integer and not tenure.nullable
    contract = schema.feature("contract")
    assert isinstance(contract, CategoricalFeature)
    assert contract.categories == ["month-to-month", "one-year", "two-year"]
    assert schema.feature("region").nullable


def test_schema_round_trips_through_json(schema):
    assert FeatureSchema.model_validate_json(schema.model_dump_json()) == schema


def test_valid_records_become_a_frame_in_schema_order(schema):
    record = good_record(schema)
    result = schema.validate_records([record, {**record, "customer_id": 7, "age": None}])
    assert result.ok, result.errors
    assert list(result.frame.columns) == schema.names
    assert result.ids == ["C1", 7]
    assert math.isnan(result.frame["age"].iloc[1])
    assert result.flags == []


def test_nullable_feature_may_be_omitted(schema):
    record = good_record(schema)
    del record["age"]
    assert schema.validate_records([record]).ok


@pytest.mark.parametrize(
    ("change", "field", "problem"),
    [
        ({"tenure_months": "12"}, "tenure_months", "must be a number, got '12'"),
        ({"tenure_months": True}, "tenure_months", "must be a number, got true"),
        ({"contract": 2}, "contract", "must be a string, got 2"),
        ({"monthly_charges": float("nan")}, "monthly_charges", "finite number"),
        ({"monthly_charges": float("inf")}, "monthly_charges", "finite number"),
        ({"tenure_months": None}, "tenure_months", "must be a number, got None"),
        ({"colour": "red"}, "colour", "unknown field"),
    ],
)
def test_wrong_values_are_rejected_with_field_and_reason(schema, change, field, problem):
    record = {**good_record(schema), **change}
    result = schema.validate_records([good_record(schema), record])
    assert not result.ok
    assert [(e.record, e.field) for e in result.errors] == [(1, field)]
    assert problem in result.errors[0].problem


def test_missing_required_feature_is_rejected(schema):
    record = good_record(schema)
    del record["contract"]
    errors = schema.validate_records([record]).errors
    assert [(e.field, e.problem) for e in errors] == [("contract", "required feature is missing")]


def test_record_that_is_not_an_object_is_rejected(schema):
    errors = schema.validate_records([good_record(schema), [1, 2]]).errors
    assert errors[0].record == 1 and "JSON object" in errors[0].problem


def test_out_of_range_and_unseen_category_are_flagged_not_rejected(schema):
    record = {**good_record(schema), "monthly_charges": 10_000.0, "region": "mars"}
    result = schema.validate_records([record])
    assert result.ok
    flagged = {(f.field, f.problem.split(" ")[0]) for f in result.flags}
    assert ("monthly_charges", "10000") in flagged
    assert any(f.field == "region" and "unseen category 'mars'" in f.problem for f in result.flags)


def test_frame_validation_rejects_rows_with_reasons(schema, churn_frame):
    chunk = churn_frame.head(6).astype(str).replace({"nan": "", "None": ""})
    chunk.loc[chunk.index[1], "tenure_months"] = "twelve"
    chunk.loc[chunk.index[2], "monthly_charges"] = "inf"
    chunk.loc[chunk.index[3], "contract"] = "  "
    chunk.loc[chunk.index[4], "region"] = "mars"  # flagged only
    result = schema.validate_frame(chunk)
    reasons = result.rejected.to_dict()
    assert set(reasons) == {chunk.index[1], chunk.index[2], chunk.index[3]}
    assert reasons[chunk.index[1]] == "tenure_months: not a number: 'twelve'"
    assert "not a finite number" in reasons[chunk.index[2]]
    assert "contract: missing value for a required feature" in reasons[chunk.index[3]]
    assert len(result.valid) + len(result.rejected) == len(chunk)
    assert result.valid["tenure_months"].dtype == np.float64
    assert result.flag_counts.get("region") == 1


def test_frame_validation_joins_several_reasons(schema, churn_frame):
    chunk = churn_frame.head(1).copy()
    chunk["tenure_months"] = chunk["tenure_months"].astype(object)
    chunk.loc[chunk.index[0], "tenure_months"] = "x"
    chunk.loc[chunk.index[0], "contract"] = None
    reason = schema.validate_frame(chunk).rejected.iloc[0]
    assert reason.count(";") == 1


def test_frame_missing_columns_is_a_whole_file_error(schema, churn_frame):
    with pytest.raises(SchemaMismatchError) as caught:
        schema.validate_frame(churn_frame.drop(columns=["contract", "age"]))
    assert caught.value.missing == ["age", "contract"]


def test_frame_validation_matches_record_validation(schema, churn_frame):
    rows = churn_frame.head(50)
    records = [
        {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
        for row in rows.drop(columns=["churned"]).to_dict("records")
    ]
    for record in records:
        for name in ("tenure_months", "support_calls"):
            record[name] = int(record[name])
    from_records = schema.validate_records(records).frame
    from_frame = schema.validate_frame(rows).valid.reset_index(drop=True)
    pd.testing.assert_frame_equal(from_records, from_frame, check_dtype=False)
