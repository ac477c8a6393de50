"""One request scored by the champion and a canary: which rows go where, and the merge.

Rows are routed by :func:`skylift.rollout.routes_to_candidate` on the record's id, or on the
whole request (its records as canonical JSON) when the schema has no id column: the same id
always gets the same version. The canary never fails a request: if it raises on its rows,
the champion answers them and the failure is counted as a candidate error (the
CloudWatch alarm on it aborts the canary).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from skylift.rollout import routes_to_candidate, routing_key
from skylift.scoring import Scorer, Scores

if TYPE_CHECKING:
    import pandas as pd  # the onnx API path never imports pandas (a canary's split does)

__all__ = ["VersionPart", "canary_mask", "positive_mean", "score_with_canary"]

logger = logging.getLogger(__name__)

CHAMPION = "champion"
CANDIDATE = "candidate"


@dataclass
class VersionPart:
    """What one version did for one request: its rows, time, errors and predictions."""

    role: str
    version: int | None
    rows: list[int] = field(default_factory=list)
    scoring_ms: float = 0.0
    error: str = ""  # the candidate's failure (its rows were answered by the champion)
    failed_rows: int = 0
    prediction_mean: float | None = None


def canary_mask(records: Sequence[Any], ids: Sequence[Any] | None, percent: float) -> list[bool]:
    """True for the rows the canary answers: by id, or by the whole request for records
    without one (an optional id column left empty, or a schema without ids)."""
    whole: bool | None = None  # the request's route, for records without an id

    def request_route() -> bool:
        nonlocal whole
        if whole is None:
            body = json.dumps(list(records), sort_keys=True, separators=(",", ":"), default=str)
            whole = routes_to_candidate(body.encode(), percent)
        return whole

    if not ids:
        return [request_route()] * len(records)
    return [
        request_route() if i is None else routes_to_candidate(routing_key(i), percent) for i in ids
    ]


def positive_mean(scores: Scores) -> float | None:
    """The prediction distribution's summary: mean P(last class) (classification) or the mean
    prediction (regression); None for no rows."""
    if len(scores) == 0:
        return None
    if scores.probabilities is not None:
        return float(np.mean(scores.probabilities[:, -1]))
    try:
        return float(np.mean(scores.predictions.astype("float64")))
    except (TypeError, ValueError):
        return None


def score_with_canary(
    champion: Scorer,
    canary: Scorer,
    frame: pd.DataFrame,
    records: Sequence[Any],
    ids: list[Any] | None,
    mask: list[bool],
    limit_threads: Callable[[], AbstractContextManager[Any]],
) -> tuple[list[dict[str, Any]], list[VersionPart]]:
    """Predictions in request order, each with the ``model_version`` that answered it, and
    one part per version that scored rows."""
    on_canary = [row for row, routed in enumerate(mask) if routed]
    on_champion = [row for row, routed in enumerate(mask) if not routed]
    candidate = VersionPart(CANDIDATE, canary.version)
    predictions: list[dict[str, Any] | None] = [None] * len(mask)
    if on_canary:
        candidate.rows = on_canary
        started = time.perf_counter()
        try:
            features = _candidate_features(champion, canary, frame, records, on_canary)
            with limit_threads():
                scores = canary.score(features)
            _place(predictions, on_canary, scores, ids, canary.version)
            candidate.prediction_mean = positive_mean(scores)
        except Exception as exc:  # the canary never fails a request: the champion answers
            logger.warning("canary version %s failed, champion answers: %s", canary.version, exc)
            candidate.error = f"{type(exc).__name__}: {exc}"[:500]
            candidate.failed_rows = len(on_canary)
            on_champion = sorted(on_champion + on_canary)
        candidate.scoring_ms = (time.perf_counter() - started) * 1000.0
    parts = [candidate] if on_canary else []
    if on_champion:
        started = time.perf_counter()
        with limit_threads():
            scores = champion.score(frame.iloc[on_champion])
        _place(predictions, on_champion, scores, ids, champion.version)
        part = VersionPart(CHAMPION, champion.version, on_champion)
        part.prediction_mean = positive_mean(scores)
        part.scoring_ms = (time.perf_counter() - started) * 1000.0
        parts.insert(0, part)
    return [p for p in predictions if p is not None], parts


def _candidate_features(
    champion: Scorer, canary: Scorer, frame: pd.DataFrame, records: Sequence[Any], rows: list[int]
) -> pd.DataFrame:
    """The canary's rows as the canary's schema wants them: the champion's validated frame
    when both schemas are the same, else the records validated by the canary's schema (a
    record it refuses is a candidate error, answered by the champion)."""
    if canary.schema.names == champion.schema.names:
        return frame.iloc[rows]
    validation = canary.schema.validate_records([records[row] for row in rows])
    if validation.errors or validation.frame is None:
        first = validation.errors[0] if validation.errors else None
        raise ValueError(
            f"{len(validation.errors)} record(s) do not fit the canary's schema"
            + (f" (first: {first.field}: {first.problem})" if first else "")
        )
    return validation.frame


def _place(
    predictions: list[dict[str, Any] | None],
    rows: list[int],
    scores: Scores,
    ids: list[Any] | None,
    version: int | None,
) -> None:
    for row, item in zip(
        rows, scores.to_records([ids[r] for r in rows] if ids else None), strict=True
    ):
        item["model_version"] = version
        predictions[row] = item
