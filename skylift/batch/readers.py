"""Chunked readers for CSV, JSON Lines and Parquet (optionally gzip), row by physical line.

Every data line of a file ends up in exactly one place: a chunk row to validate and score, or
a pre-rejected row (wrong field count, invalid UTF-8, not a JSON object) with its reason.
Blank lines are not rows: they are counted separately. Line numbers are 1-based physical
lines of the decompressed file; the CSV header is line 1.

Readers take any binary stream: a local file, or Powertools' seekable ``S3Object``, which
streams from S3 and serves byte ranges (``start``/``end``) for a fan-out over one huge file.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import IO, TYPE_CHECKING, Any, Literal

import pandas as pd

from skylift.batch.errors import (
    CORRUPT_DATA_ERRORS,
    PermanentBatchError,
    UnsupportedFormatError,
    corrupt_data_reason,
)
from skylift.batch.fastpath import TypedCsv

if TYPE_CHECKING:
    from skylift.schema import FeatureSchema

__all__ = ["Format", "RawChunk", "ReadLimits", "detect_format", "read_chunks"]

Format = Literal["csv", "jsonl", "parquet"]


@dataclass
class RawChunk:
    """Up to ``chunk_rows`` rows as read (strings for CSV), plus the rows rejected on reading."""

    frame: pd.DataFrame  # one row per parsed record; values as read
    lines: list[int]  # physical line number of each frame row
    rejected: list[tuple[int, str, str]] = field(default_factory=list)  # (line, raw, reason)
    blank_lines: int = 0
    # How to show frame row i "as it came" (only rejected rows ever need it).
    show: Callable[[int], str] = field(default=lambda position: "", repr=False)
    # Read by the fast path: features typed (float64 / object with NaN for blanks), every row
    # a plain one-line record (skylift.batch.fastpath.validate_typed validates it).
    typed: bool = False

    @property
    def rows(self) -> int:
        return len(self.frame) + len(self.rejected)

    def raw(self, position: int) -> str:
        return self.show(position)


def detect_format(key: str) -> tuple[Format, bool]:
    """(format, gzipped) from the key's extension, or UnsupportedFormatError."""
    lowered = key.lower()
    gz = lowered.endswith(".gz")
    base = lowered[:-3] if gz else lowered
    if base.endswith(".csv"):
        return "csv", gz
    if base.endswith((".jsonl", ".ndjson")):
        return "jsonl", gz
    if base.endswith((".parquet", ".pq")) and not gz:
        return "parquet", False
    raise UnsupportedFormatError(
        f"{key}: unsupported file type; batch scoring reads .csv, .jsonl, .ndjson "
        "(each optionally .gz) and .parquet"
    )


def read_chunks(
    stream: IO[bytes],
    fmt: Format,
    *,
    gzipped: bool = False,
    chunk_rows: int = 50_000,
    start: int = 0,
    end: int | None = None,
    limits: ReadLimits | None = None,
    schema: FeatureSchema | None = None,
) -> tuple[list[str], Iterator[RawChunk]]:
    """(columns, chunks) of a file.

    ``start``/``end`` select a byte range of an uncompressed CSV or JSONL file (the stream
    must be seekable, as Powertools' ``S3Object`` is): the range owns the lines that *start*
    inside ``[start, end)``, so consecutive ranges cover every line exactly once. In a range,
    line numbers count from the range's first line (the CSV header is read from the file's
    start). A quoted CSV field spanning lines must not straddle a range boundary.

    ``limits`` bound the bytes read once decompressed and the time spent (CSV, JSON Lines).

    With ``schema``, a CSV chunk of plain records is read by the fast path (typed columns,
    skylift.batch.fastpath); any other chunk, and every chunk without it, by ``csv.reader``.
    """
    if fmt == "parquet":
        return _parquet_chunks(stream, chunk_rows)
    header_bytes = b""
    if start or end is not None:
        if gzipped:
            raise PermanentBatchError("byte ranges need an uncompressed file")
        if fmt == "csv":
            stream.seek(0)
            header_bytes = stream.readline()
        stream = io.BufferedReader(_LineRange(stream, max(start, len(header_bytes)), end))
        if header_bytes:
            stream = io.BufferedReader(_Prefixed(header_bytes, stream))
    elif gzipped:
        stream = gzip.GzipFile(fileobj=stream, mode="rb")  # type: ignore[assignment]
    if limits is not None:
        stream = io.BufferedReader(_Limited(stream, limits))
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="surrogateescape", newline="")
    if fmt == "csv":
        return _csv_chunks(text, chunk_rows, schema)
    return [], _jsonl_iter(text, chunk_rows)


@dataclass(frozen=True)
class ReadLimits:
    """How much of a file a job reads before it gives up for good (a gzip bomb, a file of
    blank lines): decompressed bytes, and a deadline on ``clock``."""

    max_bytes: int | None = None
    max_seconds: float | None = None
    clock: Callable[[], float] = time.monotonic
    started: float = field(default_factory=time.monotonic)

    @classmethod
    def start(
        cls,
        max_bytes: int | None,
        max_seconds: float | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> ReadLimits:
        return cls(max_bytes, max_seconds, clock, clock())

    def check_bytes(self, read: int) -> None:
        if self.max_bytes is not None and read > self.max_bytes:
            raise PermanentBatchError(
                f"the file is larger than [batch].max_decompressed_bytes = {self.max_bytes:,} "
                "bytes (once decompressed)"
            )

    def check_time(self) -> None:
        if self.max_seconds is not None and self.clock() - self.started > self.max_seconds:
            raise PermanentBatchError(
                f"the file takes longer than [batch].max_seconds = {self.max_seconds:g} s "
                "to read and score"
            )


class _Limited(io.RawIOBase):
    """A stream that enforces ReadLimits on every read (so also in a run of blank lines)."""

    def __init__(self, stream: IO[bytes], limits: ReadLimits) -> None:
        self._stream = stream
        self._limits = limits
        self._read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        self._limits.check_time()
        data = self._stream.read(len(buffer))
        self._read += len(data)
        self._limits.check_bytes(self._read)
        buffer[: len(data)] = data
        return len(data)


class _LineRange(io.RawIOBase):
    """The bytes of the lines that start in [start, end) of a seekable stream."""

    def __init__(self, stream: Any, start: int, end: int | None) -> None:
        self._stream = stream
        if start > 0:
            stream.seek(start - 1)
            if stream.read(1) != b"\n":
                stream.readline()  # the straddling line belongs to the previous range
        self._position = stream.tell()
        self._end = end
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._done:
            return 0
        if self._end is not None and self._position >= self._end:
            return 0
        line = self._stream.readline()
        if not line:
            self._done = True
            return 0
        self._position += len(line)
        if len(line) > len(buffer):  # keep the rest for the next call
            self._stream.seek(self._position - (len(line) - len(buffer)))
            self._position -= len(line) - len(buffer)
            line = line[: len(buffer)]
        buffer[: len(line)] = line
        return len(line)


class _Prefixed(io.RawIOBase):
    """``prefix`` then the rest of a stream (the CSV header before a byte range)."""

    def __init__(self, prefix: bytes, rest: IO[bytes]) -> None:
        self._prefix = prefix
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._prefix:
            size = min(len(buffer), len(self._prefix))
            buffer[:size] = self._prefix[:size]
            self._prefix = self._prefix[size:]
            return size
        data = self._rest.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


# ---- CSV ---------------------------------------------------------------------------------------


def _csv_chunks(
    text: io.TextIOWrapper, chunk_rows: int, schema: FeatureSchema | None = None
) -> tuple[list[str], Iterator[RawChunk]]:
    lines = _PhysicalLines(text)
    reader = csv.reader(lines)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise PermanentBatchError(f"unreadable header row: {exc}") from exc
    except CORRUPT_DATA_ERRORS as exc:
        raise PermanentBatchError(f"unreadable file: {corrupt_data_reason(exc)}") from exc
    if header is None:
        raise PermanentBatchError("empty file: no header row")
    header = [h.strip() for h in header]
    if _has_bad_bytes("".join(header)):
        raise PermanentBatchError("the header row is not valid UTF-8")
    _check_unique(header)
    typed = TypedCsv(schema, header) if schema is not None else None
    if typed is None or not typed.usable:
        return header, _csv_iter(lines, header, chunk_rows)
    return header, _typed_csv_iter(lines, header, chunk_rows, typed)


class _PhysicalLines:
    """The text's physical lines, fed to csv.reader one at a time, remembering the lines of
    the record being read so that a bad multi-line record can be taken apart again."""

    def __init__(self, text: Iterator[str]) -> None:
        self._text = text
        self._pushed: list[str] = []
        self.taken: list[str] = []
        self.number = 0  # of the last line handed out (the header is line 1)

    def __iter__(self) -> _PhysicalLines:
        return self

    def __next__(self) -> str:
        line = self._pushed.pop() if self._pushed else next(self._text)
        self.number += 1
        self.taken.append(line)
        return line

    def new_record(self) -> int:
        """Start a record; returns the number of its first line."""
        self.taken = []
        return self.number + 1

    def push_back(self, lines: list[str]) -> None:
        self._pushed.extend(reversed(lines))
        self.number -= len(lines)

    def take(self, count: int) -> list[str]:
        """The next ``count`` lines (fewer at the end) at once, outside any record."""
        taken = self._pushed[: -count - 1 : -1]
        del self._pushed[len(self._pushed) - len(taken) :]
        if len(taken) < count:
            taken += islice(self._text, count - len(taken))
        self.number += len(taken)
        return taken


def _check_unique(columns: list[str]) -> None:
    """A repeated column name leaves no telling which value is the feature (or the id)."""
    repeated = [name for name in dict.fromkeys(columns) if columns.count(name) > 1]
    if repeated:
        names = ", ".join(repr(name) for name in repeated)
        raise PermanentBatchError(
            f"the header repeats column{'s' if len(repeated) > 1 else ''} {names}: "
            "each column name may appear once"
        )


def _typed_csv_iter(
    lines: _PhysicalLines, header: list[str], chunk_rows: int, typed: TypedCsv
) -> Iterator[RawChunk]:
    """The chunks _csv_iter yields, each read by the fast path when its lines are plain
    records: chunk boundaries fall where _csv_iter puts them (``chunk_rows`` lines, all of
    them rows), so the chunks, and so the outputs and the manifest, are the same. Any other
    chunk is read by _csv_iter from the same place."""
    while True:
        first = lines.number + 1
        block = lines.take(chunk_rows)
        if not block:
            return
        frame = typed.parse(block)
        if frame is not None:
            yield RawChunk(
                frame=frame,
                lines=list(range(first, first + len(block))),
                show=_line_shower(block),
                typed=True,
            )
            continue
        lines.push_back(block)
        chunk = next(_csv_iter(lines, header, chunk_rows), None)
        if chunk is None:
            return
        yield chunk


def _line_shower(block: list[str]) -> Callable[[int], str]:
    """A plain record "as it came" is its line (csv would write its fields back the same)."""
    return lambda position: block[position].removesuffix("\n")


def _csv_iter(lines: _PhysicalLines, header: list[str], chunk_rows: int) -> Iterator[RawChunk]:
    """Rows of the file, each with the physical line it starts on.

    A quote opened and never closed swallows the lines after it into one field: such a
    record (several lines, the wrong number of fields) is taken apart again, its first line
    quarantined as "unterminated quoted field starting at line N", and the lines after it
    read as rows of their own, so rows_read counts physical rows. Same for a record csv
    refuses (a field over csv's size limit): its first line is quarantined, with its text.
    """
    width = len(header)
    rows: list[list[str]] = []
    numbers: list[int] = []
    rejected: list[tuple[int, str, str]] = []
    blank = 0
    reader = csv.reader(lines)
    while True:
        first = lines.new_record()
        try:
            record = next(reader)
        except StopIteration:
            break
        except CORRUPT_DATA_ERRORS as exc:
            raise PermanentBatchError(
                f"unreadable file after line {lines.number}: {corrupt_data_reason(exc)}"
            ) from exc
        except csv.Error as exc:
            taken = lines.taken
            rejected.append((first, _printable(taken[0].rstrip("\r\n")), f"malformed CSV: {exc}"))
            lines.push_back(taken[1:])
            reader = csv.reader(lines)  # a fresh parser: the failed one is mid-record
            continue
        if len(lines.taken) > 1 and len(record) != width:
            taken = lines.taken
            rejected.append(
                (
                    first,
                    _printable(taken[0].rstrip("\r\n")),
                    f"unterminated quoted field starting at line {first} (a quote opened and "
                    "not closed on this row)",
                )
            )
            lines.push_back(taken[1:])
            reader = csv.reader(lines)
            continue
        if not record or (len(record) == 1 and not record[0].strip()):
            blank += 1
        elif len(record) != width:
            rejected.append(
                (first, _printable(_join(record)), f"expected {width} fields, got {len(record)}")
            )
        else:
            rows.append(record)
            numbers.append(first)
        if len(rows) + len(rejected) >= chunk_rows:
            yield _chunk(rows, header, numbers, rejected, blank)
            rows, numbers, rejected, blank = [], [], [], 0
    if rows or rejected or blank:
        yield _chunk(rows, header, numbers, rejected, blank)


def _chunk(
    rows: list[list[str]],
    columns: list[str],
    lines: list[int],
    rejected: list[tuple[int, str, str]],
    blank: int,
) -> RawChunk:
    # One encode per chunk finds undecodable bytes; only then are rows checked one by one.
    if _has_bad_bytes("\x1f".join("\x1f".join(row) for row in rows)):
        keep = []
        for row, line in zip(rows, lines, strict=True):
            text = _join(row)
            if _has_bad_bytes(text):
                rejected.append((line, _printable(text), "invalid UTF-8 bytes"))
            else:
                keep.append((row, line))
        rows = [row for row, _ in keep]
        lines = [line for _, line in keep]
    frame = pd.DataFrame(rows, columns=columns, dtype=object)
    return RawChunk(
        frame=frame,
        lines=lines,
        rejected=rejected,
        blank_lines=blank,
        show=lambda position: _join(rows[position]),
    )


def _join(record: list[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow(record)
    return buffer.getvalue()


def _has_bad_bytes(text: str) -> bool:
    """Undecodable bytes survive decoding as lone surrogates, which UTF-8 cannot encode."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _printable(text: str) -> str:
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


# ---- JSON Lines --------------------------------------------------------------------------------


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _jsonl_iter(text: Any, chunk_rows: int) -> Iterator[RawChunk]:
    records: list[dict[str, Any]] = []
    lines: list[int] = []
    raw: list[str] = []
    rejected: list[tuple[int, str, str]] = []
    blank = 0
    number = 0
    try:
        for line_text in text:
            number += 1
            stripped = line_text.strip()
            if not stripped:
                blank += 1
                continue
            if _has_bad_bytes(stripped):
                rejected.append((number, _printable(stripped), "invalid UTF-8 bytes"))
            else:
                try:
                    value = json.loads(stripped, parse_constant=_reject_constant)
                except (ValueError, RecursionError) as exc:
                    rejected.append((number, stripped, f"not valid JSON: {exc}"))
                else:
                    if isinstance(value, dict):
                        records.append(value)
                        lines.append(number)
                        raw.append(stripped)
                    else:
                        rejected.append((number, stripped, "line is not a JSON object"))
            if len(records) + len(rejected) >= chunk_rows:
                yield _json_chunk(records, lines, raw, rejected, blank)
                records, lines, raw, rejected, blank = [], [], [], [], 0
    except CORRUPT_DATA_ERRORS as exc:
        raise PermanentBatchError(
            f"unreadable file after line {number}: {corrupt_data_reason(exc)}"
        ) from exc
    if records or rejected or blank:
        yield _json_chunk(records, lines, raw, rejected, blank)


def _json_chunk(
    records: list[dict[str, Any]],
    lines: list[int],
    raw: list[str],
    rejected: list[tuple[int, str, str]],
    blank: int,
) -> RawChunk:
    frame = pd.DataFrame.from_records(records) if records else pd.DataFrame()
    # JSON values keep their types; nested objects/lists are not feature values.
    frame = frame.astype(object).map(_scalar_or_marker) if len(frame) else frame
    return RawChunk(
        frame=frame, lines=lines, rejected=rejected, blank_lines=blank, show=raw.__getitem__
    )


def _scalar_or_marker(value: Any) -> Any:
    if isinstance(value, dict | list):
        return json.dumps(value)  # a string where a number belongs fails validation, as it should
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


# ---- Parquet -----------------------------------------------------------------------------------


def _parquet_chunks(stream: IO[bytes], chunk_rows: int) -> tuple[list[str], Iterator[RawChunk]]:
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise PermanentBatchError(
            "Parquet needs pyarrow, which this runtime does not have (it does not fit the "
            "Lambda layer budget); convert the file to CSV or JSON Lines, or use the "
            "container-image packaging"
        ) from exc
    try:
        parquet = pq.ParquetFile(stream)
    except Exception as exc:
        raise PermanentBatchError(f"not a readable Parquet file: {exc}") from exc
    columns = list(parquet.schema_arrow.names)
    _check_unique(columns)

    def chunks() -> Iterator[RawChunk]:
        line = 0
        for batch in parquet.iter_batches(batch_size=chunk_rows):
            frame = batch.to_pandas()
            numbers = list(range(line + 1, line + len(frame) + 1))
            line += len(frame)
            yield RawChunk(frame=frame.astype(object), lines=numbers, show=_json_row(frame))

    return columns, chunks()


def _json_row(frame: pd.DataFrame) -> Callable[[int], str]:
    """A Parquet row "as it came" is shown as its JSON object."""

    def show(position: int) -> str:
        return str(frame.iloc[[position]].to_json(orient="records"))[1:-1]

    return show
