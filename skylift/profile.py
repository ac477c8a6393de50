"""Baseline profiles: what the training data looked like, per feature, for drift detection.

A numeric feature keeps decile bin edges with the share of rows in each bin (for PSI), a
sample of values (for KS) and summary statistics; a categorical feature keeps category
frequencies (the most common ones plus ``__other__``). The profile travels in the manifest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from skylift.schema import CategoricalFeature, FeatureSchema

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["OTHER", "BaselineProfile", "CategoricalProfile", "NumericProfile"]

OTHER = "__other__"
MAX_PROFILE_CATEGORIES = 50
SAMPLE_SIZE = 500


class NumericProfile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["numeric"] = "numeric"
    count: int
    missing_fraction: float
    # Inner bin edges; bins are (-inf, e0], (e0, e1], ..., (e_last, inf).
    edges: list[float]
    proportions: list[float]
    mean: float | None = None
    std: float | None = None
    min: float | None = None
    max: float | None = None
    sample: list[float] = Field(default_factory=list)

    @classmethod
    def from_values(
        cls, values: pd.Series | np.ndarray, bins: int = 10, seed: int = 0
    ) -> NumericProfile:
        import pandas as pd  # lazily: the onnx API path never imports it

        array = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype="float64")
        finite = array[np.isfinite(array)]
        count = int(array.size)
        missing = float(1.0 - finite.size / count) if count else 0.0
        if finite.size == 0:
            return cls(count=count, missing_fraction=missing, edges=[], proportions=[1.0])
        edges = np.unique(np.quantile(finite, np.linspace(0, 1, bins + 1)[1:-1]))
        proportions = bin_proportions(finite, edges.tolist())
        rng = np.random.default_rng(seed)
        sample = (
            finite if finite.size <= SAMPLE_SIZE else rng.choice(finite, SAMPLE_SIZE, replace=False)
        )
        return cls(
            count=count,
            missing_fraction=missing,
            edges=[float(e) for e in edges],
            proportions=proportions,
            mean=float(finite.mean()),
            std=float(finite.std()),
            min=float(finite.min()),
            max=float(finite.max()),
            sample=[float(v) for v in np.sort(sample)],
        )


class CategoricalProfile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["categorical"] = "categorical"
    count: int
    missing_fraction: float
    frequencies: dict[str, float]

    @classmethod
    def from_values(cls, values: pd.Series | np.ndarray) -> CategoricalProfile:
        import pandas as pd  # lazily: the onnx API path never imports it

        series = pd.Series(values, dtype=object)
        count = int(series.size)
        present = series.dropna().astype(str)
        missing = float(1.0 - present.size / count) if count else 0.0
        shares = present.value_counts(normalize=True)
        top = shares.iloc[:MAX_PROFILE_CATEGORIES]
        frequencies = {str(k): float(v) for k, v in top.items()}
        rest = float(shares.iloc[MAX_PROFILE_CATEGORIES:].sum())
        if rest > 0:
            frequencies[OTHER] = rest
        return cls(count=count, missing_fraction=missing, frequencies=frequencies)


Profile = Annotated[NumericProfile | CategoricalProfile, Field(discriminator="kind")]


class BaselineProfile(BaseModel):
    """Per-feature profiles of the training data, plus the model's prediction distribution."""

    model_config = ConfigDict(extra="forbid")
    rows: int
    features: dict[str, Profile]
    prediction: Profile | None = None

    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        schema: FeatureSchema,
        predictions: pd.Series | np.ndarray | None = None,
        prediction_kind: Literal["numeric", "categorical"] = "numeric",
    ) -> BaselineProfile:
        import pandas as pd  # lazily: the onnx API path never imports it

        features: dict[str, NumericProfile | CategoricalProfile] = {}
        for feature in schema.features:
            column = frame[feature.name]
            if isinstance(feature, CategoricalFeature):
                features[feature.name] = CategoricalProfile.from_values(column)
            else:
                features[feature.name] = NumericProfile.from_values(column)
        prediction: NumericProfile | CategoricalProfile | None = None
        if predictions is not None:
            prediction = (
                NumericProfile.from_values(predictions)
                if prediction_kind == "numeric"
                else CategoricalProfile.from_values(pd.Series(predictions).astype(str))
            )
        return cls(rows=len(frame), features=features, prediction=prediction)


def bin_proportions(values: np.ndarray, edges: list[float]) -> list[float]:
    """Share of finite ``values`` in each bin defined by inner ``edges`` (right-closed)."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return [0.0] * (len(edges) + 1)
    counts = np.bincount(
        np.searchsorted(np.asarray(edges), finite, side="left"), minlength=len(edges) + 1
    )
    return [float(c) / finite.size for c in counts]
