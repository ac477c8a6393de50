"""Training: load data, call the user's train(), evaluate on a deterministic holdout, bundle.

``train_candidate`` is the one path from data to a ModelBundle, used by ``skylift train`` and
by the scheduled retrain; ``train_and_register`` adds the registry (and, on request, promotion).
"""

from __future__ import annotations

import hashlib
import importlib
import io
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
import pandas as pd
from sklearn import metrics as skm
from sklearn.model_selection import train_test_split

from skylift import aws
from skylift.bundle import HoldoutInfo, ModelBundle, TrainingDataRef
from skylift.config import SkyliftConfig, use_source_dir
from skylift.errors import SkyliftError
from skylift.exports.build import attach_exports
from skylift.profile import BaselineProfile
from skylift.registry import ModelRegistry
from skylift.schema import DeclarationError, estimator_columns, infer_schema

__all__ = [
    "TrainingError",
    "TrainingResult",
    "evaluate",
    "load_entry_point",
    "positive_class",
    "read_training_data",
    "split_holdout",
    "train_and_register",
    "train_candidate",
]


logger = logging.getLogger(__name__)


class TrainingError(SkyliftError):
    """Training cannot run: bad entry point, unreadable data, missing target, failed fit."""


@dataclass
class TrainingResult:
    bundle: ModelBundle
    holdout: pd.DataFrame
    timings: dict[str, float] = field(default_factory=dict)
    promoted: bool = False
    # What a person should check: ambiguous column types, metrics that could not be computed.
    warnings: list[str] = field(default_factory=list)


# ---- the user's code ---------------------------------------------------------------------------


def load_entry_point(config: SkyliftConfig) -> Callable[[pd.DataFrame], Any]:
    """Import ``package.module:function`` with the config's source_dir on sys.path."""
    source = str(use_source_dir(config))
    module_name, _, function_name = config.model.entry_point.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise TrainingError(
            f"[model].entry_point {config.model.entry_point!r}: cannot import {module_name!r} "
            f"from {source} ({exc})"
        ) from exc
    function = getattr(module, function_name, None)
    if not callable(function):
        raise TrainingError(
            f"[model].entry_point {config.model.entry_point!r}: {module_name} has no "
            f"function {function_name!r}"
        )
    return function


# ---- data --------------------------------------------------------------------------------------


def read_training_data(
    source: str | Path, *, s3_client: Any | None = None, endpoint_url: str | None = None
) -> tuple[pd.DataFrame, TrainingDataRef]:
    """Read a CSV or Parquet file (local path or s3:// URI) and describe it for the manifest."""
    text = str(source)
    if text.startswith("s3://"):
        parsed = urlparse(text)
        s3 = s3_client or aws.client("s3", endpoint_url=endpoint_url)
        try:
            data = s3.get_object(Bucket=parsed.netloc, Key=parsed.path.lstrip("/"))["Body"].read()
        except Exception as exc:
            raise TrainingError(f"{text}: cannot read training data ({exc})") from exc
    else:
        path = Path(text)
        if not path.is_file():
            raise TrainingError(f"{path}: training data file not found")
        data = path.read_bytes()
    frame = parse_table(data, text)
    return frame, TrainingDataRef(
        uri=text, sha256=hashlib.sha256(data).hexdigest(), rows=len(frame)
    )


def parse_table(data: bytes, name: str) -> pd.DataFrame:
    lowered = name.lower()
    try:
        if lowered.endswith((".parquet", ".pq")):
            return pd.read_parquet(io.BytesIO(data))
        if lowered.endswith((".csv", ".csv.gz")):
            return pd.read_csv(
                io.BytesIO(data), compression="gzip" if lowered.endswith(".gz") else None
            )
    except Exception as exc:
        raise TrainingError(f"{name}: cannot parse training data ({exc})") from exc
    raise TrainingError(f"{name}: training data must be .csv, .csv.gz or .parquet")


def split_holdout(frame: pd.DataFrame, config: SkyliftConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Deterministic train/holdout split (stratified for classification when possible)."""
    target = frame[config.model.target]
    stratify = None
    if config.model.task == "classification" and target.value_counts().min() >= 2:
        stratify = target
    train, holdout = train_test_split(
        frame,
        test_size=config.model.holdout_fraction,
        random_state=config.model.seed,
        stratify=stratify,
    )
    return train, holdout


# ---- evaluation --------------------------------------------------------------------------------


def positive_class(classes: Sequence[Any] | None, configured: Any = None) -> Any:
    """The class ROC AUC, prediction PSI and reports treat as positive (binary models):
    ``[model].positive_class`` (matched as given or as text, so "1" finds 1), else the last
    class, ``classes_[-1]``. None for a model without classes or with more than two."""
    if classes is None or len(classes) != 2:
        return None
    if configured is None:
        return classes[-1]
    for label in classes:
        if label == configured or str(label) == str(configured):
            return label
    raise TrainingError(
        f"[model].positive_class {configured!r} is not a class of the model "
        f"(classes: {', '.join(map(repr, classes))})"
    )


def evaluate(
    model: Any,
    features: pd.DataFrame,
    target: pd.Series,
    task: str,
    *,
    positive: Any = None,
    notes: list[str] | None = None,
) -> dict[str, float]:
    """Holdout metrics: accuracy, ROC AUC, F1, log loss (classification); RMSE, MAE, R2.

    ROC AUC of a binary model scores P(``positive``) (default: the last class). A metric
    that cannot be computed is left out, and ``notes`` (when given) says why.
    """
    notes = notes if notes is not None else []
    if task == "classification":
        predicted = model.predict(features)
        out = {
            "accuracy": float(skm.accuracy_score(target, predicted)),
            "f1_macro": float(skm.f1_score(target, predicted, average="macro")),
        }
        if not hasattr(model, "predict_proba"):
            notes.append(
                f"roc_auc and log_loss not computed: {type(model).__name__} has no predict_proba"
            )
            return out
        probabilities = model.predict_proba(features)
        classes = list(model.classes_)
        present = pd.unique(np.asarray(target, dtype=object))
        if len(present) < 2:
            notes.append(f"roc_auc not computed: the holdout holds one class only ({present[0]!r})")
        elif len(classes) == 2:
            positive = positive_class(classes, positive)
            column = probabilities[:, classes.index(positive)]
            truth = np.asarray([str(v) == str(positive) for v in target])
            out["roc_auc"] = float(skm.roc_auc_score(truth, column))
        else:
            try:
                out["roc_auc"] = float(
                    skm.roc_auc_score(target, probabilities, multi_class="ovr", labels=classes)
                )
            except ValueError as exc:  # e.g. a class absent from the holdout
                notes.append(f"roc_auc not computed: {exc}")
        try:
            out["log_loss"] = float(skm.log_loss(target, probabilities, labels=classes))
        except ValueError as exc:  # holdout labels the model never saw
            notes.append(f"log_loss not computed: {exc}")
        return out
    predicted = np.asarray(model.predict(features), dtype="float64")
    return {
        "rmse": float(np.sqrt(skm.mean_squared_error(target, predicted))),
        "mae": float(skm.mean_absolute_error(target, predicted)),
        "r2": float(skm.r2_score(target, predicted)),
    }


# ---- the whole path ----------------------------------------------------------------------------


def train_candidate(
    config: SkyliftConfig,
    frame: pd.DataFrame,
    data_ref: TrainingDataRef | None = None,
    train_fn: Callable[[pd.DataFrame], Any] | None = None,
) -> TrainingResult:
    """Split, call the user's train(), evaluate on the holdout, build the bundle."""
    target = config.model.target
    if target not in frame.columns:
        raise TrainingError(
            f"training data has no target column {target!r} ([model].target); "
            f"columns: {', '.join(map(str, frame.columns))}"
        )
    frame = frame[frame[target].notna()]
    if len(frame) < 10:
        raise TrainingError(f"training data has {len(frame)} labelled rows; need at least 10")
    timings: dict[str, float] = {}
    train_fn = train_fn or load_entry_point(config)
    train, holdout = split_holdout(frame, config)

    started = time.perf_counter()
    try:
        model = train_fn(train.copy())
    except Exception as exc:
        raise TrainingError(
            f"{config.model.entry_point} raised {type(exc).__name__}: {exc}"
        ) from exc
    timings["fit_seconds"] = time.perf_counter() - started
    if model is None or not hasattr(model, "predict"):
        raise TrainingError(
            f"{config.model.entry_point} returned {type(model).__name__}, not a fitted estimator"
        )
    _require_fitted(model, config.model.entry_point)

    started = time.perf_counter()
    warnings: list[str] = []
    used = _used_columns(model, train, config, warnings)
    try:
        inference = infer_schema(
            train,
            target=target,
            id_column=config.model.id_column,
            feature_columns=used,
            declarations=config.features,
        )
    except DeclarationError as exc:
        raise TrainingError(f"{config.config_path or 'config'}: {exc}") from exc
    schema = inference.schema
    warnings += inference.warnings
    # The model is evaluated on the holdout as scoring would feed it (schema-validated:
    # blanks as missing, numbers as float64), so its metrics are what callers will get.
    checked = schema.validate_frame(holdout)
    if len(checked.rejected):
        warnings.append(
            f"holdout: {len(checked.rejected)} of {len(holdout)} rows do not fit the schema "
            f"and were not scored (e.g. {checked.rejected.iloc[0]})"
        )
    if checked.valid.empty:
        raise TrainingError("no holdout row fits the inferred schema: nothing to evaluate on")
    classes = getattr(model, "classes_", None)
    positive = positive_class(
        list(classes) if classes is not None else None, config.model.positive_class
    )
    metrics = evaluate(
        model,
        checked.valid,
        holdout.loc[checked.valid.index, target],
        config.model.task,
        positive=positive,
        notes=warnings,
    )
    timings["evaluate_seconds"] = time.perf_counter() - started

    baseline_predictions, kind = _baseline_predictions(
        model, schema.validate_frame(train).valid, config.model.task, positive
    )
    baseline = BaselineProfile.from_frame(
        train, schema, predictions=baseline_predictions, prediction_kind=kind
    )
    bundle = ModelBundle.create(
        model,
        name=config.model.name,
        task=config.model.task,
        target=target,
        id_column=config.model.id_column,
        feature_schema=schema,
        metrics=metrics,
        training_data=data_ref,
        holdout=HoldoutInfo(
            fraction=config.model.holdout_fraction, seed=config.model.seed, rows=len(holdout)
        ),
        baseline=baseline,
        entry_point=config.model.entry_point,
    )
    for text in warnings:
        if text not in inference.warnings:  # the schema's are logged where they are found
            logger.warning("training: %s", text)
    started = time.perf_counter()
    attach_exports(
        bundle,
        holdout,
        onnx_tolerance=config.model.onnx_tolerance,
        sql_tolerance=config.model.sql_tolerance,
    )
    timings["exports_seconds"] = time.perf_counter() - started
    return TrainingResult(bundle=bundle, holdout=holdout, timings=timings, warnings=warnings)


def _used_columns(
    model: Any, train: pd.DataFrame, config: SkyliftConfig, warnings: list[str]
) -> list[str] | None:
    """The columns the fitted estimator reads (required features), in its order; None (every
    column but target and id) when the estimator does not say which."""
    columns = estimator_columns(model)
    others = {str(c) for c in train.columns} - {config.model.target, config.model.id_column}
    if columns is None:
        warnings.append(
            f"{type(model).__name__} does not say which columns it reads (no "
            "feature_names_in_ or ColumnTransformer): every column but target and id is a "
            "required feature"
        )
        return None
    unknown = [c for c in columns if c not in others]
    if unknown:
        warnings.append(
            f"the estimator reads column(s) {', '.join(unknown[:10])} that train() received "
            "under no such name (or as target/id): every column but target and id is a "
            "required feature"
        )
        return None
    return columns


def _require_fitted(model: Any, entry_point: str) -> None:
    """train() must return the estimator fitted; an unfitted one would fail later, obscurely."""
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    try:
        check_is_fitted(model)
    except NotFittedError:
        raise TrainingError(
            f"{entry_point} returned an unfitted {type(model).__name__}: train() must fit the "
            "estimator it returns (e.g. `return model.fit(X, y)`)"
        ) from None
    except TypeError:
        pass  # not a scikit-learn estimator; it has predict() and is used as it is


def _baseline_predictions(
    model: Any, features: pd.DataFrame, task: str, positive: Any = None
) -> tuple[np.ndarray, Any]:
    """What monitoring compares live predictions with: P(positive) for binary, else labels."""
    sample = features.iloc[:20_000]
    if task == "classification" and hasattr(model, "predict_proba"):
        probabilities = model.predict_proba(sample)
        if probabilities.shape[1] == 2 and positive is not None:
            return probabilities[:, list(model.classes_).index(positive)], "numeric"
        return np.asarray(model.predict(sample)), "categorical"
    return np.asarray(model.predict(sample), dtype="float64"), "numeric"


def train_and_register(
    config: SkyliftConfig,
    registry: ModelRegistry,
    source: str | Path,
    *,
    promote: bool = False,
    actor: str = "skylift train",
) -> TrainingResult:
    """Train on ``source``, register the bundle, and promote it to champion when asked."""
    frame, data_ref = read_training_data(source, s3_client=registry._s3)
    result = train_candidate(config, frame, data_ref)
    registry.register(result.bundle, actor=actor)
    if promote:
        registry.promote(
            result.bundle.manifest.version or 0, reason="promoted by " + actor, actor=actor
        )
        result.promoted = True
    return result
