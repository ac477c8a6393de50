"""Run a model.onnx: feature columns in, class probabilities (or predictions) out.

Imports numpy and onnxruntime only, so the onnx runtime's functions never load scikit-learn or
scipy. The feed is built from the session's own input types (float, double or string per
column), the same way for verification and for serving, so what was verified is what runs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["OnnxEstimator", "OnnxModel", "OnnxRuntimeError"]

_NUMERIC_TYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64}


class OnnxRuntimeError(RuntimeError):
    """model.onnx cannot be loaded or run."""


class OnnxModel:
    """An onnxruntime session over one exported pipeline (single-threaded, see below)."""

    def __init__(self, data: bytes, *, task: str) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        # One thread: under CPU contention OpenMP-style spinning wrecks tail latency, and a
        # Lambda instance serves one request at a time anyway.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(
                data, sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:
            raise OnnxRuntimeError(f"onnxruntime cannot load the model: {exc}") from exc
        self.task = task
        self.inputs = {item.name: item.type for item in self.session.get_inputs()}
        outputs = [item.name for item in self.session.get_outputs()]
        if task == "classification":
            if "probabilities" not in outputs:
                raise OnnxRuntimeError(f"model has no 'probabilities' output (has {outputs})")
            self._output = "probabilities"
        else:
            self._output = outputs[0]

    def feed(self, columns: Mapping[str, Sequence[Any] | np.ndarray]) -> dict[str, np.ndarray]:
        """One (rows, 1) array per input; missing numbers are NaN, missing strings ''."""
        out: dict[str, np.ndarray] = {}
        for name, kind in self.inputs.items():
            values = columns[name]
            if kind in _NUMERIC_TYPES:
                # numpy turns None into NaN for float dtypes
                array = np.asarray(values, dtype=_NUMERIC_TYPES[kind])
            elif kind == "tensor(string)":
                array = np.asarray([_text(v) for v in values], dtype=object)
            else:
                raise OnnxRuntimeError(f"input {name!r} has unsupported type {kind}")
            out[name] = array.reshape(-1, 1)
        return out

    def run(self, columns: Mapping[str, Sequence[Any] | np.ndarray]) -> np.ndarray:
        """Probabilities (rows x classes, float64) for a classifier; predictions for a regressor."""
        (result,) = self.session.run([self._output], self.feed(columns))
        result = np.asarray(result, dtype=np.float64)
        return result if self.task == "classification" else result.reshape(-1)


def _text(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value)


class OnnxEstimator:
    """model.onnx behind the estimator interface the Scorer calls (predict_proba / predict),
    so the API and batch score through the same code on either runtime. It takes a DataFrame
    (batch) or the validated columns by name (the API: no pandas)."""

    takes_columns = True  # Scorer.score_records passes the validated columns as they are

    def __init__(self, data: bytes, *, task: str, classes: list[Any] | None) -> None:
        self.runtime = OnnxModel(data, task=task)
        if task == "classification":
            self.classes_ = np.asarray(classes, dtype=object)

    def _columns(self, frame: Any) -> dict[str, np.ndarray]:
        columns = {name: frame[name] for name in self.runtime.inputs}
        return {n: c.to_numpy() if hasattr(c, "to_numpy") else c for n, c in columns.items()}

    def predict_proba(self, frame: Any) -> np.ndarray:
        return self.runtime.run(self._columns(frame))

    def predict(self, frame: Any) -> np.ndarray:
        if self.runtime.task == "classification":
            return self.classes_[self.predict_proba(frame).argmax(axis=1)]
        return self.runtime.run(self._columns(frame))
