"""Batch errors, classified in one place.

- **Permanent**: the file itself can never be scored as it is (format, missing columns, a
  corrupt or truncated compressed stream, a repeated header). It ends in a failed manifest with
  the reason, and the message is not retried.
- **Stale**: the event names an object version that is no longer the one under its key; the
  event for the newer version scores that one. Skipped with a log line, nothing written.
- **Transient**: everything else (S3 or the network failing mid-read, -write or -commit,
  another worker committing meanwhile, no model yet, a bug). Nothing final is written; the
  SQS message fails and is retried, then goes to the DLQ.

Network faults raised while the input is read are wrapped as :class:`SourceReadError` where
the bytes are fetched (``skylift.batch.source``), so a decoder's own errors, which are
OSError/EOFError subclasses too (``gzip.BadGzipFile``), can only mean a broken file.
"""

from __future__ import annotations

import gzip
import zlib

from skylift.errors import SkyliftError
from skylift.schema import SchemaMismatchError

__all__ = [
    "CORRUPT_DATA_ERRORS",
    "CommitConflictError",
    "MalformedMessageError",
    "PermanentBatchError",
    "SourceReadError",
    "StaleEventError",
    "TransientBatchError",
    "UnsupportedFormatError",
    "corrupt_data_reason",
    "permanent_reason",
]


class PermanentBatchError(SkyliftError):
    """The file can never be scored as it is (format, missing columns, unreadable)."""


class UnsupportedFormatError(PermanentBatchError):
    """The key's extension is not one batch scoring reads."""


class StaleEventError(SkyliftError):
    """The event names an object version that is no longer the current one under its key."""


class TransientBatchError(SkyliftError):
    """Try again later: nothing final was written."""


class CommitConflictError(TransientBatchError):
    """Another worker committed a manifest for another version of the input meanwhile."""


class SourceReadError(TransientBatchError):
    """Fetching the input's bytes failed (the network or S3, not the file)."""


class MalformedMessageError(SkyliftError):
    """An SQS message that is not an S3 event notification."""


# What decoding a broken file raises (never the network: see SourceReadError).
CORRUPT_DATA_ERRORS: tuple[type[BaseException], ...] = (zlib.error, gzip.BadGzipFile, EOFError)


def corrupt_data_reason(exc: BaseException) -> str:
    """The reason for one of CORRUPT_DATA_ERRORS, in the file's terms."""
    if isinstance(exc, gzip.BadGzipFile):
        return f"not a gzip file: {exc}"
    if isinstance(exc, EOFError):
        return f"the compressed stream ends early (a truncated file): {exc}"
    return f"corrupt compressed data: {exc}"


def permanent_reason(exc: BaseException) -> str | None:
    """Why the file can never be scored, or None when ``exc`` is worth retrying."""
    if isinstance(exc, PermanentBatchError | SchemaMismatchError):
        return str(exc)
    if isinstance(exc, CORRUPT_DATA_ERRORS):
        return corrupt_data_reason(exc)
    return None
