"""Where a batch job's outputs go: S3 (multipart uploads, the manifest by conditional PUT) or
a local folder (``skylift batch score`` on a local file). Both commit outputs atomically."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Protocol

from botocore.exceptions import ClientError

from skylift.batch.manifest import BatchManifest
from skylift.batch.writers import MultipartWriter

__all__ = ["LocalSink", "S3Sink", "Sink", "Writer"]


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
