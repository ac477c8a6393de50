"""Translate a fitted pipeline to SQL (orbital, on sqlglot) and verify the query in DuckDB.

The query scores a table whose columns are the model's features and returns, per input row,
the id column and one ``output_probability.<class>`` column per class (``variable`` for a
regressor). The translation is dialect-independent; a dialect only changes how it is written,
so the DuckDB run on the holdout (NULLs where the data has missing values, as a database
holds them) verifies what every dialect receives.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd

from skylift.exports.compare import compare
from skylift.exports.records import ExportCheck
from skylift.schema import FeatureSchema, NumericFeature

__all__ = [
    "DEFAULT_SQL_TOLERANCE",
    "DIALECTS",
    "MAX_TREE_NODES",
    "SqlExportError",
    "probability_column",
    "to_sql",
    "tree_nodes",
    "verify_sql",
]

# Linear pipelines translate exactly: anything further off than this is reported, not shipped.
DEFAULT_SQL_TOLERANCE = 1e-9
DIALECTS = ("duckdb", "postgres", "snowflake", "bigquery", "sqlite", "mysql", "tsql", "trino")
# orbital's translation time grows steeply with tree size (33k nodes: minutes, measured); past
# this the export is reported as not attempted rather than stalling a registration.
MAX_TREE_NODES = 5_000
_ROW = "__skylift_row"
_TABLE = "holdout"


class SqlExportError(RuntimeError):
    """The pipeline does not translate to SQL (orbital's coverage is partial)."""


def probability_column(label: Any) -> str:
    return f"output_probability.{label}"


def to_sql(
    model: Any,
    schema: FeatureSchema,
    *,
    table: str,
    dialect: str = "duckdb",
    keep: list[str] | None = None,
) -> str:
    """A SELECT scoring ``table``; ``keep`` columns (e.g. the id) are passed through."""
    try:
        import orbital
        import orbital.types as column_types
    except ImportError as exc:
        raise SqlExportError("orbital is not installed (pip install 'skylift[exports]')") from exc
    nodes = tree_nodes(model)
    if nodes > MAX_TREE_NODES:
        raise SqlExportError(
            f"{nodes} tree nodes: over the {MAX_TREE_NODES} skylift translates to SQL "
            "(orbital takes minutes on ensembles this size)"
        )
    features = {
        f.name: column_types.DoubleColumnType()
        if isinstance(f, NumericFeature)
        else column_types.StringColumnType()
        for f in schema.features
    }
    # Columns orbital knows of but the pipeline does not use are passed through (the id).
    for name in keep or []:
        features.setdefault(
            name,
            column_types.DoubleColumnType() if name == _ROW else column_types.StringColumnType(),
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            parsed = orbital.parse_pipeline(model, features=features)
            return str(
                orbital.export_sql(
                    table,
                    parsed,
                    dialect=dialect,
                    optimize=False,  # sqlglot's optimizer takes minutes on tree ensembles
                )
            )
    except Exception as exc:
        lines = str(exc).strip().splitlines()
        raise SqlExportError(f"{type(exc).__name__}: {lines[0][:300] if lines else ''}") from exc


def tree_nodes(model: Any) -> int:
    """Decision-tree nodes anywhere in ``model`` (pipelines, column transformers, ensembles)."""
    tree = getattr(model, "tree_", None)
    if tree is not None:
        return int(tree.node_count)
    children: list[Any] = []
    for attribute in ("steps", "transformers_"):
        children += [item[1] for item in getattr(model, attribute, None) or []]
    estimators = getattr(model, "estimators_", None)
    if estimators is not None:
        children += list(np.asarray(estimators, dtype=object).ravel())
    return sum(tree_nodes(child) for child in children if not isinstance(child, str))


def verify_sql(
    model: Any,
    schema: FeatureSchema,
    holdout: pd.DataFrame,
    *,
    task: str,
    classes: list[Any] | None,
    tolerance: float = DEFAULT_SQL_TOLERANCE,
) -> ExportCheck:
    """Translate, run the query in DuckDB on every holdout row, compare with the pipeline."""
    try:
        query = to_sql(model, schema, table=_TABLE, dialect="duckdb", keep=[_ROW])
    except SqlExportError as exc:
        return ExportCheck(available=False, tolerance=tolerance, reason=f"does not convert: {exc}")
    features = holdout[schema.names].reset_index(drop=True)
    try:
        result = _run_duckdb(query, _database_table(features, schema))
        result = result.sort_values(_ROW).reset_index(drop=True)
        if task == "classification":
            columns = [probability_column(label) for label in classes or []]
            missing = [c for c in columns if c not in result.columns]
            if missing:
                raise SqlExportError(f"query has no column(s) {missing}")
            exported = result[columns].to_numpy(dtype=np.float64)
        else:
            exported = result["variable"].to_numpy(dtype=np.float64)
    except Exception as exc:
        return ExportCheck(
            available=False,
            tolerance=tolerance,
            reason=f"fails to run in DuckDB: {type(exc).__name__}: {str(exc)[:300]}",
        )
    check = compare(model, features, exported, task=task, tolerance=tolerance)
    check.detail["verified_in"] = "duckdb"
    check.detail["rows_with_missing_values"] = str(int(features.isna().any(axis=1).sum()))
    return check


def _database_table(features: pd.DataFrame, schema: FeatureSchema) -> pd.DataFrame:
    """The holdout as a database holds it: nullable numbers and strings, missing = NULL."""
    table = pd.DataFrame({_ROW: np.arange(len(features), dtype=np.float64)})
    for feature in schema.features:
        column = features[feature.name]
        if isinstance(feature, NumericFeature):
            table[feature.name] = column.astype("Float64")
        else:
            table[feature.name] = column.map(lambda v: None if pd.isna(v) else str(v)).astype(
                "string"
            )
    return table


def _run_duckdb(query: str, table: pd.DataFrame) -> pd.DataFrame:
    import duckdb

    connection = duckdb.connect()
    try:
        connection.register(_TABLE, table)
        return connection.execute(query).df()
    finally:
        connection.close()
