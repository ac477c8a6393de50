"""Convert a fitted pipeline to ONNX (skl2onnx) and verify it on the holdout (onnxruntime).

Inputs are one column per feature, typed from the FeatureSchema (numbers, strings), so the
exported graph takes the same records the API validates. Numbers are tried in double precision
first, then float32 (many converters and onnxruntime kernels exist only for float32: tree
thresholds, imputers); the first attempt that verifies is kept. A pipeline that does not convert,
or converts but differs by more than the tolerance, yields no model.onnx and a reason.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd

from skylift.exports.compare import compare
from skylift.exports.onnx_runtime import OnnxModel
from skylift.exports.records import ExportCheck
from skylift.schema import FeatureSchema, NumericFeature

__all__ = ["DEFAULT_TOLERANCE", "OnnxExport", "convert_onnx", "verify_onnx"]

DEFAULT_TOLERANCE = 1e-5
# Opsets onnxruntime >= 1.17 implements; ai.onnx.ml 3 carries tree thresholds as doubles.
TARGET_OPSET = {"": 18, "ai.onnx.ml": 3}
PRECISIONS = ("double", "float")


class OnnxExport:
    """The outcome of one conversion: the bytes (only when verified) and the check."""

    def __init__(self, data: bytes | None, check: ExportCheck) -> None:
        self.data = data
        self.check = check


def convert_onnx(
    model: Any,
    schema: FeatureSchema,
    holdout: pd.DataFrame,
    *,
    task: str,
    tolerance: float = DEFAULT_TOLERANCE,
) -> OnnxExport:
    """Convert ``model`` and compare it with itself on ``holdout`` (the features, every row)."""
    try:
        import skl2onnx  # noqa: F401
    except ImportError:
        return OnnxExport(
            None,
            ExportCheck(
                available=False,
                tolerance=tolerance,
                reason="skl2onnx is not installed (pip install 'skylift[exports]')",
            ),
        )
    failures: list[str] = []
    best: ExportCheck | None = None
    for precision in PRECISIONS:
        try:
            data = _convert(model, schema, task, precision)
            runtime = OnnxModel(data, task=task)
        except Exception as exc:
            failures.append(f"{precision}: {_first_line(exc)}")
            continue
        check = verify_onnx(runtime, model, schema, holdout, task=task, tolerance=tolerance)
        check.detail["precision"] = precision
        if check.verified:
            return OnnxExport(
                data,
                check.model_copy(
                    update={"sha256": _sha256(data), "size_bytes": len(data), "reason": ""}
                ),
            )
        if best is None or (check.max_abs_diff or np.inf) < (best.max_abs_diff or np.inf):
            best = check
    if best is not None:
        return OnnxExport(None, best)
    return OnnxExport(
        None,
        ExportCheck(
            available=False,
            tolerance=tolerance,
            rows=0,
            reason="does not convert: " + "; ".join(failures),
        ),
    )


def verify_onnx(
    runtime: OnnxModel,
    model: Any,
    schema: FeatureSchema,
    holdout: pd.DataFrame,
    *,
    task: str,
    tolerance: float,
) -> ExportCheck:
    """Run both on every holdout row; verified when within ``tolerance`` and labels agree."""
    features = holdout[schema.names]
    try:
        exported = runtime.run({name: features[name].to_numpy() for name in schema.names})
    except Exception as exc:
        return ExportCheck(
            available=False, tolerance=tolerance, reason=f"fails to run: {_first_line(exc)}"
        )
    return compare(model, features, exported, task=task, tolerance=tolerance)


def _convert(model: Any, schema: FeatureSchema, task: str, precision: str) -> bytes:
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType, StringTensorType

    number = DoubleTensorType if precision == "double" else FloatTensorType
    initial_types = [
        (
            f.name,
            number([None, 1]) if isinstance(f, NumericFeature) else StringTensorType([None, 1]),
        )
        for f in schema.features
    ]
    final = model.steps[-1][1] if hasattr(model, "steps") else model
    options = {id(final): {"zipmap": False}} if task == "classification" else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        proto = to_onnx(
            model, initial_types=initial_types, options=options, target_opset=TARGET_OPSET
        )
    return bytes(proto.SerializeToString())


def _sha256(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300] if text else ''}"
