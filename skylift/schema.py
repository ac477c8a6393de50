"""FeatureSchema: what a model expects, inferred from its training data and stored in its manifest.

Two validators share one set of rules:

* :meth:`FeatureSchema.validate_records` for JSON records (the online API): a pydantic model
  built from the schema rejects wrong types, missing required features, NaN/inf and unknown
  fields, per record and field.
* :meth:`FeatureSchema.validate_frame` for tabular chunks (batch): vectorised pandas checks
  that reject a row with a reason instead of failing the chunk.

Values outside the training range and categories never seen in training are allowed but
flagged: the model can still score them, and monitoring wants to know.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    create_model,
)
from pydantic_core import PydanticCustomError

from skylift.errors import SkyliftError

__all__ = [
    "CategoricalFeature",
    "FeatureSchema",
    "FieldProblem",
    "FrameValidation",
    "NumericFeature",
    "RecordValidation",
    "SchemaMismatchError",
]

MAX_CATEGORIES = 200  # more distinct values than this and a string column is free text


class SchemaMismatchError(SkyliftError, ValueError):
    """A whole input (file or frame) does not fit the schema, e.g. required columns missing."""

    def __init__(self, message: str, missing: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.missing = list(missing)


class NumericFeature(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["numeric"] = "numeric"
    name: str
    integer: bool = False
    nullable: bool = False
    min: float | None = None
    max: float | None = None


class CategoricalFeature(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["categorical"] = "categorical"
    name: str
    nullable: bool = False
    categories: list[str] = Field(default_factory=list)


Feature = Annotated[NumericFeature | CategoricalFeature, Field(discriminator="kind")]


@dataclass(frozen=True)
class FieldProblem:
    """One problem with one field of one record (record is the 0-based index in the request)."""

    record: int
    field: str
    problem: str

    def as_dict(self) -> dict[str, Any]:
        return {"record": self.record, "field": self.field, "problem": self.problem}


@dataclass
class RecordValidation:
    frame: pd.DataFrame | None
    ids: list[Any]
    errors: list[FieldProblem] = field(default_factory=list)
    flags: list[FieldProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass
class FrameValidation:
    """Result of validating a chunk: the rows fit to score, and a reason for every other row."""

    valid: pd.DataFrame
    rejected: pd.Series  # index: the input frame's index; value: the reason
    flag_counts: dict[str, int] = field(default_factory=dict)


def _whole(value: float) -> float:
    # 12.5 for a count the model only saw as whole numbers is a client's bug, not a value.
    if not value.is_integer():
        raise PydanticCustomError("not_whole", "not a whole number")
    return value


_Number = Annotated[float, Field(strict=True, allow_inf_nan=False)]
_WholeNumber = Annotated[_Number, AfterValidator(_whole)]
_Text = Annotated[str, Field(strict=True)]
_Id = Annotated[str | int, Field(union_mode="left_to_right")]


class FeatureSchema(BaseModel):
    """The model's input contract: one entry per feature, in the order the model sees them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    features: list[Feature]
    id_column: str | None = None
    target: str | None = None

    # ---- inference -------------------------------------------------------------------------

    @classmethod
    def infer(
        cls,
        frame: pd.DataFrame,
        target: str | None = None,
        id_column: str | None = None,
        feature_columns: Iterable[str] | None = None,
    ) -> FeatureSchema:
        """Infer the schema from training data (every column but target and id by default)."""
        if feature_columns is None:
            feature_columns = [c for c in frame.columns if c not in (target, id_column)]
        features: list[NumericFeature | CategoricalFeature] = []
        for name in feature_columns:
            column = frame[name]
            nullable = bool(column.isna().any())
            if pd.api.types.is_bool_dtype(column):
                features.append(
                    CategoricalFeature(
                        name=str(name),
                        nullable=nullable,
                        categories=sorted({str(v) for v in column.dropna().unique()}),
                    )
                )
            elif pd.api.types.is_numeric_dtype(column):
                finite = column[np.isfinite(column.astype("float64"))]
                features.append(
                    NumericFeature(
                        name=str(name),
                        integer=pd.api.types.is_integer_dtype(column),
                        nullable=nullable,
                        min=float(finite.min()) if len(finite) else None,
                        max=float(finite.max()) if len(finite) else None,
                    )
                )
            else:
                values = column.dropna().astype(str).unique()
                features.append(
                    CategoricalFeature(
                        name=str(name),
                        nullable=nullable,
                        categories=sorted(values.tolist()) if len(values) <= MAX_CATEGORIES else [],
                    )
                )
        return cls(features=features, id_column=id_column, target=target)

    # ---- lookups ---------------------------------------------------------------------------

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def required(self) -> list[str]:
        return [f.name for f in self.features if not f.nullable]

    def feature(self, name: str) -> NumericFeature | CategoricalFeature:
        for feature in self.features:
            if feature.name == name:
                return feature
        raise KeyError(name)

    @cached_property
    def _categories(self) -> dict[str, frozenset[str]]:
        return {
            f.name: frozenset(f.categories)
            for f in self.features
            if isinstance(f, CategoricalFeature) and f.categories
        }

    # ---- record validation (online API) ----------------------------------------------------

    def record_model(self) -> type[BaseModel]:
        """A pydantic model for one record: types are strict, unknown fields are rejected."""
        return _record_model(self)

    @cached_property
    def _records_adapter(self) -> TypeAdapter[list[Any]]:
        return TypeAdapter(list[self.record_model()])  # type: ignore[misc,arg-type]

    def example_record(self) -> dict[str, Any]:
        """A record this schema accepts (the smallest observed values, a known category)."""
        record: dict[str, Any] = {}
        for feature in self.features:
            if isinstance(feature, NumericFeature):
                value = feature.min if feature.min is not None else 0.0
                record[feature.name] = int(value) if feature.integer else value
            elif feature.categories:
                record[feature.name] = feature.categories[0]
            else:
                record[feature.name] = None if feature.nullable else ""
        if self.id_column:
            record[self.id_column] = "warm-up"
        return record

    def validate_records(self, records: Sequence[Mapping[str, Any]]) -> RecordValidation:
        """Validate JSON records; on success ``frame`` holds the features in schema order."""
        try:
            parsed = self._records_adapter.validate_python(list(records))
        except ValidationError as exc:
            return RecordValidation(frame=None, ids=[], errors=_problems(exc))
        rows = [item.model_dump(by_alias=True) for item in parsed]
        ids = [row.pop(self.id_column, None) for row in rows] if self.id_column else []
        frame = self._frame_from_rows(rows)
        return RecordValidation(frame=frame, ids=ids, flags=self.flag_records(frame))

    def _frame_from_rows(self, rows: list[dict[str, Any]]) -> pd.DataFrame:
        data: dict[str, Any] = {}
        for feature in self.features:
            values = [row.get(feature.name) for row in rows]
            if isinstance(feature, NumericFeature):
                data[feature.name] = np.array(
                    [np.nan if v is None else v for v in values], dtype="float64"
                )
            else:
                data[feature.name] = np.array(
                    [np.nan if v is None else v for v in values], dtype=object
                )
        return pd.DataFrame(data)

    def flag_records(self, frame: pd.DataFrame) -> list[FieldProblem]:
        """Allowed-but-unusual values: out of the training range, or an unseen category."""
        flags: list[FieldProblem] = []
        for feature in self.features:
            column = frame[feature.name]
            if isinstance(feature, NumericFeature):
                # numpy, not pandas comparisons: this runs on every online request.
                values = column.to_numpy(dtype="float64", na_value=np.nan)
                for word, bound, below in (
                    ("below the training minimum", feature.min, True),
                    ("above the training maximum", feature.max, False),
                ):
                    if bound is None:
                        continue
                    mask = values < bound if below else values > bound
                    for index in np.flatnonzero(mask):
                        flags.append(
                            FieldProblem(
                                int(index),
                                feature.name,
                                f"{values[index]:g} is {word} {bound:g}",
                            )
                        )
            elif feature.name in self._categories:
                known = self._categories[feature.name]
                for position, value in enumerate(column.to_numpy(dtype=object)):
                    if isinstance(value, str) and value not in known:
                        flags.append(
                            FieldProblem(position, feature.name, f"unseen category {value!r}")
                        )
        return flags

    # ---- frame validation (batch) ----------------------------------------------------------

    def check_columns(self, columns: Iterable[str]) -> None:
        """Raise SchemaMismatchError when required feature columns are absent."""
        present = set(columns)
        missing = [f.name for f in self.features if f.name not in present]
        if missing:
            raise SchemaMismatchError(
                f"missing feature column(s): {', '.join(missing)}", missing=missing
            )

    def validate_frame(self, frame: pd.DataFrame) -> FrameValidation:
        """Vectorised validation of a chunk whose values may still be strings (CSV).

        Returns the valid rows (features in schema order, numeric as float64, categorical as
        object with NaN for missing) and, for each rejected row, all its reasons joined by '; '.
        Extra columns are ignored; missing feature columns raise SchemaMismatchError.
        """
        self.check_columns(frame.columns)
        reasons = pd.Series("", index=frame.index, dtype=object)
        clean: dict[str, Any] = {}
        flag_counts: dict[str, int] = {}

        def reject(mask: pd.Series | np.ndarray, text: str | pd.Series) -> None:
            mask = pd.Series(np.asarray(mask, dtype=bool), index=frame.index)
            if not mask.any():
                return
            piece = text[mask] if isinstance(text, pd.Series) else text
            current = reasons[mask]
            reasons[mask] = np.where(current == "", piece, current + "; " + piece)

        for feature in self.features:
            raw = frame[feature.name]
            blank = raw.isna()
            if raw.dtype == object or pd.api.types.is_string_dtype(raw):
                # Vectorised: .str.strip() leaves non-strings (JSON numbers) as NaN, so they
                # are put back from the original column.
                objects = raw.astype(object)
                try:
                    stripped = objects.str.strip()
                except AttributeError:  # no strings at all in this column (e.g. all numbers)
                    stripped = objects
                stripped = stripped.where(stripped.notna() | blank, objects)
                blank = blank | (stripped == "")
                raw = stripped.where(~blank, np.nan)
            if isinstance(feature, NumericFeature):
                if pd.api.types.is_bool_dtype(raw):
                    numbers = pd.Series(np.nan, index=frame.index)
                    reject(~blank, f"{feature.name}: expected a number, got a boolean")
                else:
                    numbers = pd.to_numeric(raw, errors="coerce").astype("float64")
                    not_number = numbers.isna() & ~blank
                    if not_number.any():
                        shown = raw.astype(str).str.slice(0, 40)
                        reject(not_number, f"{feature.name}: not a number: '" + shown + "'")
                    not_finite = np.isinf(numbers)
                    reject(not_finite, f"{feature.name}: not a finite number")
                    numbers = numbers.where(~not_finite, np.nan)
                    if feature.integer:
                        fractional = np.isfinite(numbers) & (numbers % 1 != 0)
                        shown = numbers.astype(str)
                        reject(fractional, f"{feature.name}: not a whole number: " + shown)
                    if feature.min is not None and feature.max is not None:
                        outside = (numbers < feature.min) | (numbers > feature.max)
                        if outside.any():
                            flag_counts[feature.name] = int(outside.sum())
                clean[feature.name] = numbers
            else:
                text = raw.astype(object).where(~blank, np.nan)
                text = text.where(text.isna(), text.astype(str))
                known = self._categories.get(feature.name)
                if known:
                    unseen = text.notna() & ~text.isin(known)
                    if unseen.any():
                        flag_counts[feature.name] = int(unseen.sum())
                clean[feature.name] = text
            if not feature.nullable:
                reject(blank, f"{feature.name}: missing value for a required feature")

        bad = reasons != ""
        valid = pd.DataFrame(clean, index=frame.index)[~bad]
        return FrameValidation(valid=valid, rejected=reasons[bad], flag_counts=flag_counts)


def _record_model(schema: FeatureSchema) -> type[BaseModel]:
    fields: dict[str, Any] = {}
    # Feature names need not be Python identifiers: fields get safe names and keep the real
    # name as their alias.
    for index, feature in enumerate(schema.features):
        kind: Any = _Text
        if isinstance(feature, NumericFeature):
            kind = _WholeNumber if feature.integer else _Number
        if feature.nullable:
            fields[f"f{index}"] = (kind | None, Field(default=None, alias=feature.name))
        else:
            fields[f"f{index}"] = (kind, Field(alias=feature.name))
    if schema.id_column and schema.id_column not in schema.names:
        fields["record_id"] = (_Id | None, Field(default=None, alias=schema.id_column))
    return create_model("Record", __config__=ConfigDict(extra="forbid"), **fields)


_PROBLEM_TEXT = {
    "missing": "required feature is missing",
    "extra_forbidden": "unknown field (not a feature of this model)",
    "finite_number": "must be a finite number (NaN and infinity are not allowed)",
    "float_type": "must be a number",
    "string_type": "must be a string",
    "model_type": "record must be a JSON object",
    "dict_type": "record must be a JSON object",
    "int_type": "must be a string or an integer",
    "not_whole": "must be a whole number (an integer feature)",
}


def _problems(exc: ValidationError) -> list[FieldProblem]:
    problems: list[FieldProblem] = []
    seen: set[tuple[int, str]] = set()
    for error in exc.errors(include_url=False):
        loc = list(error.get("loc", ()))
        record = int(loc[0]) if loc and isinstance(loc[0], int) else 0
        # Union errors carry the member type as a trailing loc part; the field is loc[1].
        field_name = str(loc[1]) if len(loc) > 1 else ""
        key = (record, field_name)
        if key in seen:
            continue
        seen.add(key)
        problem = _PROBLEM_TEXT.get(error["type"], error.get("msg", "invalid"))
        value = error.get("input")
        if error["type"] not in ("missing", "model_type", "dict_type") and _is_scalar(value):
            problem = f"{problem}, got {_show(value)}"
        problems.append(FieldProblem(record, field_name, problem))
    return problems


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _show(value: Any) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    text = (
        repr(value)
        if isinstance(value, str)
        else str(value).lower()
        if isinstance(value, bool)
        else str(value)
    )
    return text if len(text) <= 60 else text[:57] + "..."
