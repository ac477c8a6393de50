"""Compare an export's output with the pipeline's own on the same rows."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from skylift.exports.records import ExportCheck

__all__ = ["compare", "max_abs_diff"]


def max_abs_diff(expected: np.ndarray, actual: np.ndarray) -> float:
    """Largest |expected - actual|; a NaN on one side only counts as infinitely far."""
    expected = np.asarray(expected, dtype=np.float64)
    actual = np.asarray(actual, dtype=np.float64)
    if expected.shape != actual.shape:
        return float("inf")
    if expected.size == 0:
        return 0.0
    both_nan = np.isnan(expected) & np.isnan(actual)
    diff = np.where(both_nan, 0.0, np.abs(expected - actual))
    return float(np.nan_to_num(diff, nan=np.inf).max())


def compare(
    model: Any, features: pd.DataFrame, exported: np.ndarray, *, task: str, tolerance: float
) -> ExportCheck:
    rows = len(features)
    if task == "classification":
        expected = np.asarray(model.predict_proba(features), dtype=np.float64)
        diff = max_abs_diff(expected, exported)
        agreement = (
            float(np.mean(expected.argmax(axis=1) == np.asarray(exported).argmax(axis=1)))
            if expected.shape == np.shape(exported) and rows
            else 0.0
        )
    else:
        expected = np.asarray(model.predict(features), dtype=np.float64).reshape(-1)
        diff = max_abs_diff(expected, np.asarray(exported).reshape(-1))
        agreement = None
    verified = diff <= tolerance and (agreement is None or agreement == 1.0)
    problems = []
    if diff > tolerance:
        problems.append(f"max |diff| {diff:.3g} > tolerance {tolerance:g}")
    if agreement is not None and agreement < 1.0:
        problems.append(f"{round((1.0 - agreement) * rows)} of {rows} labels differ")
    reason = "; ".join(problems)
    return ExportCheck(
        available=True,
        verified=verified,
        max_abs_diff=diff,
        agreement=agreement,
        rows=rows,
        tolerance=tolerance,
        reason=reason,
    )
