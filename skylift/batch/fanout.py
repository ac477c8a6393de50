"""A fan-out over one file: score each planned range on its own, then commit the whole.

Each range runs BatchJob's own scoring loop over its records (so a row is validated, scored
and quarantined exactly as in a single invocation) into staging objects without headers, and
leaves its counts beside them (``range-NNNNN.json``). The commit concatenates the staged
outputs in range order behind the header (S3: UploadPartCopy, see assemble.py), then writes
the manifest last, with per-range counts that sum to the totals. The result is byte for byte
what one invocation over the whole file writes.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict
from datetime import UTC, datetime
from typing import IO, Any

from pydantic import BaseModel, ConfigDict, Field

from skylift.batch.assemble import Assembler
from skylift.batch.errors import PermanentBatchError
from skylift.batch.job import BatchJob
from skylift.batch.manifest import BatchManifest, OutputKeys, RangeCounts
from skylift.batch.plan import ByteRange, range_reader
from skylift.batch.readers import detect_format
from skylift.batch.sinks import Sink, Writer
from skylift.schema import SchemaMismatchError
from skylift.scoring import Scorer
from skylift.topology import FANOUT_STAGING_PREFIX

__all__ = [
    "STAGING_PREFIX",
    "RangeFailedError",
    "RangeOutcome",
    "Staging",
    "commit_ranges",
    "execution_name",
    "score_range",
]

STAGING_PREFIX = FANOUT_STAGING_PREFIX  # deleted by the commit once assembled


class RangeFailedError(PermanentBatchError):
    """A range cannot be scored (its error is permanent): the execution fails, naming it."""


class RangeOutcome(BaseModel):
    """What one range did: its counts, its outputs' sizes and the headers it split off."""

    model_config = ConfigDict(extra="forbid")
    index: int
    rows_read: int = 0
    rows_scored: int = 0
    rows_quarantined: int = 0
    blank_lines_skipped: int = 0
    chunks: int = 0
    flagged: dict[str, int] = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list)
    timings: dict[str, float] = Field(default_factory=dict)
    predictions_header: str = ""
    predictions_bytes: int = 0
    quarantine_header: str = ""
    quarantine_bytes: int = 0


class Staging:
    """The staging keys of one run (one object version scored by one model version)."""

    def __init__(self, run: str, prefix: str = STAGING_PREFIX) -> None:
        self.root = f"{prefix}{run}/"

    def ranges(self) -> str:
        return f"{self.root}ranges.json"

    def predictions(self, index: int) -> str:
        return f"{self.root}range-{index:05d}.predictions"

    def quarantine(self, index: int) -> str:
        return f"{self.root}range-{index:05d}.quarantine"

    def outcome(self, index: int) -> str:
        return f"{self.root}range-{index:05d}.json"

    def failure(self, index: int) -> str:
        return f"{self.root}range-{index:05d}.failed.json"

    def all_keys(self, count: int) -> list[str]:
        return [self.ranges()] + [
            key
            for i in range(count)
            for key in (self.predictions(i), self.quarantine(i), self.outcome(i))
        ]


def execution_name(bucket: str, key: str, version: str | None, model_version: int | None) -> str:
    """A Step Functions execution name (<= 80 of [A-Za-z0-9-_]) derived from the object
    version and the model version: a duplicate event cannot start a second execution."""
    digest = hashlib.sha256(f"{bucket}/{key}@{version}#{model_version}".encode()).hexdigest()
    readable = re.sub(r"[^A-Za-z0-9_-]+", "-", key.rsplit("/", 1)[-1])[:40].strip("-")
    return f"{readable or 'object'}-v{model_version}-{digest[:24]}"


def score_range(
    job: BatchJob,
    scorer: Scorer,
    stream: IO[bytes],
    key: str,
    byte_range: ByteRange,
    sink: Sink,
    staging: Staging,
) -> RangeOutcome:
    """Score one range into the staging objects; RangeFailedError names it on a permanent
    error (anything else is transient and may be retried)."""
    fmt, gzipped = detect_format(key)
    out_fmt = "jsonl" if fmt == "jsonl" else "csv"
    headless = _Headless(sink, split=out_fmt == "csv")
    keys = OutputKeys(
        staging.predictions(byte_range.index), staging.quarantine(byte_range.index), ""
    )
    try:
        tally, timings, outputs = job._run(
            stream, fmt, gzipped, headless, scorer, keys, None, reader=range_reader(byte_range)
        )
    except (PermanentBatchError, SchemaMismatchError) as exc:
        raise RangeFailedError(
            f"range {byte_range.index} (bytes {byte_range.start}-{byte_range.end}, from line "
            f"{byte_range.first_line}) of {key}: {exc}"
        ) from exc
    predictions = headless.writers[keys.predictions]
    quarantine = headless.writers[keys.quarantine]
    return RangeOutcome(
        index=byte_range.index,
        timings=asdict(timings),
        predictions_header=predictions.header.decode(),
        predictions_bytes=predictions.size,
        quarantine_header=quarantine.header.decode() if outputs.quarantined_any else "",
        quarantine_bytes=quarantine.size if outputs.quarantined_any else 0,
        **asdict(tally),
    )


def commit_ranges(
    outcomes: list[RangeOutcome],
    assembler: Assembler,
    keys: OutputKeys,
    staging: Staging,
    base: dict[str, Any],
) -> BatchManifest:
    """Assemble the outputs in range order and return the manifest (the caller writes it
    last: it is the commit marker)."""
    outcomes = sorted(outcomes, key=lambda o: o.index)
    fmt, _ = detect_format(str(base["input_key"]))
    content = "application/x-ndjson" if fmt == "jsonl" else "text/csv"
    scored = [o for o in outcomes if o.rows_scored] or outcomes[:1]
    assembler.concat(
        keys.predictions,
        content,
        scored[0].predictions_header.encode() if scored else b"",
        [(staging.predictions(o.index), o.predictions_bytes) for o in outcomes],
    )
    quarantined = [o for o in outcomes if o.quarantine_bytes or o.quarantine_header]
    if quarantined:
        assembler.concat(
            keys.quarantine,
            content,
            quarantined[0].quarantine_header.encode(),
            [(staging.quarantine(o.index), o.quarantine_bytes) for o in quarantined],
        )
    flagged: dict[str, int] = {}
    timings: dict[str, float] = {}
    for outcome in outcomes:
        for feature, count in outcome.flagged.items():
            flagged[feature] = flagged.get(feature, 0) + count
        for stage, seconds in outcome.timings.items():
            timings[stage] = timings.get(stage, 0.0) + seconds
    return BatchManifest(
        status="succeeded",
        quarantine_key=keys.quarantine if quarantined else None,
        finished_at=datetime.now(UTC),
        rows_read=sum(o.rows_read for o in outcomes),
        rows_scored=sum(o.rows_scored for o in outcomes),
        rows_quarantined=sum(o.rows_quarantined for o in outcomes),
        blank_lines_skipped=sum(o.blank_lines_skipped for o in outcomes),
        chunks=sum(o.chunks for o in outcomes),
        flagged=flagged,
        notes=list(dict.fromkeys(n for o in outcomes for n in o.notes)),
        timings=timings,
        ranges=[
            RangeCounts(
                index=o.index,
                rows_read=o.rows_read,
                rows_scored=o.rows_scored,
                rows_quarantined=o.rows_quarantined,
            )
            for o in outcomes
        ],
        **base,
    )


class _HeaderSplitter:
    """A writer that keeps the first line it is given (a CSV header) apart from the body: the
    commit writes one header in front of all ranges' bodies."""

    def __init__(self, inner: Writer, split: bool) -> None:
        self._inner = inner
        self._split = split
        self.header = b""
        self.size = 0

    def write(self, data: bytes) -> None:
        if self._split:
            self._split = False
            cut = data.find(b"\n") + 1
            self.header, data = data[:cut], data[cut:]
        self.size += len(data)
        self._inner.write(data)

    def commit(self) -> None:
        self._inner.commit()

    def abort(self) -> None:
        self._inner.abort()


class _Headless:
    """A sink whose writers split the header off (see _HeaderSplitter)."""

    def __init__(self, sink: Sink, *, split: bool) -> None:
        self._sink = sink
        self._split = split
        self.writers: dict[str, _HeaderSplitter] = {}

    def open(self, key: str, content_type: str) -> Writer:
        writer = _HeaderSplitter(self._sink.open(key, content_type), self._split)
        self.writers[key] = writer
        return writer

    def read_manifest(self, key: str) -> tuple[BatchManifest | None, str | None]:
        return self._sink.read_manifest(key)

    def write_manifest(self, key: str, manifest: BatchManifest, etag: str | None) -> bool:
        return self._sink.write_manifest(key, manifest, etag)
