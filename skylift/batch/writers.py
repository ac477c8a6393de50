"""Streaming S3 writers: multipart uploads that become visible only when complete."""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["MultipartWriter"]

logger = logging.getLogger(__name__)

PART_BYTES = 8 * 1024 * 1024  # S3 needs >= 5 MiB for every part but the last


class MultipartWriter:
    """Buffer bytes, upload 8 MiB parts, complete on :meth:`commit`, abort on :meth:`abort`.

    Nothing is visible under ``key`` until commit: a failure anywhere (a part, the completion,
    the caller) aborts the upload, and if even the abort fails the bucket's lifecycle rule
    reaps the incomplete upload; never a partial object.
    """

    def __init__(self, s3: Any, bucket: str, key: str, content_type: str) -> None:
        self._s3 = s3
        self.bucket = bucket
        self.key = key
        self._content_type = content_type
        self._buffer = bytearray()
        self._parts: list[dict[str, Any]] = []
        self._upload_id: str | None = None
        self.bytes_written = 0
        self._done = False  # committed or aborted

    def write(self, data: bytes) -> None:
        self._buffer += data
        self.bytes_written += len(data)
        if len(self._buffer) >= PART_BYTES:
            self._upload_part()

    def _upload_part(self) -> None:
        if self._upload_id is None:
            self._upload_id = self._s3.create_multipart_upload(
                Bucket=self.bucket, Key=self.key, ContentType=self._content_type
            )["UploadId"]
        number = len(self._parts) + 1
        response = self._s3.upload_part(
            Bucket=self.bucket,
            Key=self.key,
            UploadId=self._upload_id,
            PartNumber=number,
            Body=bytes(self._buffer),
        )
        self._parts.append({"ETag": response["ETag"], "PartNumber": number})
        self._buffer.clear()

    def commit(self) -> None:
        """Make the object visible; on any failure, abort the upload this writer started."""
        if self._done:
            return
        try:
            if self._upload_id is None:
                # Small output: one PUT is atomic too.
                self._s3.put_object(
                    Bucket=self.bucket,
                    Key=self.key,
                    Body=bytes(self._buffer),
                    ContentType=self._content_type,
                )
            else:
                if self._buffer:
                    self._upload_part()
                self._s3.complete_multipart_upload(
                    Bucket=self.bucket,
                    Key=self.key,
                    UploadId=self._upload_id,
                    MultipartUpload={"Parts": self._parts},
                )
        except BaseException:
            self.abort()
            raise
        self._done = True

    def abort(self) -> None:
        """Abort the multipart upload, if one was started and not completed (idempotent)."""
        if self._done:
            return
        self._done = True
        if self._upload_id is None:
            return
        try:
            self._s3.abort_multipart_upload(
                Bucket=self.bucket, Key=self.key, UploadId=self._upload_id
            )
        except Exception:
            # The bucket's lifecycle rule reaps incomplete uploads after a day; say so.
            logger.warning(
                "could not abort the multipart upload %s of s3://%s/%s; the lifecycle rule "
                "will reap it",
                self._upload_id,
                self.bucket,
                self.key,
                exc_info=True,
            )
