"""Column-wise record validation: the online API's fast path.

A request's records are turned into one list per feature, each checked at once (the Python
types present, then numpy for finiteness, declared ranges and whole numbers), and the accepted
columns are scored as they are (the onnx runtime) or as a DataFrame built from them. No pandas. It costs a fraction of a pydantic model per record.

It only ever *accepts*: a column with any cell it is not sure of (a wrong type, a missing
required feature, NaN/inf, outside a declared range or category, a fraction for an integer
feature, an unknown field, a record that is not an object) hands the whole request to the
pydantic validator (:meth:`FeatureSchema.validate_records`'s exact path), which finds every
problem and words it. So the errors and their messages are the pydantic path's by
construction, and the accepted columns are the same (tests/unit/test_schema_columnar.py
compares both paths on every case).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from skylift.schema import FeatureSchema, RecordValidation

__all__ = ["ColumnarValidator"]

_MISSING = object()  # a key the record does not have
_NUMBER_TYPES = frozenset({int, float})  # exact types: bool is not a number here


class ColumnarValidator:
    """Validates a list of records column by column, or says it cannot (returns None)."""

    def __init__(self, schema: FeatureSchema) -> None:
        from skylift.schema import NumericFeature

        self._schema = schema
        self._id = schema.id_column
        self._numeric = [isinstance(f, NumericFeature) for f in schema.features]
        allowed = set(schema.names) | set(schema.optional)
        if schema.id_column:
            allowed.add(schema.id_column)
        self._allowed = frozenset(allowed)
        self._required = frozenset(schema.required)
        # An id column that is also a feature is popped from the row by the pydantic path;
        # that corner is left to it.
        self.usable = not (schema.id_column and schema.id_column in schema.names)

    def validate(self, records: Sequence[Any]) -> RecordValidation | None:
        """The validation of ``records`` when every cell is certainly valid, else None."""
        from skylift.schema import RecordValidation

        if not self.usable or not records:
            return None
        allowed, required = self._allowed, self._required
        for record in records:
            if type(record) is not dict:
                return None
            keys = record.keys()
            if not keys <= allowed or not required <= keys:
                return None
        data: dict[str, np.ndarray] = {}
        for feature, numeric in zip(self._schema.features, self._numeric, strict=True):
            name = feature.name
            values = [record.get(name, _MISSING) for record in records]
            column = _numeric_column(feature, values) if numeric else _text_column(feature, values)
            if column is None:
                return None
            data[name] = column
        ids: list[Any] = []
        if self._id:
            ids = [record.get(self._id) for record in records]
            for value in ids:
                kind = type(value)
                if kind is not str and kind is not int and value is not None:
                    return None  # floats, bools: the pydantic path converts or refuses them
        flags = self._schema.flag_records(data)
        return RecordValidation(columns=data, ids=ids, flags=flags)


def _numeric_column(feature: Any, values: list[Any]) -> np.ndarray | None:
    kinds = set(map(type, values))
    if not kinds <= _NUMBER_TYPES:
        if not feature.nullable:
            return None
        # Missing, null and blank text are null for a nullable feature; other text is not.
        values = [
            None
            if value is _MISSING or value is None or (type(value) is str and not value.strip())
            else value
            for value in values
        ]
        kinds = set(map(type, values)) - {type(None)}
        if not kinds <= _NUMBER_TYPES:
            return None
        nulls = values.count(None)
        values = [np.nan if value is None else value for value in values]
    else:
        nulls = 0
    try:
        column = np.array(values, dtype="float64")
    except (OverflowError, ValueError, TypeError):
        return None
    finite = np.isfinite(column)
    if int(finite.sum()) != len(column) - nulls:  # NaN or infinity sent as a value
        return None
    present = column[finite] if nulls else column
    if feature.integer and not (present == np.floor(present)).all():
        return None  # whatever the rule for fractions is, the pydantic path applies it
    if feature.enforced and (
        (feature.min is not None and (present < feature.min).any())
        or (feature.max is not None and (present > feature.max).any())
    ):
        return None
    return column


def _text_column(feature: Any, values: list[Any]) -> np.ndarray | None:
    kinds = set(map(type, values))
    if kinds != {str}:
        if not feature.nullable or not kinds <= {str, type(None), object}:
            return None
        values = [np.nan if value is None or value is _MISSING else value for value in values]
    if feature.enforced:
        allowed = set(feature.categories)
        if not all(value in allowed for value in values if type(value) is str):
            return None
    column = np.empty(len(values), dtype=object)
    column[:] = values
    return column


def column_values(column: Any, dtype: str) -> np.ndarray:
    """A frame's column or a plain array as a numpy array of ``dtype`` (float NA as NaN)."""
    if hasattr(column, "to_numpy"):  # a pandas Series (pandas itself is not imported here)
        if dtype == "float64":
            return column.to_numpy(dtype=dtype, na_value=np.nan)
        return column.to_numpy(dtype=dtype)
    return np.asarray(column, dtype=dtype)
