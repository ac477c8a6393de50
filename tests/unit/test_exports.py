"""ONNX and SQL exports: every pipeline is converted and compared with itself on a holdout with
missing values; what does not convert is reported, what differs is not verified."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from churn_model.data import generate_churn
from churn_model.train import CATEGORICAL, NUMERIC
from churn_model.train import train as train_example
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from skylift.exports.compare import max_abs_diff
from skylift.exports.onnx import convert_onnx
from skylift.exports.onnx_runtime import OnnxModel
from skylift.exports.sql import to_sql, tree_nodes, verify_sql
from skylift.schema import FeatureSchema

# region is the one categorical with missing values: no converter maps a missing string
# (ONNX string tensors have no null), so the convertible pipelines leave it out.
CONVERTIBLE_CATEGORICAL = [c for c in CATEGORICAL if c != "region"]
FEATURES = NUMERIC + CONVERTIBLE_CATEGORICAL


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, pd.DataFrame]:
    train, holdout = generate_churn(1500, seed=3), generate_churn(600, seed=4)
    assert holdout[NUMERIC].isna().any(axis=1).sum() > 10  # the imputed rows are compared too
    return train, holdout


def _schema(frame: pd.DataFrame, columns: list[str]) -> FeatureSchema:
    return FeatureSchema.infer(frame[[*columns, "churned"]], target="churned")


def _preprocess() -> ColumnTransformer:
    return ColumnTransformer(
        [
            (
                "numeric",
                Pipeline(
                    [("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]
                ),
                NUMERIC,
            ),
            ("categorical", OneHotEncoder(handle_unknown="ignore"), CONVERTIBLE_CATEGORICAL),
        ],
        sparse_threshold=0.0,
    )


def _by_name(columns: list[str], model: Any) -> Pipeline:
    """Features selected by name, as a DataFrame-trained pipeline does (one input per column)."""
    return Pipeline(
        [("select", ColumnTransformer([("numeric", "passthrough", columns)])), ("m", model)]
    )


def _fit(model: Any, frame: pd.DataFrame, columns: list[str]) -> Any:
    return model.fit(frame[columns], frame["churned"])


def test_linear_pipeline_with_imputer_scaler_one_hot_verifies_in_onnx_and_sql(data):
    train, holdout = data
    model = _fit(
        Pipeline([("pre", _preprocess()), ("lr", LogisticRegression(max_iter=1000))]),
        train,
        FEATURES,
    )
    schema = _schema(train, FEATURES)

    onnx = convert_onnx(model, schema, holdout, task="classification")
    assert onnx.check.verified, onnx.check.reason
    assert onnx.data is not None and onnx.check.sha256 is not None
    assert onnx.check.max_abs_diff is not None and onnx.check.max_abs_diff <= 1e-5
    assert onnx.check.agreement == 1.0 and onnx.check.rows == len(holdout)
    # the stored bytes really score like the pipeline
    runtime = OnnxModel(onnx.data, task="classification")
    exported = runtime.run({c: holdout[c].to_numpy() for c in schema.names})
    assert max_abs_diff(model.predict_proba(holdout[schema.names]), exported) <= 1e-5

    sql = verify_sql(model, schema, holdout, task="classification", classes=[0, 1])
    assert sql.verified, sql.reason
    assert sql.max_abs_diff is not None and sql.max_abs_diff <= 1e-9
    assert int(sql.detail["rows_with_missing_values"]) > 10


def test_random_forest_without_imputed_values_verifies(data):
    train, holdout = data
    columns = ["tenure_months", "monthly_charges", "support_calls"]  # no missing values
    model = _fit(
        _by_name(columns, RandomForestClassifier(20, max_depth=6, random_state=0)), train, columns
    )
    onnx = convert_onnx(model, _schema(train, columns), holdout, task="classification")
    assert onnx.check.verified, onnx.check.reason
    assert onnx.check.detail["precision"] in ("double", "float")


def test_tree_pipeline_with_float32_imputer_is_available_but_not_verified(data):
    train, holdout = data
    model = _fit(
        Pipeline([("pre", _preprocess()), ("rf", RandomForestClassifier(20, random_state=0))]),
        train,
        FEATURES,
    )
    onnx = convert_onnx(model, _schema(train, FEATURES), holdout, task="classification")
    assert onnx.check.available and not onnx.check.verified
    assert onnx.data is None  # an export that differs is never stored or used
    assert onnx.check.max_abs_diff is not None and onnx.check.max_abs_diff > 1e-5
    assert "tolerance" in onnx.check.reason


def test_gradient_boosting_is_checked_against_the_tolerance(data):
    train, holdout = data
    model = _fit(
        Pipeline([("pre", _preprocess()), ("gb", GradientBoostingClassifier(n_estimators=20))]),
        train,
        FEATURES,
    )
    schema = _schema(train, FEATURES)
    for check in (
        convert_onnx(model, schema, holdout, task="classification").check,
        verify_sql(model, schema, holdout, task="classification", classes=[0, 1]),
    ):
        assert check.available, check.reason
        assert check.max_abs_diff is not None
        assert check.verified == (check.max_abs_diff <= check.tolerance and check.agreement == 1.0)


def test_the_example_pipeline_is_reported_as_not_converting(data):
    train, holdout = data
    model = train_example(train)
    schema = _schema(train, NUMERIC + CATEGORICAL)
    onnx = convert_onnx(model, schema, holdout, task="classification")
    assert not onnx.check.available and onnx.data is None
    assert "does not convert" in onnx.check.reason and "missing values" in onnx.check.reason
    sql = verify_sql(model, schema, holdout, task="classification", classes=[0, 1])
    assert not sql.available and "does not convert" in sql.reason


def test_a_custom_function_step_is_reported_not_raised(data):
    train, holdout = data
    model = _fit(
        Pipeline(
            [("log", FunctionTransformer(np.log1p)), ("lr", LogisticRegression(max_iter=500))]
        ),
        train,
        ["tenure_months", "support_calls"],
    )
    schema = _schema(train, ["tenure_months", "support_calls"])
    onnx = convert_onnx(model, schema, holdout, task="classification")
    assert not onnx.check.available and onnx.check.reason
    sql = verify_sql(model, schema, holdout, task="classification", classes=[0, 1])
    assert not sql.available and sql.reason


def test_sql_keeps_the_id_column_and_refuses_huge_ensembles(data):
    train, _ = data
    columns = ["tenure_months", "monthly_charges"]
    schema = _schema(train, columns)
    model = _fit(_by_name(columns, LogisticRegression()), train, columns)
    query = to_sql(model, schema, table="customers", dialect="postgres", keep=["customer_id"])
    assert "customers" in query and "customer_id" in query
    big = _fit(_by_name(columns, RandomForestClassifier(100, random_state=0)), train, columns)
    assert tree_nodes(big) > 5_000
    check = verify_sql(big, schema, train, task="classification", classes=[0, 1])
    assert not check.available and "tree nodes" in check.reason


def test_max_abs_diff_counts_one_sided_nan_as_infinite():
    assert max_abs_diff(np.array([1.0, np.nan]), np.array([1.0, np.nan])) == 0.0
    assert max_abs_diff(np.array([1.0, 2.0]), np.array([1.0, np.nan])) == float("inf")
    assert max_abs_diff(np.ones((2, 2)), np.ones((2, 3))) == float("inf")
