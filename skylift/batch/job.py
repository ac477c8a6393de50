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
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Literal, Protocol

import pandas as pd
from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Field

from skylift.batch.errors import PermanentBatchError
from skylift.batch.readers import Format, RawChunk, detect_format, read_chunks
from skylift.batch.writers import MultipartWriter
from skylift.config import SkyliftConfig
from skylift.schema import SchemaMismatchError
from skylift.scoring import Scorer

__all__ = ["BatchJob", "BatchManifest", "LocalSink", "S3Sink", "output_keys"]

logger = logging.getLogger(__name__)

MANIFEST_SUFFIX = ".manifest.json"


class BatchManifest(BaseModel):
    """What happened to one input object; written last, as the commit marker."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())
    status: Literal["succeeded", "failed"]
    reason: str | None = None
    input_bucket: str
    input_key: str
    input_etag: str | None = None
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
    duplicate: bool = Field(default=False, exclude=True)  # set on the skip path, not stored


def output_keys(config: SkyliftConfig, key: str) -> tuple[str, str, str]:
    """(predictions, quarantine, manifest) keys for an input key under incoming/."""
    storage = config.storage
    relative = (
        key[len(storage.incoming_prefix) :] if key.startswith(storage.incoming_prefix) else key
    )
    if relative.lower().endswith(".parquet"):
        relative = relative[: -len(".parquet")] + ".csv"  # Parquet in, CSV out
    predictions = f"{storage.predictions_prefix}{relative}"
    return predictions, f"{storage.quarantine_prefix}{relative}", predictions + MANIFEST_SUFFIX


class Writer(Protocol):
    def write(self, data: bytes) -> None: ...
    def commit(self) -> None: ...
    def abort(self) -> None: ...


class Sink(Protocol):
    def open(self, key: str, content_type: str) -> Writer: ...
    def read_manifest(self, key: str) -> tuple[BatchManifest | None, str | None]: ...
    def write_manifest(self, key: str, manifest: BatchManifest, etag: str | None) -> bool: ...


class S3Sink:
    """Outputs in the bucket: multipart writers, and the manifest by conditional PUT."""

    def __init__(self, s3: Any, bucket: str) -> None:
        self.s3 = s3
        self.bucket = bucket

    def open(self, key: str, content_type: str) -> Writer:
        return MultipartWriter(self.s3, self.bucket, key, content_type)

    def read_manifest(self, key: str) -> tuple[BatchManifest | None, str | None]:
        try:
            response = self.s3.get_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None, None
            raise
        body = response["Body"].read()
        try:
            return BatchManifest.model_validate_json(body), response["ETag"]
        except ValueError:
            return None, response["ETag"]  # unreadable marker: score again and replace it

    def write_manifest(self, key: str, manifest: BatchManifest, etag: str | None) -> bool:
        condition = {"IfMatch": etag} if etag else {"IfNoneMatch": "*"}
        try:
            self.s3.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=manifest.model_dump_json(indent=2).encode(),
                ContentType="application/json",
                **condition,
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "412"):
                return False  # another worker committed this object first
            raise
        return True


class _LocalWriter:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._path = path
        handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        self._file = os.fdopen(handle, "wb")
        self._temp = Path(name)

    def write(self, data: bytes) -> None:
        self._file.write(data)

    def commit(self) -> None:
        self._file.close()
        os.replace(self._temp, self._path)  # atomic, as a completed multipart upload is

    def abort(self) -> None:
        self._file.close()
        self._temp.unlink(missing_ok=True)


class LocalSink:
    """Outputs in a local folder (``skylift batch score`` on a local file)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def open(self, key: str, content_type: str) -> Writer:
        return _LocalWriter(self.root / key)

    def read_manifest(self, key: str) -> tuple[BatchManifest | None, str | None]:
        return None, None  # a local run always scores

    def write_manifest(self, key: str, manifest: BatchManifest, etag: str | None) -> bool:
        writer = _LocalWriter(self.root / key)
        writer.write(manifest.model_dump_json(indent=2).encode())
        writer.commit()
        return True


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

    def __init__(
        self,
        config: SkyliftConfig,
        scorer: Callable[[], Scorer],
        *,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        self.config = config
        self._scorer = scorer
        self._progress = progress

    # ---- entry points ------------------------------------------------------------------------

    def score_s3_object(
        self, s3: Any, bucket: str, key: str, etag: str | None = None
    ) -> BatchManifest:
        """Score ``s3://bucket/key`` into the same bucket's predictions/ and quarantine/."""
        from aws_lambda_powertools.utilities.streaming import S3Object

        sink = S3Sink(s3, bucket)
        scorer = self._scorer()
        manifest_key = output_keys(self.config, key)[2]
        existing, manifest_etag = sink.read_manifest(manifest_key)
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
        manifest = self._score(stream, key, bucket, etag, sink, scorer)
        if not sink.write_manifest(manifest_key, manifest, manifest_etag):
            winner, _ = sink.read_manifest(manifest_key)
            return (winner or manifest).model_copy(update={"duplicate": True})
        return manifest

    def score_file(self, path: Path, output_dir: Path) -> BatchManifest:
        """Score a local file into ``output_dir`` (same layout as in S3)."""
        sink = LocalSink(output_dir)
        scorer = self._scorer()
        key = f"{self.config.storage.incoming_prefix}{path.name}"
        with path.open("rb") as stream:
            manifest = self._score(stream, key, "local", None, sink, scorer, source=str(path))
        sink.write_manifest(output_keys(self.config, key)[2], manifest, None)
        return manifest

    # ---- the scoring loop --------------------------------------------------------------------

    def _score(
        self,
        stream: IO[bytes],
        key: str,
        bucket: str,
        etag: str | None,
        sink: Sink,
        scorer: Scorer,
        source: str | None = None,
    ) -> BatchManifest:
        started = datetime.now(UTC)
        predictions_key, quarantine_key, _ = output_keys(self.config, key)
        base: dict[str, Any] = {
            "input_bucket": bucket,
            "input_key": source or key,
            "input_etag": etag,
            "predictions_key": predictions_key,
            "model": scorer.name,
            "model_version": scorer.version,
            "started_at": started,
        }
        try:
            fmt, gzipped = detect_format(key)
            counts, timings, outputs = self._run(stream, fmt, gzipped, sink, scorer, key)
        except (PermanentBatchError, SchemaMismatchError) as exc:
            logger.warning("cannot score %s: %s", key, exc)
            return BatchManifest(
                status="failed", reason=str(exc), finished_at=datetime.now(UTC), **base
            )
        return BatchManifest(
            status="succeeded",
            quarantine_key=quarantine_key if outputs.quarantined_any else None,
            finished_at=datetime.now(UTC),
            timings=timings,
            **counts,
            **base,
        )

    def _run(
        self,
        stream: IO[bytes],
        fmt: Format,
        gzipped: bool,
        sink: Sink,
        scorer: Scorer,
        key: str,
    ) -> tuple[dict[str, Any], dict[str, float], _Outputs]:
        predictions_key, quarantine_key, _ = output_keys(self.config, key)
        out_fmt: Format = "jsonl" if fmt == "jsonl" else "csv"
        content = "application/x-ndjson" if out_fmt == "jsonl" else "text/csv"
        timings = {"read": 0.0, "validate": 0.0, "score": 0.0, "write": 0.0}
        counts: dict[str, Any] = {
            "rows_read": 0,
            "rows_scored": 0,
            "rows_quarantined": 0,
            "blank_lines_skipped": 0,
            "chunks": 0,
            "flagged": {},
            "notes": [],
        }
        schema = scorer.schema
        with self._writers(sink, predictions_key, quarantine_key, content, out_fmt) as outputs:
            columns, chunks = read_chunks(
                stream, fmt, gzipped=gzipped, chunk_rows=self.config.batch.chunk_rows
            )
            if fmt != "jsonl":
                schema.check_columns(columns)
                if schema.id_column and schema.id_column not in columns:
                    counts["notes"].append(f"no id column {schema.id_column!r} in the file")
            for chunk in _timed(chunks, timings, "read"):
                counts["chunks"] += 1
                counts["rows_read"] += chunk.rows
                counts["blank_lines_skipped"] += chunk.blank_lines
                self._score_chunk(chunk, scorer, outputs, counts, timings, fmt)
                if self._progress is not None:
                    self._progress(chunk.rows)
            if outputs.predictions_header and out_fmt == "csv":
                # No row scored: still a well-formed CSV, with its header.
                columns = list(scorer.score(pd.DataFrame(columns=schema.names)).to_frame().columns)
                if schema.id_column:
                    columns.insert(0, schema.id_column)
                outputs.predictions.write((",".join([*columns, "model_version"]) + "\n").encode())
        return counts, timings, outputs

    @contextmanager
    def _writers(
        self, sink: Sink, predictions_key: str, quarantine_key: str, content: str, fmt: Format
    ) -> Iterator[_Outputs]:
        outputs = _Outputs(
            predictions=sink.open(predictions_key, content),
            quarantine=sink.open(quarantine_key, content),
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
        counts: dict[str, Any],
        timings: dict[str, float],
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
                counts["flagged"][feature] = counts["flagged"].get(feature, 0) + count
            for position, reason in validation.rejected.items():
                rejected_rows.append((chunk.lines[position], chunk.raw(position), reason))
            timings["validate"] += time.perf_counter() - clock
            clock = time.perf_counter()
            valid_index = validation.valid.index
            if len(valid_index):
                scored = scorer.score_frame(validation.valid)
                if schema.id_column and schema.id_column in frame.columns:
                    scored.insert(0, schema.id_column, frame[schema.id_column].loc[valid_index])
                scored["model_version"] = scorer.version
            timings["score"] += time.perf_counter() - clock
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
        timings["write"] += time.perf_counter() - clock
        counts["rows_scored"] += len(scored)
        counts["rows_quarantined"] += len(rejected_rows)


def _encode(frame: pd.DataFrame, fmt: Format, header: bool) -> bytes:
    if fmt == "jsonl":
        text = frame.to_json(orient="records", lines=True, force_ascii=False)
        return (text if text.endswith("\n") else text + "\n").encode()
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, header=header, lineterminator="\n")
    return buffer.getvalue().encode()


def _timed(chunks: Iterator[RawChunk], timings: dict[str, float], name: str) -> Iterator[RawChunk]:
    while True:
        clock = time.perf_counter()
        try:
            chunk = next(chunks)
        except StopIteration:
            return
        finally:
            timings[name] += time.perf_counter() - clock
        yield chunk
