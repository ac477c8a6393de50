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
from botocore.exceptions import ClientError

from skylift.batch.errors import PermanentBatchError
from skylift.batch.manifest import BatchManifest, OutputKeys, output_keys
from skylift.batch.readers import Format, RawChunk, detect_format, read_chunks
from skylift.batch.sinks import LocalSink, S3Sink, Sink, Writer
from skylift.config import SkyliftConfig
from skylift.schema import SchemaMismatchError
from skylift.scoring import Scorer

__all__ = ["BatchJob", "BatchManifest", "ProgressCallback", "output_keys"]

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[int], None]  # called with the rows of each chunk read


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
    """Scores objects with the model ``scorer()`` returns (the champion, kept warm)."""

    def __init__(self, config: SkyliftConfig, scorer: Callable[[], Scorer]) -> None:
        self.config = config
        self._scorer = scorer

    # ---- entry points ------------------------------------------------------------------------

    def score_s3_object(
        self,
        s3: Any,
        bucket: str,
        key: str,
        etag: str | None = None,
        *,
        progress: ProgressCallback | None = None,
    ) -> BatchManifest:
        """Score ``s3://bucket/key`` into the same bucket's predictions/ and quarantine/."""
        from aws_lambda_powertools.utilities.streaming import S3Object

        sink = S3Sink(s3, bucket)
        scorer = self._scorer()
        keys = output_keys(self.config, key)
        existing, manifest_etag = sink.read_manifest(keys.manifest)
        if etag is None:
            try:
                etag = s3.head_object(Bucket=bucket, Key=key)["ETag"]
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                    raise PermanentBatchError(f"s3://{bucket}/{key} no longer exists") from exc
                raise
        if (
            existing is not None
            and existing.input_etag == etag
            and existing.model_version == scorer.version
        ):
            logger.info("s3://%s/%s already scored by version %s", bucket, key, scorer.version)
            return existing.model_copy(update={"duplicate": True})
        stream = S3Object(bucket=bucket, key=key, boto3_client=s3)
        manifest = self._score(stream, key, keys, bucket, etag, sink, scorer, progress)
        if not sink.write_manifest(keys.manifest, manifest, manifest_etag):
            winner, _ = sink.read_manifest(keys.manifest)
            return (winner or manifest).model_copy(update={"duplicate": True})
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
        etag: str | None,
        sink: Sink,
        scorer: Scorer,
        progress: ProgressCallback | None,
        source: str | None = None,
    ) -> BatchManifest:
        started = datetime.now(UTC)
        base: dict[str, Any] = {
            "input_bucket": bucket,
            "input_key": source or key,
            "input_etag": etag,
            "predictions_key": keys.predictions,
            "model": scorer.name,
            "model_version": scorer.version,
            "started_at": started,
        }
        try:
            fmt, gzipped = detect_format(key)
            tally, timings, outputs = self._run(stream, fmt, gzipped, sink, scorer, keys, progress)
        except (PermanentBatchError, SchemaMismatchError) as exc:
            logger.warning("cannot score %s: %s", key, exc)
            return BatchManifest(
                status="failed", reason=str(exc), finished_at=datetime.now(UTC), **base
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
        reader: Callable[..., tuple[list[str], Iterator[RawChunk]]] = read_chunks,
    ) -> tuple[Tally, Timings, _Outputs]:
        """Score a whole file; ``reader`` (read_chunks' signature) lets a fan-out range read
        only its records (skylift.batch.plan)."""
        out_fmt: Format = "jsonl" if fmt == "jsonl" else "csv"
        content = "application/x-ndjson" if out_fmt == "jsonl" else "text/csv"
        timings, tally = Timings(), Tally()
        schema = scorer.schema
        with self._writers(sink, keys, content, out_fmt) as outputs:
            columns, chunks = reader(
                stream, fmt, gzipped=gzipped, chunk_rows=self.config.batch.chunk_rows
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
                if progress is not None:
                    progress(chunk.rows)
            if outputs.predictions_header and out_fmt == "csv":
                # No row scored: still a well-formed CSV, with its header.
                columns = list(scorer.score(pd.DataFrame(columns=schema.names)).to_frame().columns)
                if schema.id_column:
                    columns.insert(0, schema.id_column)
                outputs.predictions.write((",".join([*columns, "model_version"]) + "\n").encode())
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
        except BaseException:
            outputs.predictions.abort()
            outputs.quarantine.abort()
            raise
        outputs.predictions.commit()
        if outputs.quarantined_any:
            outputs.quarantine.commit()
        else:
            outputs.quarantine.abort()

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
            outputs.predictions.write(_encode(scored, outputs.fmt, outputs.predictions_header))
            outputs.predictions_header = False
        if rejected_rows:
            rejected_rows.sort()
            quarantine = pd.DataFrame(rejected_rows, columns=["line", "row", "reason"])
            outputs.quarantine.write(_encode(quarantine, outputs.fmt, outputs.quarantine_header))
            outputs.quarantine_header = False
            outputs.quarantined_any = True
        timings.write += time.perf_counter() - clock
        tally.rows_scored += len(scored)
        tally.rows_quarantined += len(rejected_rows)


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
