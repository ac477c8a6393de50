"""FeatureSchema: inference from training data, record validation, frame validation."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from skylift.config_sections import FeatureDeclaration
from skylift.schema import (
    CategoricalFeature,
    DeclarationError,
    FeatureSchema,
    NumericFeature,
    SchemaMismatchError,
    estimator_columns,
    infer_schema,
)


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


# ---- blanks, ambiguity warnings and declarations (issue 12, item 9) ------------------------


def blank_charges_frame(rows: int = 60) -> pd.DataFrame:
    """A churn-like CSV read as it comes: TotalCharges is text because of ' ' cells."""
    charges = [f"{20 + i * 1.5:.2f}" for i in range(rows)]
    charges[3], charges[17] = " ", ""
    return pd.DataFrame(
        {
            "customerID": [f"C{i}" for i in range(rows)],
            "TotalCharges": pd.Series(charges, dtype=object),
            "Contract": ["Month-to-month", "One year", "Two year"] * (rows // 3),
            "Churn": ["No", "Yes"] * (rows // 2),
        }
    )


def test_numbers_with_blank_cells_are_numeric_and_nullable():
    inference = infer_schema(blank_charges_frame(), target="Churn", id_column="customerID")
    feature = inference.schema.feature("TotalCharges")
    assert isinstance(feature, NumericFeature)
    assert feature.nullable and feature.min == 20.0
    assert any("'TotalCharges'" in w and "blank" in w for w in inference.warnings)
    # The API accepts what the column held: numbers, null, and a blank as null.
    validation = inference.schema.validate_records(
        [
            {"TotalCharges": 29.85, "Contract": "One year"},
            {"TotalCharges": None, "Contract": "One year"},
            {"TotalCharges": " ", "Contract": "One year"},
        ]
    )
    assert validation.ok, validation.errors
    assert validation.frame["TotalCharges"].tolist()[0] == 29.85
    assert validation.frame["TotalCharges"].isna().tolist() == [False, True, True]
    refused = inference.schema.validate_records([{"TotalCharges": "abc", "Contract": "One year"}])
    assert [e.field for e in refused.errors] == ["TotalCharges"]
    # Batch treats the same blank the same way.
    frame = inference.schema.validate_frame(
        pd.DataFrame({"TotalCharges": [" ", "30.5"], "Contract": ["One year", "Two year"]})
    )
    assert frame.rejected.empty and frame.valid["TotalCharges"].isna().tolist() == [True, False]


def test_ambiguous_columns_are_warned_about():
    rows = 60
    frame = pd.DataFrame(
        {
            "mostly_numbers": [str(i) for i in range(rows - 2)] + ["n/a", "unknown"],
            "codes": [1, 2, 3] * (rows // 3),
            "plain": np.linspace(0, 1, rows),
            "y": [0, 1] * (rows // 2),
        }
    )
    inference = infer_schema(frame, target="y")
    text = "\n".join(inference.warnings)
    assert "'mostly_numbers': 97% of values are numbers but 2 are not" in text
    assert "'n/a'" in text and "type = 'numeric'" in text
    assert "'codes': integers with only 3 distinct values" in text
    assert "'plain'" not in text
    assert isinstance(inference.schema.feature("mostly_numbers"), CategoricalFeature)


def test_declarations_override_inference_and_allowed_values_are_enforced():
    frame = blank_charges_frame()
    declarations = {
        "TotalCharges": FeatureDeclaration(nullable=False, min=0, max=10_000),
        "Contract": FeatureDeclaration(categories=["Month-to-month", "One year", "Two year"]),
    }
    inference = infer_schema(frame, "Churn", "customerID", declarations=declarations)
    schema = inference.schema
    charges = schema.feature("TotalCharges")
    assert not charges.nullable and (charges.min, charges.max) == (0, 10_000)
    assert not any("TotalCharges" in w for w in inference.warnings)  # declared: not ambiguous
    checked = schema.validate_records(
        [
            {"TotalCharges": -1.0, "Contract": "One year"},
            {"TotalCharges": 5.0, "Contract": "Monthly"},
            {"TotalCharges": None, "Contract": "One year"},
            {"TotalCharges": 5.0, "Contract": "Two year"},
        ]
    )
    problems = {(e.record, e.field): e.problem for e in checked.errors}
    assert "below the declared minimum" in problems[(0, "TotalCharges")]
    assert "not one of the declared categories" in problems[(1, "Contract")]
    assert (2, "TotalCharges") in problems and (3, "Contract") not in problems
    batch = schema.validate_frame(
        pd.DataFrame({"TotalCharges": ["20000", "5"], "Contract": ["One year", "Weekly"]})
    )
    assert batch.rejected.tolist() == [
        "TotalCharges: above the declared maximum 10000",
        "Contract: not one of the declared categories",
    ]
    typed = infer_schema(
        frame.assign(codes=[1, 2, 3] * 20),
        "Churn",
        "customerID",
        declarations={"codes": FeatureDeclaration(type="categorical")},
    ).schema.feature("codes")
    assert isinstance(typed, CategoricalFeature) and typed.categories == ["1", "2", "3"]


def test_a_declaration_the_data_contradicts_is_an_error_naming_the_field():
    frame = blank_charges_frame()
    with pytest.raises(
        DeclarationError, match=r"\[features.TotalCharge\] names a column that is not"
    ):
        infer_schema(frame, "Churn", declarations={"TotalCharge": FeatureDeclaration()})
    with pytest.raises(
        DeclarationError, match=r"\[features.Contract\].type = 'numeric', but no training value"
    ):
        infer_schema(frame, "Churn", declarations={"Contract": FeatureDeclaration(type="numeric")})
    mostly = frame.assign(TotalCharges=frame["TotalCharges"].where(frame.index != 5, "n/a"))
    inference = infer_schema(
        mostly, "Churn", declarations={"TotalCharges": FeatureDeclaration(type="numeric")}
    )
    assert inference.schema.feature("TotalCharges").nullable
    assert any("1 training value(s) are not numbers (e.g. 'n/a')" in w for w in inference.warnings)


# ---- required = what the estimator reads (issue 12, item 10) -------------------------------


def test_estimator_columns_are_what_the_fitted_estimator_reads():
    from sklearn.base import BaseEstimator, TransformerMixin
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    frame = pd.DataFrame(
        {"a": [1.0, 2, 3, 4], "b": list("xyxy"), "c": [5, 6, 7, 8], "d": [0.1, 0.2, 0.3, 0.4]}
    )
    y = [0, 1, 0, 1]
    by_name = Pipeline(
        [
            (
                "prep",
                ColumnTransformer([("num", "passthrough", ["a"]), ("cat", OneHotEncoder(), ["b"])]),
            ),
            ("model", LogisticRegression()),
        ]
    ).fit(frame, y)
    assert estimator_columns(by_name) == ["a", "b"]  # the dropped remainder is not read
    by_index = ColumnTransformer([("num", "passthrough", [0, 3])]).fit(frame)
    assert estimator_columns(by_index) == ["a", "d"]
    kept = ColumnTransformer([("num", "passthrough", ["a"])], remainder="passthrough").fit(frame)
    assert estimator_columns(kept) == ["a", "b", "c", "d"]
    plain = LogisticRegression().fit(frame[["d", "a"]], y)
    assert estimator_columns(plain) == ["d", "a"]  # its order: scikit-learn checks it

    class Mine(TransformerMixin, BaseEstimator):  # the user's own, without feature_names_in_
        def fit(self, X, y=None):
            return self

        def transform(self, X):
            return np.asarray(X[["a", "d"]])

    assert (
        estimator_columns(Pipeline([("mine", Mine()), ("m", LogisticRegression())]).fit(frame, y))
        is None
    )
    assert estimator_columns(LogisticRegression().fit(frame[["a"]].to_numpy(), y)) is None


def test_columns_the_model_does_not_read_are_optional_and_dropped():
    frame = blank_charges_frame().assign(notes="free text")
    schema = infer_schema(
        frame, "Churn", "customerID", feature_columns=["TotalCharges", "Contract"]
    ).schema
    assert schema.names == ["TotalCharges", "Contract"] and schema.optional == ["notes"]
    checked = schema.validate_records(
        [
            {"TotalCharges": 1.0, "Contract": "One year", "notes": "call back"},
            {"TotalCharges": 1.0, "Contract": "One year"},
        ]
    )
    assert checked.ok and list(checked.frame.columns) == ["TotalCharges", "Contract"]
    unknown = schema.validate_records([{"TotalCharges": 1.0, "Contract": "One year", "x": 1}])
    assert [(e.field, e.problem) for e in unknown.errors] == [
        ("x", "unknown field (not a feature of this model), got 1")
    ]
    batch = schema.validate_frame(pd.DataFrame({"TotalCharges": ["2"], "Contract": ["One year"]}))
    assert batch.rejected.empty  # 'notes' absent: fine
