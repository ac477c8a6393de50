"""The batch manifest (what happened to one input object, written last as the commit marker)
and where a job's outputs go for an input key."""

from __future__ import annotations

from datetime import datetime
from typing import Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field

from skylift.batch.source import ObjectVersion
from skylift.config import SkyliftConfig

__all__ = ["MANIFEST_SUFFIX", "BatchManifest", "OutputKeys", "RangeCounts", "output_keys"]

MANIFEST_SUFFIX = ".manifest.json"


class RangeCounts(BaseModel):
    """One fan-out range's counts (they sum to the manifest's totals)."""

    model_config = ConfigDict(extra="forbid")
    index: int
    rows_read: int
    rows_scored: int
    rows_quarantined: int


class BatchManifest(BaseModel):
    """What happened to one input object; written last, as the commit marker."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())
    status: Literal["succeeded", "failed"]
    reason: str | None = None
    input_bucket: str
    input_key: str
    input_etag: str | None = None  # of the bytes scored (from S3, checked against the event's)
    input_version_id: str | None = None  # None on an unversioned bucket or a local file
    input_size: int | None = None
    predictions_key: str
    quarantine_key: str | None = None
    model: str
    model_version: int | None = None
    rows_read: int = 0
    rows_scored: int = 0
    rows_quarantined: int = 0
    blank_lines_skipped: int = 0
    chunks: int = 0
    flagged: dict[str, int] = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list)
    started_at: datetime
    finished_at: datetime
    timings: dict[str, float] = Field(default_factory=dict)
    ranges: list[RangeCounts] = Field(default_factory=list)  # a fan-out's ranges, in order
    failed_range: int | None = None  # the range that failed a fan-out
    duplicate: bool = Field(default=False, exclude=True)  # set on the skip path, not stored

    def describes(self, version: ObjectVersion) -> bool:
        """Whether this manifest is about exactly that version of its input."""
        return (
            self.input_etag is not None
            and self.input_etag.strip('"') == version.etag.strip('"')
            and self.input_version_id == version.version_id
        )


class OutputKeys(NamedTuple):
    predictions: str
    quarantine: str
    manifest: str


def output_keys(config: SkyliftConfig, key: str) -> OutputKeys:
    """(predictions, quarantine, manifest) keys for an input key under incoming/."""
    storage = config.storage
    relative = (
        key[len(storage.incoming_prefix) :] if key.startswith(storage.incoming_prefix) else key
    )
    if relative.lower().endswith(".parquet"):
        relative = relative[: -len(".parquet")] + ".csv"  # Parquet in, CSV out
    predictions = f"{storage.predictions_prefix}{relative}"
    return OutputKeys(
        predictions, f"{storage.quarantine_prefix}{relative}", predictions + MANIFEST_SUFFIX
    )
