"""FeatureSchema: what a model expects, inferred from its training data and stored in its manifest.

Two validators share one set of rules:

* :meth:`FeatureSchema.validate_records` for JSON records (the online API): a pydantic model
  built from the schema rejects wrong types, missing required features, NaN/inf and unknown
  fields, per record and field.
* :meth:`FeatureSchema.validate_frame` for tabular chunks (batch): vectorised pandas checks
  that reject a row with a reason instead of failing the chunk.

Values outside the training range and categories never seen in training are allowed but
flagged: the model can still score them, and monitoring wants to know. Allowed values the user
declared (``[features.<name>]`` categories, min, max) are enforced: anything else is rejected.

Blank strings ("", " ") are missing values everywhere: in training data (a numeric column with
blank cells is numeric and nullable), in batch files and in API records (``" "`` for a nullable
numeric feature scores as null, as the blank cells did in training).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Annotated, Any, Literal

import numpy as np
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    create_model,
)
from pydantic_core import PydanticCustomError

from skylift.config_sections import FeatureDeclaration
from skylift.errors import SkyliftError
from skylift.schema_columnar import ColumnarValidator, column_values

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "CategoricalFeature",
    "FeatureSchema",
    "FieldProblem",
    "FrameValidation",
    "NumericFeature",
    "RecordValidation",
    "SchemaInference",
    "SchemaMismatchError",
    "infer_schema",
]

logger = logging.getLogger(__name__)

MAX_CATEGORIES = 200  # more distinct values than this and a string column is free text
MOSTLY_NUMERIC = 0.9  # a text column this share numbers (but not all) is worth a warning
FEW_CODES = 5  # an integer column with 3..this many distinct values may be category codes


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
    # min/max declared by the user: outside is rejected (an inferred range is only flagged).
    enforced: bool = False


class CategoricalFeature(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["categorical"] = "categorical"
    name: str
    nullable: bool = False
    categories: list[str] = Field(default_factory=list)
    # categories declared by the user: others are rejected (inferred ones are only flagged).
    enforced: bool = False


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
    """Validated JSON records: on success ``columns`` holds the features in schema order, one
    numpy array each (float64 with NaN for a missing number, object for text)."""

    columns: dict[str, np.ndarray] | None
    ids: list[Any]
    errors: list[FieldProblem] = field(default_factory=list)
    flags: list[FieldProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    @cached_property
    def frame(self) -> pd.DataFrame | None:
        """The columns as a DataFrame (imports pandas; the onnx runtime scores the columns)."""
        import pandas as pd

        return None if self.columns is None else pd.DataFrame(self.columns)


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
    # Training columns the model does not read: accepted from callers and ignored.
    optional: list[str] = Field(default_factory=list)

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
        return infer_schema(frame, target, id_column, feature_columns).schema

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
        """Validate JSON records; on success ``columns`` (and ``frame``) hold the features.

        Column-wise first (:mod:`skylift.schema_columnar`); any doubtful cell sends the
        request to the pydantic model, which words every problem."""
        checked = self._columnar.validate(records)
        return checked if checked is not None else self.validate_records_per_record(records)

    def validate_records_per_record(self, records: Sequence[Mapping[str, Any]]) -> RecordValidation:
        """The pydantic path: one model per record, every problem found and worded."""
        try:
            parsed = self._records_adapter.validate_python(list(records))
        except ValidationError as exc:
            return RecordValidation(columns=None, ids=[], errors=_problems(exc))
        rows = [item.model_dump(by_alias=True) for item in parsed]
        ids = [row.pop(self.id_column, None) for row in rows] if self.id_column else []
        columns = self._columns_from_rows(rows)
        return RecordValidation(columns=columns, ids=ids, flags=self.flag_records(columns))

    @cached_property
    def _columnar(self) -> ColumnarValidator:
        return ColumnarValidator(self)

    def _columns_from_rows(self, rows: list[dict[str, Any]]) -> dict[str, np.ndarray]:
        data: dict[str, np.ndarray] = {}
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
        return data

    def flag_records(self, frame: pd.DataFrame | Mapping[str, np.ndarray]) -> list[FieldProblem]:
        """Allowed-but-unusual values: out of the training range, or an unseen category.
        ``frame`` may be a frame or its columns by name (the columnar validator's)."""
        flags: list[FieldProblem] = []
        for feature in self.features:
            if feature.enforced:
                continue  # declared bounds were enforced by validation, not flagged
            column = frame[feature.name]
            if isinstance(feature, NumericFeature):
                # numpy, not pandas comparisons: this runs on every online request.
                values = column_values(column, "float64")
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
                for position, value in enumerate(column_values(column, "object")):
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
        import pandas as pd  # lazily: the onnx API path never imports it

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
                    if feature.enforced:
                        for bound, word, below in (
                            (feature.min, "below the declared minimum", True),
                            (feature.max, "above the declared maximum", False),
                        ):
                            if bound is not None:
                                out = numbers < bound if below else numbers > bound
                                reject(out, f"{feature.name}: {word} {bound:g}")
                    elif feature.min is not None and feature.max is not None:
                        outside = (numbers < feature.min) | (numbers > feature.max)
                        if outside.any():
                            flag_counts[feature.name] = int(outside.sum())
                clean[feature.name] = numbers
            else:
                text = raw.astype(object).where(~blank, np.nan)
                text = text.where(text.isna(), text.astype(str))
                known = self._categories.get(feature.name)
                if feature.enforced:
                    allowed = frozenset(feature.categories)
                    reject(
                        text.notna() & ~text.isin(allowed),
                        f"{feature.name}: not one of the declared categories",
                    )
                elif known:
                    unseen = text.notna() & ~text.isin(known)
                    if unseen.any():
                        flag_counts[feature.name] = int(unseen.sum())
                clean[feature.name] = text
            if not feature.nullable:
                reject(blank, f"{feature.name}: missing value for a required feature")

        bad = reasons != ""
        valid = pd.DataFrame(clean, index=frame.index)[~bad]
        return FrameValidation(valid=valid, rejected=reasons[bad], flag_counts=flag_counts)


# ---- inference ---------------------------------------------------------------------------------


@dataclass
class SchemaInference:
    """An inferred schema, and what a person should check about it (ambiguous columns)."""

    schema: FeatureSchema
    warnings: list[str] = field(default_factory=list)


class DeclarationError(SkyliftError, ValueError):
    """A ``[features.<name>]`` declaration does not fit the training data."""


def _text_as_numbers(column: pd.Series) -> tuple[pd.Series, pd.Series, pd.Series]:
    """(numbers, blank, not_a_number) for a text column: blank strings are missing values."""
    import pandas as pd  # lazily: the onnx API path never imports it

    objects = column.astype(object)
    missing = objects.isna()
    stripped = objects.map(lambda v: v.strip() if isinstance(v, str) else v)
    blank = missing | (stripped == "")
    numbers = pd.to_numeric(stripped.where(~blank, np.nan), errors="coerce").astype("float64")
    return numbers, blank, numbers.isna() & ~blank


def _examples(values: pd.Series, limit: int = 3) -> str:
    return ", ".join(repr(v)[:40] for v in values.drop_duplicates().head(limit))


def _numeric_feature(
    name: str, numbers: pd.Series, nullable: bool, integer: bool | None = None
) -> NumericFeature:
    finite = numbers[np.isfinite(numbers.astype("float64"))]
    if integer is None:
        integer = bool(len(finite)) and bool((finite == np.floor(finite)).all())
    return NumericFeature(
        name=name,
        integer=integer,
        nullable=nullable,
        min=float(finite.min()) if len(finite) else None,
        max=float(finite.max()) if len(finite) else None,
    )


def _categorical_feature(name: str, column: pd.Series, nullable: bool) -> CategoricalFeature:
    values = column.dropna().astype(str).unique()
    return CategoricalFeature(
        name=name,
        nullable=nullable,
        categories=sorted(values.tolist()) if len(values) <= MAX_CATEGORIES else [],
    )


def _infer_feature(name: str, column: pd.Series, warnings: list[str]) -> Feature:
    """One column's feature by its values; ambiguous columns add a warning."""
    import pandas as pd  # lazily: the onnx API path never imports it

    if pd.api.types.is_bool_dtype(column):
        return _categorical_feature(name, column, bool(column.isna().any()))
    if pd.api.types.is_numeric_dtype(column):
        feature = _numeric_feature(
            name, column, bool(column.isna().any()), pd.api.types.is_integer_dtype(column)
        )
        distinct = column.dropna().nunique()
        if feature.integer and 3 <= distinct <= FEW_CODES and len(column) > 10 * FEW_CODES:
            warnings.append(
                f"column {name!r}: integers with only {distinct} distinct values: inferred "
                f"numeric; if they are codes, declare [features.{name}] type = 'categorical'"
            )
        return feature
    numbers, blank, not_number = _text_as_numbers(column)
    present = int((~blank).sum())
    blank_text = int(blank.sum() - column.isna().sum())
    if present and not not_number.any():
        # Numbers stored as text (a CSV column with " " cells): numeric, blanks are nulls.
        warnings.append(
            f"column {name!r}: numbers stored as text"
            + (f" with {blank_text} blank cell(s)" if blank_text else "")
            + ": inferred numeric"
            + (" and nullable (blanks are missing values)" if blank.any() else "")
            + f"; declare [features.{name}] type = 'categorical' if they are codes"
        )
        return _numeric_feature(name, numbers, bool(blank.any()))
    nullable = bool(blank.any())
    text = column.astype(object).where(~blank, np.nan)
    categorical = _categorical_feature(name, text, nullable)
    share = (present - int(not_number.sum())) / present if present else 0.0
    if share >= MOSTLY_NUMERIC:
        warnings.append(
            f"column {name!r}: {share:.0%} of values are numbers but {int(not_number.sum())} "
            f"are not (e.g. {_examples(column[not_number])}): inferred categorical; clean "
            f"them, or declare [features.{name}] type = 'numeric' to treat them as missing"
        )
    if blank_text:
        warnings.append(
            f"column {name!r}: {blank_text} blank cell(s) are treated as missing values"
        )
    if not categorical.categories and present:
        warnings.append(
            f"column {name!r}: more than {MAX_CATEGORIES} distinct values: free text, "
            "categories are not recorded and unseen values are not flagged"
        )
    return categorical


def _declared_feature(
    name: str,
    column: pd.Series,
    declared: FeatureDeclaration,
    inferred: Feature,
    warnings: list[str],
) -> Feature:
    """The declaration wins over inference; what it leaves unset is inferred."""
    import pandas as pd  # lazily: the onnx API path never imports it

    kind = declared.type
    if kind is None:  # what the declared allowed values imply, else what was inferred
        if declared.categories is not None:
            kind = "categorical"
        elif declared.bounded or isinstance(inferred, NumericFeature):
            integer = isinstance(inferred, NumericFeature) and inferred.integer
            kind = "integer" if integer else "numeric"
        else:
            kind = "categorical"
    if kind == "categorical":
        values = column.astype(object)
        blank = values.isna() | values.map(lambda v: isinstance(v, str) and not v.strip())
        nullable = declared.nullable if declared.nullable is not None else bool(blank.any())
        base = _categorical_feature(name, values.where(~blank, np.nan), nullable)
        if declared.categories is None:
            return base
        outside = sorted(set(base.categories) - set(declared.categories))
        if outside:
            warnings.append(
                f"[features.{name}].categories: the training data also holds "
                f"{', '.join(map(repr, outside[:5]))}; callers sending them are rejected"
            )
        return CategoricalFeature(
            name=name, nullable=nullable, categories=list(declared.categories), enforced=True
        )
    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        numbers, blank = column.astype("float64"), column.isna()
        not_number = pd.Series(False, index=column.index)
    else:
        numbers, blank, not_number = _text_as_numbers(column)
    if not_number.any():
        if not_number.all() or (blank | not_number).all():
            raise DeclarationError(
                f"[features.{name}].type = {kind!r}, but no training value is a number "
                f"(e.g. {_examples(column[not_number])})"
            )
        warnings.append(
            f"[features.{name}].type = {kind!r}: {int(not_number.sum())} training value(s) "
            f"are not numbers (e.g. {_examples(column[not_number])}) and count as missing; "
            "callers sending them are rejected"
        )
        blank = blank | not_number
    nullable = declared.nullable if declared.nullable is not None else bool(blank.any())
    number = _numeric_feature(name, numbers, nullable, kind == "integer")
    if kind == "integer" and number.min is not None:
        finite = numbers[np.isfinite(numbers)]
        if not (finite == np.floor(finite)).all():
            raise DeclarationError(
                f"[features.{name}].type = 'integer', but training values have fractions"
            )
    if not declared.bounded:
        return number
    return number.model_copy(update={"min": declared.min, "max": declared.max, "enforced": True})


def estimator_columns(model: Any) -> list[str] | None:
    """The input columns a fitted estimator reads, or None when it does not say.

    A ColumnTransformer (alone or as a Pipeline's first step) reads the columns its
    transformers select (a dropped remainder is not read: scikit-learn does not ask for it at
    predict time); anything else reads its ``feature_names_in_``.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    step = model
    while isinstance(step, Pipeline) and step.steps:
        step = step.steps[0][1]
    names = getattr(model, "feature_names_in_", None)
    if isinstance(step, ColumnTransformer) and hasattr(step, "transformers_"):
        inputs = [str(n) for n in getattr(step, "feature_names_in_", [])]
        used: set[str] = set()
        for _, transformer, columns in step.transformers_:
            if isinstance(transformer, str) and transformer == "drop":
                continue
            used.update(_selected(columns, inputs))
        return [n for n in inputs if n in used]
    return [str(n) for n in names] if names is not None else None


def _selected(columns: Any, inputs: list[str]) -> list[str]:
    """Column names a ColumnTransformer selection stands for (names, indices, mask, slice)."""
    if callable(columns):
        return []  # fitted transformers_ hold resolved selections; callables do not remain
    if isinstance(columns, str):
        return [columns]
    if isinstance(columns, slice):
        return inputs[columns]
    items = list(np.asarray(columns).ravel()) if not isinstance(columns, list) else columns
    if items and all(isinstance(i, bool | np.bool_) for i in items):
        return [n for n, keep in zip(inputs, items, strict=False) if keep]
    if items and all(isinstance(i, int | np.integer) for i in items):
        return [inputs[int(i)] for i in items]
    return [str(i) for i in items]


def infer_schema(
    frame: pd.DataFrame,
    target: str | None = None,
    id_column: str | None = None,
    feature_columns: Iterable[str] | None = None,
    declarations: Mapping[str, FeatureDeclaration] | None = None,
) -> SchemaInference:
    """Infer the schema of ``frame``; ``feature_columns`` (default: every column but target
    and id) become features, the other columns optional. Declarations override inference.

    Raises DeclarationError (naming ``[features.<name>]``) for a declaration that names a
    column not in the data, or that the data contradicts.
    """
    declarations = declarations or {}
    candidates = [str(c) for c in frame.columns if c not in (target, id_column)]
    for name in declarations:
        if name not in candidates:
            why = (
                "is the target"
                if name == target
                else ("is the id column" if name == id_column else "is not in the training data")
            )
            raise DeclarationError(
                f"[features.{name}] names a column that {why} "
                f"(feature columns: {', '.join(candidates[:20])})"
            )
    names = candidates if feature_columns is None else [str(c) for c in feature_columns]
    warnings: list[str] = []
    features: list[Feature] = []
    for name in names:
        column = frame[name]
        column_warnings: list[str] = []
        feature = _infer_feature(name, column, column_warnings)
        if name in declarations:
            feature = _declared_feature(name, column, declarations[name], feature, warnings)
        else:
            warnings += column_warnings
        features.append(feature)
    optional = [c for c in candidates if c not in set(names)]
    for name in optional:
        if name in declarations:
            warnings.append(
                f"[features.{name}]: the model does not read this column: it is optional and "
                "ignored, and the declaration has no effect"
            )
    for text in warnings:
        logger.warning("schema: %s", text)
    schema = FeatureSchema(features=features, id_column=id_column, target=target, optional=optional)
    return SchemaInference(schema=schema, warnings=warnings)


def _blank_as_none(value: Any) -> Any:
    """A blank string for a nullable numeric feature is a missing value, as in training."""
    return None if isinstance(value, str) and not value.strip() else value


def _record_model(schema: FeatureSchema) -> type[BaseModel]:
    fields: dict[str, Any] = {}
    # Feature names need not be Python identifiers: fields get safe names and keep the real
    # name as their alias.
    for index, feature in enumerate(schema.features):
        kind: Any = _Text
        if isinstance(feature, NumericFeature):
            kind = _WholeNumber if feature.integer else _Number
            if feature.enforced:
                kind = Annotated[kind, Field(ge=feature.min, le=feature.max)]
        elif feature.enforced:
            kind = Literal[tuple(feature.categories)]
        if feature.nullable:
            if isinstance(feature, NumericFeature):
                kind = Annotated[kind | None, BeforeValidator(_blank_as_none)]
            else:
                kind = kind | None
            fields[f"f{index}"] = (kind, Field(default=None, alias=feature.name))
        else:
            fields[f"f{index}"] = (kind, Field(alias=feature.name))
    for index, name in enumerate(schema.optional):
        # Known from training, not read by the model: accepted and dropped.
        fields[f"o{index}"] = (Any, Field(default=None, alias=name))
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
    "greater_than_equal": "is below the declared minimum",
    "less_than_equal": "is above the declared maximum",
    "literal_error": "is not one of the declared categories",
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
