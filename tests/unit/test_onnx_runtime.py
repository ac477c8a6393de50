"""[deploy].runtime = "onnx": model.onnx in the bundle (verified, hashed), loaded without
scikit-learn, refused when a version has no verified export."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from skylift.bundle import ONNX_FILE, BundleError, IntegrityError, ModelBundle
from skylift.model_holder import ModelHolder, ModelUnavailableError
from skylift.scoring import Scorer
from tests.helpers import EXAMPLE_DIR, ROOT


def test_registration_stores_the_verified_onnx_and_records_every_export(
    registry, s3, churn_onnx_bundle, churn_bundle
):
    manifest = registry.register(churn_onnx_bundle)
    exports = manifest.exports
    assert exports is not None and exports.onnx is not None and exports.sql is not None
    assert exports.onnx.verified and exports.onnx.max_abs_diff <= exports.onnx.tolerance == 1e-5
    assert exports.onnx.agreement == 1.0 and exports.onnx.rows == manifest.holdout.rows
    assert exports.sql.verified and exports.sql.max_abs_diff <= 1e-9
    key = f"models/churn/versions/{manifest.version}/{ONNX_FILE}"
    stored = s3.get_object(Bucket=registry.bucket, Key=key)["Body"].read()
    assert stored == churn_onnx_bundle.onnx
    assert (
        json.loads(registry.describe(manifest.version).model_dump_json())["exports"]["onnx"][
            "sha256"
        ]
        == exports.onnx.sha256
    )

    # the example's pipeline does not convert: recorded, nothing stored
    example = registry.register(churn_bundle)
    assert example.exports is not None and not example.exports.onnx.available
    assert "does not convert" in example.exports.onnx.reason
    listed = s3.list_objects_v2(
        Bucket=registry.bucket, Prefix=f"models/churn/versions/{example.version}/"
    )
    assert ONNX_FILE not in {item["Key"].rsplit("/", 1)[-1] for item in listed["Contents"]}


def test_onnx_load_scores_like_the_pipeline_and_never_unpickles(registry, churn_onnx_bundle):
    version = registry.register(churn_onnx_bundle).version
    bundle = registry.load(version, runtime="onnx")
    assert bundle._artifact is None and type(bundle.model).__name__ == "OnnxEstimator"
    holdout = churn_onnx_bundle.manifest.feature_schema
    frame = holdout.validate_records([holdout.example_record()]).frame
    expected = Scorer(churn_onnx_bundle).score(frame)
    actual = Scorer(bundle).score(frame)
    assert actual.classes == expected.classes
    assert abs(actual.probabilities - expected.probabilities).max() <= 1e-5
    assert list(actual.predictions) == list(expected.predictions)


def test_a_tampered_model_onnx_is_refused(registry, s3, churn_onnx_bundle):
    version = registry.register(churn_onnx_bundle).version
    key = f"models/churn/versions/{version}/{ONNX_FILE}"
    s3.put_object(Bucket=registry.bucket, Key=key, Body=churn_onnx_bundle.onnx + b"\0")
    with pytest.raises(IntegrityError, match=r"sha256 of model\.onnx"):
        registry.load(version, runtime="onnx")


def test_a_champion_without_a_verified_onnx_is_refused_with_the_reason(registry, churn_bundle):
    version = registry.register(churn_bundle).version
    registry.promote(version)
    with pytest.raises(BundleError, match=r'no verified ONNX export .*runtime = "sklearn"'):
        registry.load(version, runtime="onnx")
    holder = ModelHolder(registry, 30.0, runtime="onnx")
    with pytest.raises(ModelUnavailableError, match="no verified ONNX export"):
        holder.current()


def test_save_writes_model_onnx(tmp_path, churn_onnx_bundle):
    churn_onnx_bundle.save(tmp_path)
    assert (tmp_path / ONNX_FILE).read_bytes() == churn_onnx_bundle.onnx
    loaded = ModelBundle.load_onnx((tmp_path / ONNX_FILE).read_bytes(), churn_onnx_bundle.manifest)
    assert loaded.onnx == churn_onnx_bundle.onnx


def test_the_onnx_runtime_imports_neither_sklearn_nor_scipy(tmp_path, churn_onnx_bundle):
    """Score records through the Scorer, as the API does, in a fresh interpreter: nor pandas
    (the validated columns go to onnxruntime as they are)."""
    churn_onnx_bundle.save(tmp_path)
    script = f"""
import sys
from pathlib import Path
from skylift.bundle import ModelBundle
from skylift.scoring import Scorer
d = Path({str(tmp_path)!r})
bundle = ModelBundle.load_onnx((d / "model.onnx").read_bytes(), (d / "manifest.json").read_text())
scorer = Scorer(bundle)
scorer.warm()
validation = scorer.schema.validate_records([scorer.schema.example_record()])
assert len(scorer.score_records(validation)) == 1
heavy = sorted(m for m in ("sklearn", "scipy", "joblib", "pandas") if m in sys.modules)
print(",".join(heavy) or "none")
"""
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PYTHONPATH": f"{ROOT}:{EXAMPLE_DIR}", "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "none"


# ---- refusing a champion the onnx runtime cannot serve -------------------------------------------


def _onnx(config):
    return config.model_copy(
        update={"deploy": config.deploy.model_copy(update={"runtime": "onnx"})}
    )


def test_the_api_answers_503_naming_the_missing_export(registry, churn_config, churn_bundle):
    """A champion promoted without a verified model.onnx (before runtime = onnx was set): the
    score function answers a clear 503, on every route that needs the model."""
    from skylift.serving import build_service
    from tests.helpers import RECORD, api_event, assert_error_shape, call, predict_event

    version = registry.register(churn_bundle).version
    registry.promote(version)  # this registry serves the pickle: nothing stops it here
    config = _onnx(churn_config).model_copy(
        update={"api": churn_config.api.model_copy(update={"capture_stream": None})}
    )
    holder = ModelHolder(registry, 30.0, runtime="onnx")
    service = build_service(config, holder, namespace="Skylift", service_name="skylift")
    for event in (
        predict_event({"records": [RECORD]}),
        api_event("GET", "/health", content_type=None),
    ):
        status, body, _ = call(service, event)
        assert_error_shape(body)
        assert (status, body["error"]["code"]) == (503, "model_unavailable")
        assert f"version {version} has no verified ONNX export" in body["error"]["message"]
        assert 'runtime = "sklearn"' in body["error"]["message"]


def test_the_registry_of_an_onnx_deployment_refuses_to_promote_or_roll_back_to_a_pickle(
    s3, churn_config, churn_bundle, churn_onnx_bundle
):
    from skylift.registry import ModelRegistry
    from skylift.registry_types import NotServableError

    registry = ModelRegistry.from_config(_onnx(churn_config), s3_client=s3)
    assert registry.serving_runtime == "onnx"
    pickle_only = registry.register(churn_bundle).version
    with pytest.raises(NotServableError, match=rf"version {pickle_only} has no verified ONNX"):
        registry.promote(pickle_only)
    # an earlier champion without an export, promoted while the runtime was sklearn
    ModelRegistry.from_config(churn_config, s3_client=s3).promote(pickle_only)
    portable = registry.register(churn_onnx_bundle).version
    registry.promote(portable)
    with pytest.raises(NotServableError, match=rf"version {pickle_only} has no verified ONNX"):
        registry.rollback()
    assert registry.resolve("champion") == portable  # refused: the alias did not move


def test_retrain_of_an_onnx_deployment_does_not_promote_a_challenger_without_export(
    s3, churn_config, churn_frame, registry
):
    """The example pipeline does not convert: registered, gate refuses, reason says why."""
    from skylift.retraining import retrain

    s3.put_object(
        Bucket=churn_config.storage.bucket,
        Key=churn_config.storage.training_prefix + "churn.csv",
        Body=churn_frame.to_csv(index=False).encode(),
    )
    report = retrain(_onnx(churn_config), s3)
    assert report.status == "succeeded" and not report.decision.promoted
    assert report.decision.reason.startswith("onnx export: model churn version 1 has no verified")
    assert [c["name"] for c in report.decision.checks if not c["passed"]] == ["onnx export"]
    assert [m.version for m in registry.list_versions()] == [1]


def test_the_api_path_scores_the_columns_exactly_as_the_frame(churn_onnx_bundle, churn_frame):
    """Columns (the API's, no pandas) and the DataFrame built from them (batch's shape) give the
    same probabilities, missing values included, on the columnar and the pydantic path."""
    import numpy as np

    scorer = Scorer(churn_onnx_bundle)
    schema = scorer.schema
    records = json.loads(churn_frame.head(300)[schema.names].to_json(orient="records"))
    records[0] = {**records[0], schema.names[0]: None}
    for validation in (
        schema.validate_records(records),
        schema.validate_records_per_record(records),
    ):
        assert validation.ok and validation.columns is not None
        by_columns = scorer.score_records(validation)
        by_frame = scorer.score(validation.frame)
        assert np.array_equal(by_columns.probabilities, by_frame.probabilities)
        assert list(by_columns.predictions) == list(by_frame.predictions)
