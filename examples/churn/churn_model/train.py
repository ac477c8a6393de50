"""The user's training function: data in, scikit-learn Pipeline out. skylift does the rest."""

from __future__ import annotations

import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

NUMERIC = ["age", "tenure_months", "monthly_charges", "total_charges", "support_calls"]
CATEGORICAL = ["contract", "internet_service", "payment_method", "region", "paperless_billing"]


def train(frame: pd.DataFrame) -> Pipeline:
    """Fit a churn classifier on ``frame`` (features plus the ``churned`` target)."""
    features = frame[NUMERIC + CATEGORICAL]
    preprocess = ColumnTransformer(
        [
            ("numeric", SimpleImputer(strategy="median"), NUMERIC),
            (
                "categorical",
                Pipeline(
                    [
                        ("impute", SimpleImputer(strategy="constant", fill_value="missing")),
                        (
                            "encode",
                            OneHotEncoder(handle_unknown="ignore", min_frequency=20),
                        ),
                    ]
                ),
                CATEGORICAL,
            ),
        ],
        sparse_threshold=0.0,
    )
    model = Pipeline(
        [
            ("preprocess", preprocess),
            (
                "classifier",
                HistGradientBoostingClassifier(
                    max_iter=150, learning_rate=0.08, max_leaf_nodes=15, random_state=0
                ),
            ),
        ]
    )
    return model.fit(features, frame["churned"])


def train_portable(frame: pd.DataFrame) -> Pipeline:
    """A churn classifier that exports to ONNX and SQL exactly (``[deploy].runtime = "onnx"``):
    a linear model, and no categorical column with missing values (ONNX strings have no null,
    so ``region`` is left out)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    categorical = [c for c in CATEGORICAL if c != "region"]
    features = frame[NUMERIC + categorical]
    preprocess = ColumnTransformer(
        [
            (
                "numeric",
                Pipeline(
                    [("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]
                ),
                NUMERIC,
            ),
            ("categorical", OneHotEncoder(handle_unknown="ignore"), categorical),
        ],
        sparse_threshold=0.0,
    )
    model = Pipeline(
        [("preprocess", preprocess), ("classifier", LogisticRegression(max_iter=1000))]
    )
    return model.fit(features, frame["churned"])
