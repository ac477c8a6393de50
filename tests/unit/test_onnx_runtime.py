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
    """Score through the Scorer, as the functions do, in a fresh interpreter."""
    churn_onnx_bundle.save(tmp_path)
    script = f"""
import sys
from pathlib import Path
from skylift.bundle import ModelBundle
from skylift.scoring import Scorer
d = Path({str(tmp_path)!r})
bundle = ModelBundle.load_onnx((d / "model.onnx").read_bytes(), (d / "manifest.json").read_text())
Scorer(bundle).warm()
heavy = sorted(m for m in ("sklearn", "scipy", "joblib") if m in sys.modules)
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
