"""BatchJob: score one file, chunk by chunk, with every row accounted for.

For ``incoming/<path>`` it writes ``predictions/<path>`` (id, prediction, class probabilities,
model version), ``quarantine/<path>`` (each rejected row as it came, with its line number and
reason) and, last, ``predictions/<path>.manifest.json``: the commit marker. Invariant:
``rows_read == rows_scored + rows_quarantined``.

Idempotency lives in S3, not in a DynamoDB table: the manifest already has to exist as the
commit marker, it names the input ETag and model version, and it is written with a
conditional PUT, so a duplicate event finds it and stops, and two workers racing on one
object cannot both commit. Nothing else to provision or pay for.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import pandas as pd

from skylift.batch.errors import CommitConflictError, permanent_reason
from skylift.batch.fastpath import encode_csv, validate_typed
from skylift.batch.manifest import BatchManifest, OutputKeys, output_keys
from skylift.batch.readers import Format, RawChunk, ReadLimits, detect_format, read_chunks
from skylift.batch.sinks import LocalSink, S3Sink, Sink, Writer
from skylift.batch.source import ObjectVersion, current_version, open_version
from skylift.config import SkyliftConfig
from skylift.scoring import Scorer

__all__ = ["BatchJob", "BatchManifest", "ProgressCallback", "output_keys"]

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[int], None]  # called with the rows of each chunk read

QUARANTINED_ROW_CHARS = 64 * 1024


@dataclass
class Tally:
    """Where every row of a file went (the manifest's counts)."""

    rows_read: int = 0
    rows_scored: int = 0
    rows_quarantined: int = 0
    blank_lines_skipped: int = 0
    chunks: int = 0
    flagged: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass
class Timings:
    """Seconds spent per stage, over all chunks."""

    read: float = 0.0
    validate: float = 0.0
    score: float = 0.0
    write: float = 0.0


@dataclass
class _Outputs:
    predictions: Writer
    quarantine: Writer
    fmt: Format
    predictions_header: bool = True
    quarantine_header: bool = True
    quarantined_any: bool = False


class BatchJob:
    """Scores objects with the model ``scorer()`` returns (the champion, kept warm).

    ``fast_path=False`` reads, validates and writes every CSV chunk the exact way (the fast
    path gives the same bytes; tests compare the two)."""

    def __init__(
        self,
        config: SkyliftConfig,
        scorer: Callable[[], Scorer],
        *,
        clock: Callable[[], float] = time.monotonic,
        fast_path: bool = True,
    ) -> None:
        self.config = config
        self._scorer = scorer
        self._clock = clock  # for [batch].max_seconds
        self.fast_path = fast_path

    # ---- entry points ------------------------------------------------------------------------

    def score_s3_object(
        self,
        s3: Any,
        bucket: str,
        key: str,
        etag: str | None = None,
        *,
        version_id: str | None = None,
        progress: ProgressCallback | None = None,
    ) -> BatchManifest:
        """Score ``s3://bucket/key`` into the same bucket's predictions/ and quarantine/.

        ``etag``/``version_id`` are the event's: StaleEventError when they no longer name the
        current object (then nothing is written), TransientBatchError when another worker
        committed another version meanwhile. A duplicate is the same version already
        committed by the same model version.
        """
        sink = S3Sink(s3, bucket)
        scorer = self._scorer()
        keys = output_keys(self.config, key)
        existing, manifest_etag = sink.read_manifest(keys.manifest)
        version = current_version(s3, bucket, key, etag, version_id)
        if (
            existing is not None
            and existing.describes(version)
            and existing.model_version == scorer.version
        ):
            logger.info("%s already scored by version %s", version.uri, scorer.version)
            return existing.model_copy(update={"duplicate": True})

        # Commit (outputs, then the manifest) only while this is still the current version:
        # after a newer upload, that upload's event owns the outputs and scores them.
        def still_current() -> None:
            current_version(s3, bucket, key, version.etag, version.version_id)

        stream = open_version(s3, version)
        manifest = self._score(
            stream, key, keys, bucket, version, sink, scorer, progress, before_commit=still_current
        )
        still_current()
        if not sink.write_manifest(keys.manifest, manifest, manifest_etag):
            winner, _ = sink.read_manifest(keys.manifest)
            if winner is not None and winner.describes(version):
                return winner.model_copy(update={"duplicate": True})
            raise CommitConflictError(
                f"{version.uri}: another worker committed a manifest for another version "
                "while this one was scored; scoring again"
            )
        return manifest

    def score_file(
        self, path: Path, output_dir: Path, *, progress: ProgressCallback | None = None
    ) -> BatchManifest:
        """Score a local file into ``output_dir`` (same layout as in S3)."""
        sink = LocalSink(output_dir)
        scorer = self._scorer()
        key = f"{self.config.storage.incoming_prefix}{path.name}"
        keys = output_keys(self.config, key)
        with path.open("rb") as stream:
            manifest = self._score(
                stream, key, keys, "local", None, sink, scorer, progress, source=str(path)
            )
        sink.write_manifest(keys.manifest, manifest, None)
        return manifest

    # ---- the scoring loop --------------------------------------------------------------------

    def _score(
        self,
        stream: IO[bytes],
        key: str,
        keys: OutputKeys,
        bucket: str,
        version: ObjectVersion | None,
        sink: Sink,
        scorer: Scorer,
        progress: ProgressCallback | None,
        source: str | None = None,
        before_commit: Callable[[], None] | None = None,
    ) -> BatchManifest:
        started = datetime.now(UTC)
        base: dict[str, Any] = {
            "input_bucket": bucket,
            "input_key": source or key,
            "input_etag": version.etag if version else None,
            "input_version_id": version.version_id if version else None,
            "input_size": version.size if version else None,
            "predictions_key": keys.predictions,
            "model": scorer.name,
            "model_version": scorer.version,
            "started_at": started,
        }
        try:
            fmt, gzipped = detect_format(key)
            tally, timings, outputs = self._run(
                stream, fmt, gzipped, sink, scorer, keys, progress, before_commit=before_commit
            )
        except Exception as exc:
            reason = permanent_reason(exc)
            if reason is None:
                raise  # transient: nothing final written, the caller retries
            logger.exception("cannot score %s: %s", source or key, reason)
            return BatchManifest(
                status="failed", reason=reason, finished_at=datetime.now(UTC), **base
            )
        return BatchManifest(
            status="succeeded",
            quarantine_key=keys.quarantine if outputs.quarantined_any else None,
            finished_at=datetime.now(UTC),
            timings=asdict(timings),
            **asdict(tally),
            **base,
        )

    def _run(
        self,
        stream: IO[bytes],
        fmt: Format,
        gzipped: bool,
        sink: Sink,
        scorer: Scorer,
        keys: OutputKeys,
        progress: ProgressCallback | None,
        before_commit: Callable[[], None] | None = None,
        reader: Callable[..., tuple[list[str], Iterator[RawChunk]]] = read_chunks,
    ) -> tuple[Tally, Timings, _Outputs]:
        """Score a whole file; ``reader`` (read_chunks' signature) lets a fan-out range read
        only its records (skylift.batch.plan)."""
        out_fmt: Format = "jsonl" if fmt == "jsonl" else "csv"
        content = "application/x-ndjson" if out_fmt == "jsonl" else "text/csv"
        timings, tally = Timings(), Tally()
        schema = scorer.schema
        limits = ReadLimits.start(
            self.config.batch.max_decompressed_bytes, self.config.batch.file_seconds, self._clock
        )
        with self._writers(sink, keys, content, out_fmt) as outputs:
            columns, chunks = reader(
                stream,
                fmt,
                gzipped=gzipped,
                chunk_rows=self.config.batch.chunk_rows,
                limits=limits,
                schema=schema if self.fast_path else None,
            )
            if fmt != "jsonl":
                schema.check_columns(columns)
                if schema.id_column and schema.id_column not in columns:
                    tally.notes.append(f"no id column {schema.id_column!r} in the file")
            for chunk in _timed(chunks, timings):
                tally.chunks += 1
                tally.rows_read += chunk.rows
                tally.blank_lines_skipped += chunk.blank_lines
                self._score_chunk(chunk, scorer, outputs, tally, timings, fmt)
                limits.check_time()  # Parquet has no byte stream to check it on
                if progress is not None:
                    progress(chunk.rows)
            if outputs.predictions_header and out_fmt == "csv":
                # No row scored: still a well-formed CSV, with its header.
                columns = list(scorer.score(pd.DataFrame(columns=schema.names)).to_frame().columns)
                if schema.id_column:
                    columns.insert(0, schema.id_column)
                outputs.predictions.write((",".join([*columns, "model_version"]) + "\n").encode())
            if before_commit is not None:
                before_commit()  # raising here aborts the outputs: nothing becomes visible
        return tally, timings, outputs

    @contextmanager
    def _writers(
        self, sink: Sink, keys: OutputKeys, content: str, fmt: Format
    ) -> Iterator[_Outputs]:
        outputs = _Outputs(
            predictions=sink.open(keys.predictions, content),
            quarantine=sink.open(keys.quarantine, content),
            fmt=fmt,
        )
        try:
            yield outputs
            outputs.predictions.commit()
            if outputs.quarantined_any:
                outputs.quarantine.commit()
            else:
                outputs.quarantine.abort()
        except BaseException:
            # Abort whatever is not committed yet (a no-op for what is). Anything committed
            # before a failure stays visible but unmarked: the manifest is the commit marker.
            outputs.predictions.abort()
            outputs.quarantine.abort()
            raise

    def _score_chunk(
        self,
        chunk: RawChunk,
        scorer: Scorer,
        outputs: _Outputs,
        tally: Tally,
        timings: Timings,
        fmt: Format,
    ) -> None:
        schema = scorer.schema
        clock = time.perf_counter()
        rejected_rows: list[tuple[int, str, str]] = list(chunk.rejected)
        scored = pd.DataFrame()
        valid_index = pd.RangeIndex(0)
        if len(chunk.frame):
            if fmt == "jsonl":
                missing = [n for n in schema.required if n not in chunk.frame.columns]
                frame = chunk.frame.reindex(
                    columns=list(dict.fromkeys([*chunk.frame.columns, *schema.names]))
                )
                for name in missing:
                    frame[name] = None
            else:
                frame = chunk.frame
            if chunk.typed:
                validation = validate_typed(schema, frame)
            else:
                validation = schema.validate_frame(frame)
            for feature, count in validation.flag_counts.items():
                tally.flagged[feature] = tally.flagged.get(feature, 0) + count
            for position, reason in validation.rejected.items():
                rejected_rows.append((chunk.lines[position], chunk.raw(position), reason))
            timings.validate += time.perf_counter() - clock
            clock = time.perf_counter()
            valid_index = validation.valid.index
            if len(valid_index):
                scored = scorer.score_frame(validation.valid)
                if schema.id_column and schema.id_column in frame.columns:
                    scored.insert(0, schema.id_column, frame[schema.id_column].loc[valid_index])
                scored["model_version"] = scorer.version
            timings.score += time.perf_counter() - clock
        clock = time.perf_counter()
        if len(scored):
            encoded = None
            if self.fast_path and outputs.fmt == "csv":
                encoded = encode_csv(scored, outputs.predictions_header)
            if encoded is None:
                encoded = _encode(scored, outputs.fmt, outputs.predictions_header)
            outputs.predictions.write(encoded)
            outputs.predictions_header = False
        if rejected_rows:
            rejected_rows = sorted(_bounded(*row) for row in rejected_rows)
            quarantine = pd.DataFrame(rejected_rows, columns=["line", "row", "reason"])
            outputs.quarantine.write(_encode(quarantine, outputs.fmt, outputs.quarantine_header))
            outputs.quarantine_header = False
            outputs.quarantined_any = True
        timings.write += time.perf_counter() - clock
        tally.rows_scored += len(scored)
        tally.rows_quarantined += len(rejected_rows)


def _bounded(line: int, row: str, reason: str) -> tuple[int, str, str]:
    """A quarantined row keeps its text, up to QUARANTINED_ROW_CHARS (the reason says so
    when cut): enough to see what is wrong without one row outgrowing the chunk."""
    if len(row) <= QUARANTINED_ROW_CHARS:
        return line, row, reason
    return (
        line,
        row[:QUARANTINED_ROW_CHARS],
        f"{reason} (row cut to its first {QUARANTINED_ROW_CHARS:,} of {len(row):,} characters)",
    )


def _encode(frame: pd.DataFrame, fmt: Format, header: bool) -> bytes:
    if fmt == "jsonl":
        text = frame.to_json(orient="records", lines=True, force_ascii=False)
        return (text if text.endswith("\n") else text + "\n").encode()
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, header=header, lineterminator="\n")
    return buffer.getvalue().encode()


def _timed(chunks: Iterator[RawChunk], timings: Timings) -> Iterator[RawChunk]:
    """The chunks, with the time spent reading them added to ``timings.read``."""
    while True:
        clock = time.perf_counter()
        try:
            chunk = next(chunks)
        except StopIteration:
            return
        finally:
            timings.read += time.perf_counter() - clock
        yield chunk
