"""The onnx runtime's layer (layers/requirements-onnx.txt): its own cache key, no scikit-learn,
scipy or joblib, pins shared with the sklearn layer, and, as built, the scoring path runs from it
with the runtime's Python (``-I -S -B``: nothing but the code asset and the layer)."""

from __future__ import annotations

import subprocess

import pytest

from tests.helpers import EXAMPLE_DIR, ROOT


def _pins(name: str) -> dict[str, str]:
    text = (ROOT / "layers" / name).read_text()
    return dict(line.split("==") for line in text.splitlines() if "==" in line)


def test_exports_requirements_are_the_sklearn_layer_plus_the_onnx_exporter():
    """The retrain function's layer (runtime = onnx): registration converts with skl2onnx and
    verifies with the onnxruntime the score function runs, at the versions training used."""
    from importlib.metadata import version

    exports, sklearn, onnx = (
        _pins(n) for n in ("requirements-exports.txt", "requirements.txt", "requirements-onnx.txt")
    )
    assert {p: v for p, v in exports.items() if p in sklearn} == sklearn
    assert set(exports) - set(sklearn) == {"skl2onnx", "onnx", "onnxruntime"}
    assert exports["onnxruntime"] == onnx["onnxruntime"]
    for package in ("skl2onnx", "onnx", "onnxruntime"):
        assert exports[package] == version(package), package


def test_onnx_requirements_hold_no_sklearn_and_share_the_sklearn_layer_pins():
    from importlib.metadata import version

    onnx, sklearn = _pins("requirements-onnx.txt"), _pins("requirements.txt")
    assert not {"scikit-learn", "scipy", "joblib"} & set(onnx)
    assert {p: v for p, v in onnx.items() if p in sklearn} == {
        p: sklearn[p] for p in onnx if p in sklearn
    }
    assert onnx["onnxruntime"] == version("onnxruntime")  # what verified model.onnx at training


def test_the_onnx_layer_has_its_own_cache_key_and_the_config_picks_it():
    from layers.build import (
        EXPORTS_REQUIREMENTS,
        ONNX_REQUIREMENTS,
        REQUIREMENTS,
        layer_directory,
        requirements_for,
    )

    assert requirements_for("onnx") == ONNX_REQUIREMENTS
    assert requirements_for("sklearn") == REQUIREMENTS
    assert requirements_for("exports") == EXPORTS_REQUIREMENTS
    assert layer_directory("3.12", "x86_64", ONNX_REQUIREMENTS) != layer_directory(
        "3.12", "x86_64", REQUIREMENTS
    )


def test_the_onnx_layer_as_built_scores_without_sklearn(churn_onnx_bundle, churn_config, tmp_path):
    from infrastructure.packaging import stage_code_asset
    from layers.build import ONNX_REQUIREMENTS, build_layer, is_built, layer_directory
    from layers.bytecode import SCORING_HANDLER_MODULES
    from layers.interpreter import find_interpreter

    deploy = churn_config.deploy
    if not is_built(layer_directory(deploy.python_version, deploy.architecture, ONNX_REQUIREMENTS)):
        pytest.skip("the onnx layer is not built: python -m benchmarks.exports builds it")
    code = stage_code_asset(churn_config)
    layer = build_layer(
        deploy.python_version,
        deploy.architecture,
        requirements=ONNX_REQUIREMENTS,
        code_dir=code,
        handlers=SCORING_HANDLER_MODULES,
    )
    assert not (layer.path / "python" / "onnxruntime" / "transformers").exists()  # trimmed
    churn_onnx_bundle.save(tmp_path)
    record = churn_onnx_bundle.manifest.feature_schema.example_record()
    script = f"""
import sys
sys.path[:0] = {[str(code), str(layer.path / "python")]!r}
from pathlib import Path
from skylift.bundle import ModelBundle
from skylift.scoring import Scorer
d = Path({str(tmp_path)!r})
b = ModelBundle.load_onnx((d / "model.onnx").read_bytes(), (d / "manifest.json").read_text())
s = Scorer(b)
scores = s.score(s.schema.validate_records([{record!r}]).frame)
assert scores.probabilities.shape == (1, 2)
print(sorted(m for m in ("sklearn", "scipy", "joblib") if m in sys.modules) or "clean")
"""
    python = find_interpreter(deploy.python_version)
    result = subprocess.run(
        [python, "-I", "-S", "-B", "-c", script],
        capture_output=True,
        text=True,
        cwd=EXAMPLE_DIR,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "clean"
