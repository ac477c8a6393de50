"""The batch function's service: S3 event records in, one BatchJob per object, metrics out.

Keeps the champion warm across invocations and re-checks the alias at most every
``[api].model_refresh_seconds`` (one HEAD), like the scoring API.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from skylift.batch.job import BatchJob, BatchManifest
from skylift.config import SkyliftConfig
from skylift.registry import ModelRegistry
from skylift.scoring import Scorer

__all__ = ["BatchService"]

logger = logging.getLogger(__name__)


class BatchService:
    def __init__(self, config: SkyliftConfig, s3: Any) -> None:
        self.config = config
        self.s3 = s3
        self.registry = ModelRegistry.from_config(config, s3_client=s3)
        self._scorer: Scorer | None = None
        self._etag: str | None = None
        self._checked_at = float("-inf")
        self.job = BatchJob(config, self.scorer)

    def scorer(self) -> Scorer:
        """The champion, loaded once and re-checked at most every refresh interval."""
        now = time.monotonic()
        if self._scorer is None or now - self._checked_at >= self.config.api.model_refresh_seconds:
            self._checked_at = now
            etag = self.registry.alias_etag()
            if self._scorer is None or etag != self._etag:
                self._scorer = Scorer(self.registry.load_alias())
                self._etag = etag
        return self._scorer

    def score_object(self, bucket: str, key: str, etag: str | None) -> BatchManifest | None:
        """Score one object; None when the key is outside incoming/ (not ours to score)."""
        if not key.startswith(self.config.storage.incoming_prefix):
            logger.info(
                "ignoring s3://%s/%s: not under %s",
                bucket,
                key,
                self.config.storage.incoming_prefix,
            )
            return None
        manifest = self.job.score_s3_object(self.s3, bucket, key, etag)
        logger.info(
            "s3://%s/%s: %s, read %s = scored %s + quarantined %s%s",
            bucket,
            key,
            manifest.status,
            manifest.rows_read,
            manifest.rows_scored,
            manifest.rows_quarantined,
            " (duplicate: already scored)" if manifest.duplicate else "",
        )
        return manifest
