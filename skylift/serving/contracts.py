"""The scoring API's wire contract: the request envelopes it accepts (skylift's ``records``,
MLflow's ``dataframe_records`` / ``dataframe_split``) and the replies it documents."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from skylift.api_errors import ApiError, Detail, ErrorCode

__all__ = [
    "DataframeSplit",
    "ErrorInfo",
    "ErrorReply",
    "PredictReply",
    "PredictRequest",
    "Prediction",
]


class DataframeSplit(BaseModel):
    """MLflow's ``dataframe_split``: column names once, then rows of values."""

    model_config = ConfigDict(extra="forbid")
    columns: list[str]
    data: list[list[Any]]
    index: list[Any] | None = None


class PredictRequest(BaseModel):
    """The body of ``POST /predict``: exactly one of the three input formats.

    Records are checked against the model's feature schema after this envelope is parsed,
    because the schema travels with the model, not with the deployment.
    """

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"records": [{"customer_id": "c-1", "age": 42, "contract": "month-to-month"}]},
                {"dataframe_split": {"columns": ["age", "contract"], "data": [[42, "two-year"]]}},
            ]
        },
    )
    records: list[Any] | None = Field(
        default=None, description="One JSON object per record: feature name -> value."
    )
    dataframe_records: list[Any] | None = Field(
        default=None, description="MLflow scoring format: same as records."
    )
    dataframe_split: DataframeSplit | None = Field(
        default=None, description="MLflow scoring format: columns and rows."
    )

    @model_validator(mode="after")
    def _exactly_one_format(self) -> PredictRequest:
        given = [
            name
            for name in ("records", "dataframe_records", "dataframe_split")
            if getattr(self, name) is not None
        ]
        if len(given) != 1:
            raise ValueError(
                "send exactly one of 'records', 'dataframe_records' or 'dataframe_split'"
                + (f" (got {', '.join(given)})" if given else "")
            )
        return self

    def __repr__(self) -> str:
        # Powertools formats the route arguments into a debug message on every request, even
        # with debug logging off: repr of 1,000 records would cost more than scoring them.
        counts = {
            name: len(value.data) if isinstance(value, DataframeSplit) else len(value)
            for name in ("records", "dataframe_records", "dataframe_split")
            if (value := getattr(self, name)) is not None
        }
        return f"PredictRequest({', '.join(f'{k}=<{n} rows>' for k, n in counts.items())})"

    def to_records(self) -> list[Any]:
        """The records, whichever format they came in (split rows become objects)."""
        if self.records is not None:
            return self.records
        if self.dataframe_records is not None:
            return self.dataframe_records
        split = self.dataframe_split
        assert split is not None  # the validator guarantees one format
        width = len(split.columns)
        if len(set(split.columns)) != width:
            raise ApiError(
                ErrorCode.VALIDATION_ERROR,
                "dataframe_split.columns names a column twice",
                [Detail(None, "dataframe_split.columns", "column names must be unique")],
            )
        bad = [
            Detail(row, "dataframe_split.data", f"row has {len(values)} values, expected {width}")
            for row, values in enumerate(split.data)
            if len(values) != width
        ]
        if bad:
            raise ApiError(
                ErrorCode.VALIDATION_ERROR,
                f"{len(bad)} row(s) of dataframe_split.data do not match its columns",
                bad,
            )
        return [dict(zip(split.columns, values, strict=True)) for values in split.data]


class ErrorInfo(BaseModel):
    code: str
    message: str
    details: list[dict[str, Any]]


class ErrorReply(BaseModel):
    """Every non-2xx reply."""

    error: ErrorInfo


class Prediction(BaseModel):
    id: Any | None = Field(default=None, description="The record's id (schemas with an id).")
    prediction: Any
    probabilities: dict[str, float] | None = Field(
        default=None, description="Class -> probability (classification)."
    )


class PredictReply(BaseModel):
    model: str
    model_version: int
    predictions: list[Prediction]
    warnings: list[dict[str, Any]] = Field(
        description="Allowed but unusual inputs: out of the training range, unseen category."
    )
