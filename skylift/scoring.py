"""Scorer: validated features in, predictions (and class probabilities) out.

Shared by the online API and batch scoring, so a record scores the same either way. For a
classifier, predict_proba runs once and the prediction is its argmax, as the estimator's own
predict() would give, without paying for the model twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from skylift.bundle import ModelBundle
from skylift.schema import FeatureSchema

if TYPE_CHECKING:
    import pandas as pd

    from skylift.schema import RecordValidation

__all__ = ["PREDICTION_COLUMN", "PROBABILITY_PREFIX", "Scorer", "Scores"]

PREDICTION_COLUMN = "prediction"
PROBABILITY_PREFIX = "probability_"


@dataclass
class Scores:
    predictions: np.ndarray
    probabilities: np.ndarray | None  # rows x classes, classification only
    classes: list[Any] | None

    def __len__(self) -> int:
        return len(self.predictions)

    def to_frame(self, index: pd.Index | None = None) -> pd.DataFrame:
        import pandas as pd  # lazily: the onnx API path never imports it

        data: dict[str, Any] = {PREDICTION_COLUMN: self.predictions}
        if self.probabilities is not None and self.classes is not None:
            for position, label in enumerate(self.classes):
                data[f"{PROBABILITY_PREFIX}{label}"] = self.probabilities[:, position]
        return pd.DataFrame(data, index=index)

    def to_records(self, ids: list[Any] | None = None) -> list[dict[str, Any]]:
        """JSON-ready rows: id (when given), prediction, probabilities by class."""
        out: list[dict[str, Any]] = []
        predictions = self.predictions.tolist()
        probabilities = self.probabilities.tolist() if self.probabilities is not None else None
        labels = [str(c) for c in self.classes] if self.classes is not None else []
        for row, prediction in enumerate(predictions):
            item: dict[str, Any] = {}
            if ids:
                item["id"] = ids[row]
            item["prediction"] = prediction
            if probabilities is not None:
                item["probabilities"] = dict(zip(labels, probabilities[row], strict=True))
            out.append(item)
        return out


class Scorer:
    """Scores frames whose columns follow the bundle's FeatureSchema."""

    def __init__(self, bundle: ModelBundle) -> None:
        self.bundle = bundle
        self.model = bundle.model
        self.manifest = bundle.manifest
        self.schema: FeatureSchema = bundle.manifest.feature_schema
        self.task = bundle.manifest.task
        self.classes = self.manifest.classes
        self._columns = self.schema.names
        self._use_proba = self.task == "classification" and hasattr(self.model, "predict_proba")
        if self._use_proba and self.classes is None:
            self.classes = [c.item() if hasattr(c, "item") else c for c in self.model.classes_]

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def version(self) -> int | None:
        return self.manifest.version

    def score(self, features: pd.DataFrame) -> Scores:
        """Score validated features (extra columns are ignored, order is the schema's)."""
        frame = features[self._columns] if list(features.columns) != self._columns else features
        return self._predict(frame, len(frame))

    def score_records(self, validation: RecordValidation) -> Scores:
        """Score what :meth:`FeatureSchema.validate_records` accepted: its columns as they are
        for a model that takes them (model.onnx: the API path never imports pandas), else the
        DataFrame built from them, as the pipeline was fitted on."""
        columns = validation.columns
        assert columns is not None, "score_records needs an accepted validation"
        if getattr(self.model, "takes_columns", False):
            return self._predict(columns, len(next(iter(columns.values()), ())))
        assert validation.frame is not None
        return self.score(validation.frame)

    def _predict(self, inputs: Any, rows: int) -> Scores:
        if rows == 0:
            empty_proba = np.empty((0, len(self.classes or []))) if self._use_proba else None
            return Scores(np.empty(0, dtype=object), empty_proba, self.classes)
        if self._use_proba:
            probabilities = np.asarray(self.model.predict_proba(inputs), dtype="float64")
            labels = np.asarray(self.classes, dtype=object)
            predictions = labels[probabilities.argmax(axis=1)]
            return Scores(_plain_array(predictions), probabilities, self.classes)
        predictions = np.asarray(self.model.predict(inputs))
        return Scores(_plain_array(predictions), None, None)

    def warm(self) -> None:
        """Score one record the schema accepts, as a request would: the validator is built and
        whatever the estimator imports or caches on its first call happens now (during init,
        before a SnapStart snapshot), not on the first request."""
        validation = self.schema.validate_records([self.schema.example_record()])
        if validation.columns is not None:
            self.score_records(validation)

    def score_frame(self, features: pd.DataFrame) -> pd.DataFrame:
        """Predictions (and ``probability_<class>`` columns) indexed like ``features``."""
        return self.score(features).to_frame(index=features.index)


def _plain_array(values: np.ndarray) -> np.ndarray:
    """Object arrays of numpy scalars -> Python scalars, so JSON encoding is exact."""
    if values.dtype == object:
        return np.array([v.item() if hasattr(v, "item") else v for v in values], dtype=object)
    return values
