"""Training: entry point loading, deterministic holdout, metrics, clear errors."""

from __future__ import annotations

import pandas as pd
import pytest

from skylift.training import (
    TrainingError,
    evaluate,
    load_entry_point,
    read_training_data,
    split_holdout,
    train_and_register,
    train_candidate,
)


def test_entry_point_is_imported_from_source_dir(churn_config):
    train = load_entry_point(churn_config)
    assert train.__name__ == "train"


def test_bad_entry_point_names_the_field(churn_config):
    config = churn_config.model_copy(
        update={"model": churn_config.model.model_copy(update={"entry_point": "nope.mod:train"})}
    )
    with pytest.raises(TrainingError, match=r"\[model\].entry_point 'nope.mod:train'"):
        load_entry_point(config)


def test_holdout_split_is_deterministic(churn_config, churn_frame):
    first = split_holdout(churn_frame, churn_config)[1].index
    second = split_holdout(churn_frame, churn_config)[1].index
    assert list(first) == list(second)
    assert len(first) == 600


def test_candidate_metrics_are_computed_on_the_holdout(churn_config, churn_frame):
    """The user's train() never sees the holdout rows, and the manifest's metrics are the
    model's on exactly those rows (the configured fraction of the data)."""
    seen: list[pd.DataFrame] = []

    def train(frame: pd.DataFrame):
        seen.append(frame)
        return load_entry_point(churn_config)(frame)

    result = train_candidate(churn_config, churn_frame, train_fn=train)
    holdout, (trained_on,) = result.holdout, seen
    ids = set(churn_frame["customer_id"])
    assert set(holdout["customer_id"]).isdisjoint(trained_on["customer_id"])
    assert set(holdout["customer_id"]) | set(trained_on["customer_id"]) == ids
    expected_rows = round(len(churn_frame) * churn_config.model.holdout_fraction)
    assert abs(len(holdout) - expected_rows) <= 1
    # Scored as the API would feed them: schema-validated (here every holdout row fits).
    schema = result.bundle.manifest.feature_schema
    recomputed = evaluate(
        result.bundle.model,
        schema.validate_frame(holdout).valid,
        holdout["churned"],
        "classification",
    )
    assert recomputed == result.bundle.manifest.metrics
    on_training_rows = evaluate(
        result.bundle.model,
        schema.validate_frame(trained_on).valid,
        trained_on["churned"],
        "classification",
    )
    assert on_training_rows != recomputed  # so the check above tells the two apart
    assert 0.7 < recomputed["roc_auc"] < 0.95  # the generator's signal, learned


def test_missing_target_and_bad_return_are_clear(churn_config, churn_frame):
    with pytest.raises(TrainingError, match="no target column 'churned'"):
        train_candidate(churn_config, churn_frame.drop(columns=["churned"]))
    with pytest.raises(TrainingError, match="not a fitted estimator"):
        train_candidate(churn_config, churn_frame, train_fn=lambda frame: None)
    with pytest.raises(TrainingError, match="raised ValueError: boom"):
        train_candidate(churn_config, churn_frame, train_fn=_raise)


def _raise(frame):
    raise ValueError("boom")


def test_read_training_data_describes_the_file(tmp_path, churn_frame):
    path = tmp_path / "train.csv"
    churn_frame.to_csv(path, index=False)
    frame, ref = read_training_data(path)
    assert len(frame) == ref.rows == len(churn_frame)
    assert ref.uri == str(path) and len(ref.sha256) == 64
    other = tmp_path / "train.xlsx"
    other.write_text("x")
    with pytest.raises(TrainingError, match=r"must be \.csv"):
        read_training_data(other)


def test_train_and_register_from_s3(registry, churn_config, churn_frame, s3):
    key = churn_config.storage.training_prefix + "churn.csv"
    s3.put_object(Bucket=churn_config.storage.bucket, Key=key, Body=churn_frame.to_csv(index=False))
    result = train_and_register(
        churn_config, registry, f"s3://{churn_config.storage.bucket}/{key}", promote=True
    )
    assert result.promoted and registry.resolve() == result.bundle.manifest.version == 1
    assert registry.describe(1).training_data.uri.endswith("training/churn.csv")


def test_declarations_reach_the_schema_and_a_wrong_one_names_file_and_field(
    churn_config, churn_frame
):
    from skylift.config_sections import FeatureDeclaration

    declared = churn_config.model_copy(
        update={"features": {"support_calls": FeatureDeclaration(type="categorical")}}
    )
    result = train_candidate(declared, churn_frame)
    assert result.bundle.manifest.feature_schema.feature("support_calls").kind == "categorical"
    wrong = churn_config.model_copy(update={"features": {"suport_calls": FeatureDeclaration()}})
    with pytest.raises(TrainingError) as caught:
        train_candidate(wrong, churn_frame)
    assert str(churn_config.config_path) in str(caught.value)
    assert "[features.suport_calls] names a column that is not in the training data" in str(
        caught.value
    )


def test_ambiguous_columns_are_in_the_training_result(churn_config, churn_frame):
    frame = churn_frame.assign(
        total_charges=churn_frame["total_charges"].map(lambda v: v if pd.isna(v) else f"{v:.2f}")
    )
    frame.loc[frame.index[:5], "total_charges"] = " "

    def train(data: pd.DataFrame):  # the user's own conversion, as in the churn notebook
        numbers = pd.to_numeric(data["total_charges"], errors="coerce")
        return load_entry_point(churn_config)(data.assign(total_charges=numbers))

    result = train_candidate(churn_config, frame, train_fn=train)
    feature = result.bundle.manifest.feature_schema.feature("total_charges")
    assert feature.kind == "numeric" and feature.nullable
    assert any("'total_charges': numbers stored as text with" in w for w in result.warnings)


def test_required_features_are_the_columns_the_pipeline_reads(churn_config, churn_frame):
    """The churn pipeline selects its columns; a column it never reads is optional."""
    frame = churn_frame.assign(signup_channel="web")
    result = train_candidate(churn_config, frame)
    schema = result.bundle.manifest.feature_schema
    assert "signup_channel" not in schema.names and schema.optional == ["signup_channel"]
    assert set(schema.names) == {
        "age", "tenure_months", "monthly_charges", "total_charges", "support_calls",
        "contract", "internet_service", "payment_method", "region", "paperless_billing",
    }  # fmt: skip


def test_positive_class_and_metrics_that_cannot_be_computed_are_said():
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import LinearSVC

    from skylift.training import positive_class

    features = pd.DataFrame({"x": [0.0, 1, 2, 3, 4, 5, 6, 7]})
    target = pd.Series(["No", "No", "Yes", "No", "Yes", "Yes", "No", "Yes"])
    model = LogisticRegression().fit(features, target)
    assert positive_class(list(model.classes_)) == "Yes"
    assert positive_class([0, 1], "0") == 0  # TOML gives text, the classes are numbers
    with pytest.raises(TrainingError, match=r"\[model\].positive_class 'yes' is not a class"):
        positive_class(["No", "Yes"], "yes")
    notes: list[str] = []
    metrics = evaluate(model, features, target, "classification", positive="No", notes=notes)
    assert 0.5 < metrics["roc_auc"] <= 1.0 and notes == []
    one_class = evaluate(model, features[:2], target[:2], "classification", notes=notes)
    assert "roc_auc" not in one_class
    assert notes == ["roc_auc not computed: the holdout holds one class only ('No')"]
    notes.clear()
    evaluate(LinearSVC().fit(features, target), features, target, "classification", notes=notes)
    assert notes == ["roc_auc and log_loss not computed: LinearSVC has no predict_proba"]
