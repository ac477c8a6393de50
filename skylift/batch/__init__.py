"""Batch scoring: chunked readers, multipart writers and the per-object scoring job."""

from skylift.batch.errors import PermanentBatchError, UnsupportedFormatError
from skylift.batch.job import BatchJob, BatchManifest, output_keys
from skylift.batch.readers import RawChunk, detect_format, read_chunks

__all__ = [
    "BatchJob",
    "BatchManifest",
    "PermanentBatchError",
    "RawChunk",
    "UnsupportedFormatError",
    "detect_format",
    "output_keys",
    "read_chunks",
]
