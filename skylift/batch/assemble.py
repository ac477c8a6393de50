"""Assemble one output object from the outputs of a fan-out's ranges, in range order.

S3: a multipart upload whose parts are ``UploadPartCopy`` of the ranges' objects (S3 copies
server-side; nothing passes through the function) wherever a range's output is at least the
5 MiB that every part but the last must have. Smaller outputs, and the header, are
concatenated in a buffer that is topped up from the next range (a ranged GET) until it is a
legal part. A total under one part is a single PUT. Either way the object appears whole or not
at all. Local: the files concatenated into a temporary file, renamed into place.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from skylift.batch.sinks import LocalSink

__all__ = ["MIN_PART_BYTES", "Assembler", "LocalAssembler", "S3Assembler"]

MIN_PART_BYTES = 5 * 1024 * 1024  # S3's least size for every part of an upload but the last


class Assembler(Protocol):
    def concat(
        self, key: str, content_type: str, head: bytes, parts: Sequence[tuple[str, int]]
    ) -> None:
        """Write ``head`` then each (key, size) object's bytes, in order, to ``key``."""
        ...

    def delete(self, keys: Sequence[str]) -> None: ...


class S3Assembler:
    def __init__(self, s3: Any, bucket: str, *, min_part_bytes: int = MIN_PART_BYTES) -> None:
        self.s3 = s3
        self.bucket = bucket
        self.min_part = min_part_bytes

    def _get(self, key: str, start: int, end: int) -> bytes:
        """Bytes [start, end) of ``key``."""
        if end <= start:
            return b""
        response = self.s3.get_object(Bucket=self.bucket, Key=key, Range=f"bytes={start}-{end - 1}")
        return bytes(response["Body"].read())

    def concat(
        self, key: str, content_type: str, head: bytes, parts: Sequence[tuple[str, int]]
    ) -> None:
        parts = [(source, size) for source, size in parts if size]
        if len(head) + sum(size for _, size in parts) < self.min_part:
            body = head + b"".join(self._get(source, 0, size) for source, size in parts)
            self.s3.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType=content_type)
            return
        upload = self.s3.create_multipart_upload(
            Bucket=self.bucket, Key=key, ContentType=content_type
        )["UploadId"]
        done: list[dict[str, Any]] = []
        try:
            buffer = bytearray(head)

            def flush() -> None:
                number = len(done) + 1
                reply = self.s3.upload_part(
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=upload,
                    PartNumber=number,
                    Body=bytes(buffer),
                )
                done.append({"ETag": reply["ETag"], "PartNumber": number})
                buffer.clear()

            for source, size in parts:
                offset = 0
                if buffer:  # top the buffer up to a legal part before copying the rest
                    offset = min(self.min_part - len(buffer), size)
                    buffer += self._get(source, 0, offset)
                    if len(buffer) >= self.min_part:
                        flush()
                if size - offset >= self.min_part:
                    number = len(done) + 1
                    reply = self.s3.upload_part_copy(
                        Bucket=self.bucket,
                        Key=key,
                        UploadId=upload,
                        PartNumber=number,
                        CopySource={"Bucket": self.bucket, "Key": source},
                        CopySourceRange=f"bytes={offset}-{size - 1}",
                    )
                    done.append({"ETag": reply["CopyPartResult"]["ETag"], "PartNumber": number})
                elif size > offset:
                    buffer += self._get(source, offset, size)
            if buffer:
                flush()  # the last part may be small
            self.s3.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": done}
            )
        except BaseException:
            with contextlib.suppress(Exception):
                self.s3.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload)
            raise

    def delete(self, keys: Sequence[str]) -> None:
        for start in range(0, len(keys), 1000):  # DeleteObjects takes at most 1,000 keys
            batch = [{"Key": k} for k in keys[start : start + 1000]]
            if batch:
                self.s3.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})


class LocalAssembler:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._sink = LocalSink(root)

    def concat(
        self, key: str, content_type: str, head: bytes, parts: Sequence[tuple[str, int]]
    ) -> None:
        writer = self._sink.open(key, content_type)
        try:
            writer.write(head)
            for source, size in parts:
                if size:
                    with (self.root / source).open("rb") as part:
                        while block := part.read(8 * 1024 * 1024):
                            writer.write(block)
        except BaseException:
            writer.abort()
            raise
        writer.commit()

    def delete(self, keys: Sequence[str]) -> None:
        for key in keys:
            (self.root / key).unlink(missing_ok=True)
