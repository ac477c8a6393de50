"""Attach the exports to a freshly trained bundle: ONNX and SQL, each verified on the holdout."""

from __future__ import annotations

import logging
import time

import pandas as pd

from skylift.bundle import ModelBundle
from skylift.exports.onnx import DEFAULT_TOLERANCE, convert_onnx
from skylift.exports.records import Exports
from skylift.exports.sql import DEFAULT_SQL_TOLERANCE, verify_sql

__all__ = ["attach_exports"]

logger = logging.getLogger(__name__)


def attach_exports(
    bundle: ModelBundle,
    holdout: pd.DataFrame,
    *,
    onnx_tolerance: float = DEFAULT_TOLERANCE,
    sql_tolerance: float = DEFAULT_SQL_TOLERANCE,
) -> Exports:
    """Convert and verify; ``bundle.onnx`` is set only for a verified ONNX export."""
    manifest = bundle.manifest
    started = time.perf_counter()
    onnx = convert_onnx(
        bundle.model,
        manifest.feature_schema,
        holdout,
        task=manifest.task,
        tolerance=onnx_tolerance,
    )
    sql = verify_sql(
        bundle.model,
        manifest.feature_schema,
        holdout,
        task=manifest.task,
        classes=manifest.classes,
        tolerance=sql_tolerance,
    )
    exports = Exports(onnx=onnx.check, sql=sql)
    bundle.onnx = onnx.data if onnx.check.verified else None
    bundle.manifest = manifest.model_copy(update={"exports": exports})
    logger.info(
        "exports of %s in %.1f s: onnx %s; sql %s",
        manifest.name,
        time.perf_counter() - started,
        onnx.check.summary(),
        sql.summary(),
    )
    return exports
