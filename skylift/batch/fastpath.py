"""The batch fast path for CSV: a typed C-engine read, numpy validation and a join-based writer.

Each piece only ever takes a chunk it is certain about, and hands anything else to the exact
path (``csv.reader`` rows, :meth:`FeatureSchema.validate_frame` on strings, ``to_csv``), so
outputs, quarantine reasons and physical line numbers are the exact path's by construction:

- :class:`TypedCsv` parses a block of physical lines with ``pandas.read_csv(engine="c")`` and
  the schema's dtypes only when every line is a plain record: printable ASCII, no quote, no
  carriage return, no blank line, no space next to a comma or line end (the exact path strips
  those), no line over csv's field size limit, and exactly the header's number of fields on
  every line. After parsing, a numeric column with a value whose text could have read
  differently as a string (inf, -0, |x| >= 2**53 where integer text converts exactly, a column
  of booleans the C engine reads as 0/1) sends the block back too.
- :func:`validate_typed` checks such a frame with numpy; a chunk where any row would be
  rejected goes through ``validate_frame`` (on the typed frame, which reads the same values) so
  the reasons are worded by the one place that words them.
- :func:`encode_csv` writes floats, integers and plain strings as ``to_csv`` would (Python's
  shortest repr, which numpy's ``astype(str)`` used by ``to_csv`` matches); any other column,
  a non-finite float or a string csv would quote gives None: the caller uses ``to_csv``.

tests/unit/test_batch_fastpath.py runs both paths over every CSV the tests use and generated
files with anomalies sprinkled in, and compares outputs, quarantine files and manifests byte
for byte.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from skylift.schema import FeatureSchema, FrameValidation

__all__ = ["TypedCsv", "encode_csv", "validate_typed"]

# Bytes a plain record may hold: printable ASCII without the quote, and the newline.
_PLAIN = bytes(b for b in range(0x20, 0x7F) if b != ord('"')) + b"\n"
_STRIPPED_SPACES = (" ,", ", ", " \n", "\n ")  # whitespace the exact path would strip
_BOOLEAN_HINTS = ("rue", "RUE", "alse", "ALSE")  # True/true/TRUE, False/false/FALSE
_EXACT_INTEGERS = 2.0**53  # integer text beyond this converts differently as a string
_CSV_SPECIAL = (",", '"', "\r", "\n")  # characters csv quotes a field for


class TypedCsv:
    """Parses plain blocks of CSV lines into typed columns (features and id), or says no."""

    def __init__(self, schema: FeatureSchema, header: Sequence[str]) -> None:
        from skylift.schema import NumericFeature

        self._width = len(header)
        position = {name: index for index, name in enumerate(header)}
        numeric = {f.name for f in schema.features if isinstance(f, NumericFeature)}
        wanted = [f.name for f in schema.features if f.name in position]
        if schema.id_column and schema.id_column in position:
            wanted.append(schema.id_column)
        self._numeric = [position[name] for name in numeric if name in position]
        self._names = {position[name]: name for name in wanted}
        self._dtypes: dict[int, Any] = {
            position[name]: "float64" if name in numeric else object for name in wanted
        }
        # Only feature cells can be missing values; an empty id stays "" as the exact path has it.
        self._na: dict[int, list[str]] = {
            position[f.name]: [""] for f in schema.features if f.name in position
        }
        # An id column that is also a feature is read both raw and stripped by the exact path;
        # that corner, and a file without every feature (refused anyway), stay on it.
        self.usable = all(f.name in position for f in schema.features) and not (
            schema.id_column and schema.id_column in schema.names
        )

    def parse(self, lines: list[str]) -> pd.DataFrame | None:
        """The typed frame of ``lines`` (one row per line) when they are plain records."""
        if not self.usable or not lines:
            return None
        text = "".join(lines)
        if not text.isascii() or text.startswith(("\n", " ")) or "\n\n" in text:
            return None
        data = text.encode("ascii")
        if data.translate(None, _PLAIN) or (" " in text and _has_stripped_space(text)):
            return None
        if not data.endswith(b"\n"):
            data += b"\n"  # the file's last line
        if not self._fields_fit(data, len(lines)):
            return None
        try:
            frame = pd.read_csv(
                io.BytesIO(data),
                engine="c",
                header=None,
                index_col=False,
                usecols=list(self._names),
                dtype=self._dtypes,
                keep_default_na=False,
                na_values=self._na,
                skip_blank_lines=False,
            )
        except Exception:  # anything the C engine refuses, the exact path words
            return None
        if len(frame) != len(lines) or not self._numbers_certain(frame, text):
            return None
        return frame.rename(columns=self._names)

    def _fields_fit(self, data: bytes, rows: int) -> bool:
        """Every line has the header's number of fields, and none is over csv's size limit."""
        if data.count(b",") != (self._width - 1) * rows:
            return False
        raw = np.frombuffer(data, dtype=np.uint8)
        ends = np.flatnonzero(raw == ord("\n"))
        if len(ends) != rows:
            return False
        starts = np.concatenate(([0], ends[:-1] + 1))
        if int((ends - starts).max()) >= csv.field_size_limit():
            return False
        commas = np.flatnonzero(raw == ord(","))
        per_line = np.diff(np.searchsorted(commas, ends), prepend=0)
        return bool((per_line == self._width - 1).all())

    def _numbers_certain(self, frame: pd.DataFrame, text: str) -> bool:
        for index in self._numeric:
            column = frame[index]
            if column.dtype != np.float64:
                return False
            values = column.to_numpy()
            present = values[~np.isnan(values)]
            if np.isinf(present).any() or (np.abs(present) >= _EXACT_INTEGERS).any():
                return False
            if np.signbit(present[present == 0]).any():
                return False
            if np.isin(present, (0.0, 1.0)).all() and any(h in text for h in _BOOLEAN_HINTS):
                return False
        return all(
            frame[index].dtype == object for index in self._names if index not in self._numeric
        )


def _has_stripped_space(text: str) -> bool:
    return text.endswith(" ") or any(pair in text for pair in _STRIPPED_SPACES)


def validate_typed(schema: FeatureSchema, frame: pd.DataFrame) -> FrameValidation:
    """``schema.validate_frame(frame)`` for a frame from :class:`TypedCsv`, in numpy when no
    row is rejected (the common case), else by validate_frame itself."""
    from skylift.schema import FrameValidation, NumericFeature

    clean: dict[str, Any] = {}
    flag_counts: dict[str, int] = {}
    categories = schema._categories
    for feature in schema.features:
        column = frame[feature.name]
        values = column.to_numpy()
        if isinstance(feature, NumericFeature):
            blank = np.isnan(values)
            if feature.integer and (values[~blank] % 1 != 0).any():
                return schema.validate_frame(frame)
            if feature.enforced:
                if (feature.min is not None and (values < feature.min).any()) or (
                    feature.max is not None and (values > feature.max).any()
                ):
                    return schema.validate_frame(frame)
            elif feature.min is not None and feature.max is not None:
                outside = int(((values < feature.min) | (values > feature.max)).sum())
                if outside:
                    flag_counts[feature.name] = outside
        else:
            blank = column.isna().to_numpy()
            if feature.enforced:
                if (~blank & ~column.isin(frozenset(feature.categories)).to_numpy()).any():
                    return schema.validate_frame(frame)
            elif feature.name in categories:
                unseen = int((~blank & ~column.isin(categories[feature.name]).to_numpy()).sum())
                if unseen:
                    flag_counts[feature.name] = unseen
        if not feature.nullable and blank.any():
            return schema.validate_frame(frame)
        clean[feature.name] = column  # a Series: an object column stays object, not str
    return FrameValidation(
        valid=pd.DataFrame(clean, index=frame.index),
        rejected=pd.Series([], index=frame.index[:0], dtype=object),
        flag_counts=flag_counts,
    )


def encode_csv(frame: pd.DataFrame, header: bool) -> bytes | None:
    """``frame.to_csv(index=False, header=header, lineterminator="\\n")`` as bytes, joined
    from per-column strings; None when a column is not one this writes identically."""
    if not len(frame):
        return None
    columns: list[list[Any]] = []
    formats: list[str] = []  # %r of a float is its repr, %s of an int or a str its str
    for name in frame.columns:
        values = frame[name].to_numpy()
        items = values.tolist()
        if values.dtype == np.float64:
            if not np.isfinite(values).all():
                return None  # to_csv writes NaN as ""
            formats.append("%r")
        elif values.dtype.kind in "iu":
            formats.append("%s")
        elif values.dtype == object:
            kinds = set(map(type, items))
            if kinds <= {str}:
                joined = "".join(items)
                if any(special in joined for special in _CSV_SPECIAL):
                    return None
            elif not kinds <= {int}:
                return None
            formats.append("%s")
        else:
            return None
        columns.append(items)
    row = ",".join(formats)
    body = "\n".join(map(row.__mod__, zip(*columns, strict=True))) + "\n"
    if header:
        buffer = io.StringIO()
        frame.iloc[:0].to_csv(buffer, index=False, header=True, lineterminator="\n")
        body = buffer.getvalue() + body
    return body.encode()
