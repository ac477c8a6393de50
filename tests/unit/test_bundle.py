"""ModelBundle: round trip, hash check before unpickling, scikit-learn version skew."""

from __future__ import annotations

import json

import pytest

from skylift.bundle import (
    MANIFEST_FILE,
    MODEL_FILE,
    BundleError,
    IntegrityError,
    Manifest,
    ModelBundle,
    VersionSkewError,
)


def test_round_trip_through_a_directory(churn_bundle, churn_frame, tmp_path):
    churn_bundle.save(tmp_path)
    loaded = ModelBundle.load_dir(tmp_path)
    assert loaded.manifest == churn_bundle.manifest
    features = churn_frame[loaded.manifest.feature_schema.names].head(20)
    assert (
        loaded.model.predict_proba(features) == churn_bundle.model.predict_proba(features)
    ).all()


def test_manifest_records_what_the_contract_asks(churn_bundle):
    manifest = churn_bundle.manifest
    assert manifest.task == "classification" and manifest.target == "churned"
    assert manifest.classes == [0, 1]
    assert len(manifest.sha256) == 64 and manifest.size_bytes == len(churn_bundle.artifact)
    assert {"roc_auc", "accuracy", "f1_macro", "log_loss"} <= set(manifest.metrics)
    assert manifest.runtime.sklearn and manifest.runtime.numpy and manifest.runtime.joblib
    assert manifest.training_data is not None and manifest.training_data.rows == 3000
    assert manifest.holdout is not None and manifest.holdout.seed == 42
    baseline = manifest.baseline
    assert baseline is not None and set(baseline.features) == set(manifest.feature_schema.names)
    assert baseline.features["contract"].kind == "categorical"
    assert abs(sum(baseline.features["monthly_charges"].proportions) - 1.0) < 1e-9
    assert baseline.prediction is not None and baseline.prediction.kind == "numeric"
    json.loads(manifest.model_dump_json())  # serialisable as it will be stored


def test_tampered_artifact_is_refused_before_unpickling(churn_bundle, monkeypatch):
    import joblib

    calls = []
    monkeypatch.setattr(joblib, "load", lambda *a, **k: calls.append(1))
    tampered = churn_bundle.artifact[:-1] + bytes([churn_bundle.artifact[-1] ^ 0xFF])
    with pytest.raises(IntegrityError, match="sha256"):
        ModelBundle.load(tampered, churn_bundle.manifest)
    assert calls == []  # never unpickled


def test_tampered_file_on_disk_is_refused(churn_bundle, tmp_path):
    churn_bundle.save(tmp_path)
    (tmp_path / MODEL_FILE).write_bytes(b"not a model")
    with pytest.raises(IntegrityError):
        ModelBundle.load_dir(tmp_path)


def test_version_skew_is_refused_unless_allowed(churn_bundle, caplog):
    runtime = churn_bundle.manifest.runtime.model_copy(update={"sklearn": "0.24.2"})
    skewed = churn_bundle.manifest.model_copy(update={"runtime": runtime})
    with pytest.raises(VersionSkewError, match=r"scikit-learn 0\.24\.2"):
        ModelBundle.load(churn_bundle.artifact, skewed)
    with caplog.at_level("WARNING"):
        loaded = ModelBundle.load(churn_bundle.artifact, skewed, allow_version_skew=True)
    assert loaded.model is not None
    assert "version skew allowed" in caplog.text


def test_manifest_json_is_accepted_as_text(churn_bundle):
    loaded = ModelBundle.load(churn_bundle.artifact, churn_bundle.manifest.model_dump_json())
    assert isinstance(loaded.manifest, Manifest)


def test_missing_files_and_non_estimators_are_clear(tmp_path):
    with pytest.raises(BundleError, match=MANIFEST_FILE + "|" + MODEL_FILE):
        ModelBundle.load_dir(tmp_path)
    with pytest.raises(BundleError, match="no predict"):
        ModelBundle.create(object(), name="x", task="regression", target="y", feature_schema=None)  # type: ignore[arg-type]


def test_public_manifest_hides_data_locations_and_samples(churn_bundle):
    public = churn_bundle.manifest.public()
    assert "baseline" not in public and "training_data" not in public
    assert public["metrics"] == churn_bundle.manifest.metrics
