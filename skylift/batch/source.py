"""The input object: which version an event names, and its bytes, with every failure to
fetch them classified where it happens.

An event is scored only while the version it names is the current one under its key: the
object is looked up (HEAD) and compared with the event's ``versionId`` (a versioned bucket)
and ``eTag``; a mismatch means a newer upload, whose own event scores it, so this one is stale.
The bytes are then read with ``IfMatch`` on that ETag, so they are exactly the version the
manifest names (a newer upload landing mid-read answers 412: stale). Reading by ``VersionId``
instead would need ``s3:GetObjectVersion`` and would score a superseded version over the
newer one's outputs (outputs are keyed by path, not by version).

A reset connection, a read timeout or a body that ends before its Content-Length is the
network's fault, not the file's: :class:`GuardedSource` raises it as SourceReadError
(transient), so that what reaches the decoders above it (gzip, csv) as OSError or EOFError can
only be the file's own (``gzip.BadGzipFile``, a truncated stream).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import IO, Any

from botocore.exceptions import ClientError

from skylift.batch.errors import SourceReadError, StaleEventError

__all__ = ["GuardedSource", "ObjectVersion", "current_version", "open_version"]

PRECONDITION_FAILED = ("PreconditionFailed", "412")
NOT_FOUND = ("404", "NoSuchKey", "NotFound")


@dataclass(frozen=True)
class ObjectVersion:
    """One version of an input object: what a manifest says was scored."""

    bucket: str
    key: str
    etag: str  # quoted, as S3 answers it
    version_id: str | None  # None on an unversioned bucket
    size: int

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def current_version(
    s3: Any, bucket: str, key: str, etag: str | None = None, version_id: str | None = None
) -> ObjectVersion:
    """The current version of ``s3://bucket/key``; StaleEventError if it is not the one
    named by ``version_id``/``etag`` (either may be None: not checked)."""
    try:
        head = s3.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in NOT_FOUND:
            # Deleted since the event: nothing to score, and no retry will change that.
            raise StaleEventError(f"s3://{bucket}/{key} no longer exists") from exc
        raise
    current = ObjectVersion(
        bucket=bucket,
        key=key,
        etag=head["ETag"],
        version_id=head.get("VersionId") if head.get("VersionId") not in (None, "null") else None,
        size=int(head.get("ContentLength", 0)),
    )
    if version_id is not None and version_id != "null" and current.version_id != version_id:
        raise StaleEventError(
            f"{current.uri}: the event names version {version_id}, the current one is "
            f"{current.version_id}; its own event scores it"
        )
    if etag is not None and current.etag.strip('"') != etag.strip('"'):
        raise StaleEventError(
            f"{current.uri}: the event names ETag {etag}, the object now has {current.etag}; "
            "its own event scores it"
        )
    return current


def open_version(s3: Any, version: ObjectVersion) -> io.BufferedReader:
    """A seekable binary stream of exactly ``version``'s bytes (Powertools' S3Object, each
    ranged GET conditioned on the ETag), its fetch errors classified by GuardedSource."""
    from aws_lambda_powertools.utilities.streaming import S3Object

    raw = S3Object(bucket=version.bucket, key=version.key, boto3_client=s3, IfMatch=version.etag)
    # Reads of 1 MiB, not 8 KiB: fewer round trips through the guards and the HTTP stream.
    return io.BufferedReader(GuardedSource(raw, version.uri), buffer_size=1024 * 1024)


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
