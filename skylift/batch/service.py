"""The batch function's service: S3 event records in, one BatchJob per object, metrics out.

Keeps the champion warm across invocations in the same :class:`ModelHolder` as the scoring
API: the alias is re-checked at most every ``[api].model_refresh_seconds``; a failed reload
keeps the model in hand (counted and logged); with no model at all the file is not scored and
the message goes back to SQS for another try.
"""

from __future__ import annotations

import json
import logging
from typing import Any, NoReturn
from urllib.parse import unquote_plus

from aws_lambda_powertools.utilities.data_classes import S3Event

from skylift.batch.errors import MalformedMessageError, StaleEventError
from skylift.batch.fanout_service import FanoutService
from skylift.batch.job import BatchJob, BatchManifest
from skylift.config import SkyliftConfig
from skylift.model_holder import ModelHolder
from skylift.registry import ModelRegistry
from skylift.scoring import Scorer

__all__ = ["BatchService"]

logger = logging.getLogger(__name__)


class BatchService:
    def __init__(
        self,
        config: SkyliftConfig,
        s3: Any,
        *,
        sfn: Any = None,
        fanout_state_machine_arn: str | None = None,
    ) -> None:
        self.config = config
        self.s3 = s3
        self.sfn = sfn
        self.fanout_state_machine_arn = fanout_state_machine_arn
        self._pinned: Scorer | None = None
        self.registry = ModelRegistry.from_config(config, s3_client=s3)
        self.holder = ModelHolder(
            self.registry,
            config.api.model_refresh_seconds,
            allow_version_skew=config.model.allow_version_skew,
            runtime=config.deploy.runtime,
        )
        self.job = BatchJob(config, self.scorer)

    def scorer(self) -> Scorer:
        """The champion; raises ModelUnavailableError (the message is retried) without one."""
        return self.holder.current()

    def scorer_for(self, version: int | None) -> Scorer:
        """The champion (None), or a pinned version: every range of a fan-out scores with
        the version its execution started with, even if a promotion lands meanwhile."""
        current = self.scorer()
        if version is None or current.version == version:
            return current
        if self._pinned is None or self._pinned.version != version:
            self._pinned = Scorer(
                self.registry.load(version, allow_version_skew=self.config.model.allow_version_skew)
            )
        return self._pinned

    def fanout(self) -> FanoutService:
        return FanoutService(self.config, self.s3, self.scorer_for)

    def score_message(self, body: str, message_id: str) -> list[BatchManifest]:
        """Score the objects of one SQS message; raises (the message is retried) on anything
        transient, and on a malformed message, which is logged and left for the DLQ: it is
        kept there for whoever sent it, rather than dropped with only a log line."""
        try:
            notification = json.loads(body)
        except ValueError as exc:
            self._malformed(message_id, body, f"the body is not JSON ({exc})")
        try:
            return self.score_record(notification)
        except (KeyError, TypeError, AttributeError) as exc:
            self._malformed(message_id, body, f"not an S3 event notification ({exc!r})")

    def score_record(self, body: Any) -> list[BatchManifest]:
        """Score the objects of one SQS message body (an S3 event notification); returns the
        manifests of the files scored now (not duplicates, not keys outside incoming/)."""
        if isinstance(body, dict) and body.get("Event") == "s3:TestEvent":
            logger.info("ignoring the s3:TestEvent S3 sends when a notification is configured")
            return []
        objects = [
            # Keys arrive URL-encoded (spaces as '+', unicode as %XX); S3Event's per-record key
            # does not decode them (only its first-record `object_key` does).
            (
                r.s3.bucket.name,
                unquote_plus(r.s3.get_object.key),
                r.s3.get_object.get("eTag"),
                r.s3.get_object.get("versionId"),
            )
            for r in S3Event(body).records
        ]  # read them all first: a malformed record fails the message before any is scored
        manifests = []
        for bucket, key, etag, version_id in objects:
            manifest = self.score_object(bucket, key, f'"{etag}"' if etag else None, version_id)
            if manifest is not None and not manifest.duplicate:
                manifests.append(manifest)
        return manifests

    def score_object(
        self, bucket: str, key: str, etag: str | None, version_id: str | None = None
    ) -> BatchManifest | None:
        """Score the object version an event names; None when the key is outside incoming/
        (not ours to score) or the event is stale (a newer upload's event scores that one)."""
        if not key.startswith(self.config.storage.incoming_prefix):
            logger.info(
                "ignoring s3://%s/%s: not under %s",
                bucket,
                key,
                self.config.storage.incoming_prefix,
            )
            return None
        if self.fanout_state_machine_arn:
            version = {"VersionId": version_id} if version_id else {}
            head = self.s3.head_object(Bucket=bucket, Key=key, **version)
            fanout = self.fanout()
            if fanout.should_fan_out(key, head["ContentLength"]):
                # Too big for one invocation: the state machine scores it; this returns.
                fanout.start(self.sfn, self.fanout_state_machine_arn, bucket, key, head)
                return None
        try:
            manifest = self.job.score_s3_object(self.s3, bucket, key, etag, version_id=version_id)
        except StaleEventError as exc:
            logger.warning("skipping a stale event: %s", exc)
            return None
        except Exception:
            # Transient (classified in skylift.batch.errors): nothing final was written.
            logger.exception("s3://%s/%s: not scored now; the message will be retried", bucket, key)
            raise
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

    @staticmethod
    def _malformed(message_id: str, body: str, problem: str) -> NoReturn:
        logger.error(
            "SQS message %s: %s; it goes to the dead-letter queue after its last delivery",
            message_id,
            problem,
            extra={"sqs_body": body},
        )
        raise MalformedMessageError(f"SQS message {message_id}: {problem}")
