"""The input object's bytes, with every failure to fetch them classified where it happens.

A reset connection, a read timeout or a body that ends before its Content-Length is the
network's fault, not the file's: :class:`GuardedSource` raises it as SourceReadError
(transient), so that what reaches the decoders above it (gzip, csv) as OSError or EOFError can
only be the file's own (``gzip.BadGzipFile``, a truncated stream).
"""

from __future__ import annotations

import io
from typing import IO, Any

from botocore.exceptions import ClientError

from skylift.batch.errors import SourceReadError, StaleEventError

__all__ = ["GuardedSource"]

PRECONDITION_FAILED = ("PreconditionFailed", "412")


class GuardedSource(io.RawIOBase):
    """A binary stream over ``raw`` (Powertools' seekable ``S3Object``) whose read errors are
    SourceReadError, or StaleEventError when the object changed under a conditional read."""

    def __init__(self, raw: IO[bytes], name: str) -> None:
        self._raw = raw
        self.name = name

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._call(self._raw.read, len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def readline(self, size: int | None = -1) -> bytes:
        return self._call(self._raw.readline, None if size is None or size < 0 else size)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._call(self._raw.seek, offset, whence)

    def tell(self) -> int:
        return self._raw.tell()

    def close(self) -> None:
        try:
            self._raw.close()
        finally:
            super().close()

    def _call(self, method: Any, *args: Any) -> Any:
        try:
            return method(*args)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in PRECONDITION_FAILED:
                raise StaleEventError(f"{self.name} changed while it was read") from exc
            raise SourceReadError(f"reading {self.name} failed: {exc}") from exc
        except Exception as exc:  # the network's, whatever botocore/urllib3 call it
            raise SourceReadError(f"reading {self.name} failed: {exc}") from exc
