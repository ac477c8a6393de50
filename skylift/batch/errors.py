"""Batch errors. Permanent ones end in a failed manifest; anything else is retried by SQS."""

from __future__ import annotations

from skylift.errors import SkyliftError


class PermanentBatchError(SkyliftError):
    """The file can never be scored as it is (format, missing columns, unreadable)."""


class UnsupportedFormatError(PermanentBatchError):
    """The key's extension is not one batch scoring reads."""
