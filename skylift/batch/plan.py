"""Plan a fan-out: split one file into ranges that start and end on record boundaries.

CSV and JSON Lines split into byte ranges, Parquet into runs of row groups. A CSV record may
span physical lines (a quoted field with a newline), so a CSV boundary is a newline outside
quotes: the plan scans the file once, counting quote characters (C-speed ``bytes.count``), and
a newline where the count so far is even ends a record. That holds for RFC 4180 files (quotes
only around fields, doubled inside them); a stray quote inside an unquoted field would shift
the parity, which the single-invocation reader tolerates and this scan cannot see.

Each range remembers the file's physical line number of its first line, so a range's
quarantine rows carry the same line numbers as a single pass over the whole file would.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import IO, Any

from pydantic import BaseModel, ConfigDict

from skylift.batch.errors import PermanentBatchError
from skylift.batch.readers import Format, RawChunk, read_chunks

__all__ = ["MAX_RANGES", "ByteRange", "plan_ranges", "range_reader"]

# A completed multipart upload has at most 10,000 parts and assembling one range may take two
# (a topped-up buffer and a copy), so one file fans out to at most this many ranges.
MAX_RANGES = 4_999
_BLOCK = 8 * 1024 * 1024


class ByteRange(BaseModel):
    """One child's share of a file: bytes [start, end) or Parquet row groups [start, end)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    index: int
    start: int
    end: int
    first_line: int  # the file's physical line (Parquet: row) number of the range's first line
    row_groups: bool = False  # start/end count Parquet row groups, not bytes


def plan_ranges(
    stream: IO[bytes], fmt: Format, size: int, *, ranges: int, gzipped: bool = False
) -> list[ByteRange]:
    """Up to ``ranges`` ranges (fewer when the file has fewer records) covering the file."""
    ranges = max(1, min(ranges, MAX_RANGES))
    if fmt == "parquet":
        return _row_group_ranges(stream, ranges)
    if gzipped:
        if ranges > 1:
            raise PermanentBatchError("a gzipped file cannot be split into byte ranges")
        return [ByteRange(index=0, start=0, end=size, first_line=1)]
    stream.seek(0)
    data_start, first_line = 0, 1
    if fmt == "csv":
        data_start, first_line = len(stream.readline()), 2
    if data_start >= size or ranges == 1:
        return [ByteRange(index=0, start=data_start, end=size, first_line=first_line)]
    step = (size - data_start) / ranges
    targets = [data_start + round(step * k) for k in range(1, ranges)]
    cuts = _record_boundaries(stream, data_start, size, first_line, targets, fmt == "csv")
    starts = [(data_start, first_line), *cuts]
    ends = [offset for offset, _ in cuts] + [size]
    return [
        ByteRange(index=i, start=start, end=end, first_line=line)
        for i, ((start, line), end) in enumerate(zip(starts, ends, strict=True))
    ]


def _record_boundaries(
    stream: IO[bytes],
    position: int,
    size: int,
    line: int,
    targets: list[int],
    quoted: bool,
) -> list[tuple[int, int]]:
    """(offset, line number) of the first record start at or after each target, deduplicated.

    ``line`` is the number of the line starting at ``position``; ``quotes`` counts quote
    characters since the data started (even = outside any quoted field).
    """
    stream.seek(position)
    cuts: list[tuple[int, int]] = []
    pending = iter(targets)
    target = next(pending, None)
    seeking = False
    quotes = 0
    while target is not None or seeking:
        block = stream.read(_BLOCK)
        if not block:
            break
        i = 0
        while True:
            if not seeking:
                if target is None or target >= position + len(block):
                    break
                local = max(target - position, i)
                line += block.count(b"\n", i, local)
                quotes += block.count(b'"', i, local) if quoted else 0
                i, seeking = local, True
            newline = block.find(b"\n", i)
            if newline < 0:
                break
            quotes += block.count(b'"', i, newline) if quoted else 0
            line += 1
            i = newline + 1
            if quotes & 1:
                continue  # inside a quoted field: this newline is part of a value
            seeking = False
            cut = position + i
            if cut < size and (not cuts or cuts[-1][0] < cut):
                cuts.append((cut, line))
            while target is not None and target <= cut:
                target = next(pending, None)
        line += block.count(b"\n", i)
        quotes += block.count(b'"', i) if quoted else 0
        position += len(block)
    return cuts


def _row_group_ranges(stream: IO[bytes], ranges: int) -> list[ByteRange]:
    parquet = _parquet_file(stream)
    metadata = parquet.metadata
    groups = metadata.num_row_groups
    count = max(1, min(ranges, groups))
    out: list[ByteRange] = []
    row = 1
    for i in range(count):
        start, end = groups * i // count, groups * (i + 1) // count
        out.append(ByteRange(index=i, start=start, end=end, first_line=row, row_groups=True))
        row += sum(metadata.row_group(g).num_rows for g in range(start, end))
    return out


def _parquet_file(stream: IO[bytes]) -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise PermanentBatchError(
            "Parquet needs pyarrow, which this runtime does not have"
        ) from exc
    try:
        return pq.ParquetFile(stream)
    except Exception as exc:
        raise PermanentBatchError(f"not a readable Parquet file: {exc}") from exc


def range_reader(byte_range: ByteRange) -> Any:
    """A reader with :func:`read_chunks`' signature that reads only ``byte_range``, numbering
    lines as a single pass over the whole file would (BatchJob._run's ``reader``)."""
    return functools.partial(_read_range, byte_range)


def _read_range(
    byte_range: ByteRange,
    stream: IO[bytes],
    fmt: Format,
    *,
    gzipped: bool = False,
    chunk_rows: int = 50_000,
    limits: Any = None,
    schema: Any = None,
) -> tuple[list[str], Iterator[RawChunk]]:
    if byte_range.row_groups:
        columns, chunks = _row_group_chunks(stream, byte_range, chunk_rows)
        shift = byte_range.first_line - 1
    elif gzipped:  # a single whole-file range: no seeking inside a gzip stream
        columns, chunks = read_chunks(
            stream, fmt, gzipped=True, chunk_rows=chunk_rows, limits=limits, schema=schema
        )
        shift = 0
    else:
        columns, chunks = read_chunks(
            stream,
            fmt,
            chunk_rows=chunk_rows,
            start=byte_range.start,
            end=byte_range.end,
            limits=limits,
            schema=schema,
        )
        # In a range, CSV numbers the (re-read) header 1 and JSON Lines its first line 1.
        shift = byte_range.first_line - (2 if fmt == "csv" else 1)
    return columns, _shifted(chunks, shift)


def _shifted(chunks: Iterator[RawChunk], shift: int) -> Iterator[RawChunk]:
    for chunk in chunks:
        if shift:
            chunk.lines = [line + shift for line in chunk.lines]
            chunk.rejected = [(line + shift, raw, why) for line, raw, why in chunk.rejected]
        yield chunk


def _row_group_chunks(
    stream: IO[bytes], byte_range: ByteRange, chunk_rows: int
) -> tuple[list[str], Iterator[RawChunk]]:
    from skylift.batch.readers import _json_row

    parquet = _parquet_file(stream)
    columns = list(parquet.schema_arrow.names)

    def chunks() -> Iterator[RawChunk]:
        line = 0
        groups = list(range(byte_range.start, byte_range.end))
        for batch in parquet.iter_batches(batch_size=chunk_rows, row_groups=groups):
            frame = batch.to_pandas()
            numbers = list(range(line + 1, line + len(frame) + 1))
            line += len(frame)
            yield RawChunk(frame=frame.astype(object), lines=numbers, show=_json_row(frame))

    return columns, chunks()
