"""The fan-out's steps on S3, one method per state of the state machine (state_machine.py).

``start`` (in the batch function) starts an execution named after the object version and
model version; ``plan`` writes the ranges as the Map's items; ``score`` scores one range into
staging; ``commit`` assembles the outputs and writes the manifest last (conditional PUT, as the
single path does); ``fail`` writes the `failed` manifest naming the range that failed.
The model version is pinned at ``start``: every range scores with the same model.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from skylift.batch.assemble import S3Assembler
from skylift.batch.errors import PermanentBatchError
from skylift.batch.fanout import (
    RangeFailedError,
    RangeOutcome,
    Staging,
    commit_ranges,
    execution_name,
    score_range,
)
from skylift.batch.job import BatchJob
from skylift.batch.manifest import BatchManifest, output_keys
from skylift.batch.plan import ByteRange, plan_ranges
from skylift.batch.readers import detect_format
from skylift.batch.sinks import S3Sink
from skylift.config import SkyliftConfig
from skylift.scoring import Scorer

__all__ = ["FanoutService"]

logger = logging.getLogger(__name__)


class FanoutService:
    def __init__(
        self, config: SkyliftConfig, s3: Any, scorer_for: Callable[[int | None], Scorer]
    ) -> None:
        self.config = config
        self.s3 = s3
        self._scorer_for = scorer_for

    # ---- in the batch function ---------------------------------------------------------------

    def should_fan_out(self, key: str, size: int) -> bool:
        try:
            _, gzipped = detect_format(key)
        except PermanentBatchError:
            return False  # the single path writes the failed manifest
        return size >= self.config.batch.fanout_min_bytes and not gzipped

    def start(
        self, sfn: Any, state_machine_arn: str, bucket: str, key: str, head: dict[str, Any]
    ) -> str | None:
        """Start the execution for this object version; None when one already exists."""
        scorer = self._scorer_for(None)
        version = head.get("VersionId") or head["ETag"]
        name = execution_name(bucket, key, version, scorer.version)
        document = {
            "bucket": bucket,
            "key": key,
            "etag": head["ETag"],
            "run": name,
            "model_version": scorer.version,
        }
        try:
            sfn.start_execution(
                stateMachineArn=state_machine_arn, name=name, input=json.dumps(document)
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ExecutionAlreadyExists":
                logger.info("s3://%s/%s: fan-out %s already started", bucket, key, name)
                return None
            raise
        logger.info("s3://%s/%s: fanned out as execution %s", bucket, key, name)
        return name

    # ---- the state machine's steps -----------------------------------------------------------

    def plan(self, document: dict[str, Any]) -> dict[str, Any]:
        from aws_lambda_powertools.utilities.streaming import S3Object

        bucket, key = document["bucket"], document["key"]
        fmt, gzipped = detect_format(key)
        size = self.s3.head_object(Bucket=bucket, Key=key)["ContentLength"]
        wanted = -(-size // self.config.batch.fanout_range_bytes)
        stream = S3Object(bucket=bucket, key=key, boto3_client=self.s3)
        planned = plan_ranges(stream, fmt, size, ranges=wanted, gzipped=gzipped)
        staging = Staging(document["run"])
        self.s3.put_object(
            Bucket=bucket,
            Key=staging.ranges(),
            Body=json.dumps([r.model_dump() for r in planned]).encode(),
            ContentType="application/json",
        )
        return {**document, "ranges_key": staging.ranges(), "range_count": len(planned)}

    def score(self, document: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
        from aws_lambda_powertools.utilities.streaming import S3Object

        bucket, key = document["bucket"], document["key"]
        byte_range = ByteRange.model_validate(item)
        staging = Staging(document["run"])
        scorer = self._scorer_for(document.get("model_version"))
        stream = S3Object(bucket=bucket, key=key, boto3_client=self.s3)
        job = BatchJob(self.config, lambda: scorer)
        try:
            outcome = score_range(
                job, scorer, stream, key, byte_range, S3Sink(self.s3, bucket), staging
            )
        except RangeFailedError as exc:
            self.s3.put_object(
                Bucket=bucket,
                Key=staging.failure(byte_range.index),
                Body=json.dumps({"index": byte_range.index, "reason": str(exc)}).encode(),
            )
            raise
        self.s3.put_object(
            Bucket=bucket,
            Key=staging.outcome(byte_range.index),
            Body=outcome.model_dump_json().encode(),
            ContentType="application/json",
        )
        return {"index": byte_range.index, "rows_read": outcome.rows_read}

    def commit(self, document: dict[str, Any]) -> dict[str, Any]:
        bucket, key = document["bucket"], document["key"]
        staging = Staging(document["run"])
        keys = output_keys(self.config, key)
        sink = S3Sink(self.s3, bucket)
        existing, manifest_etag = sink.read_manifest(keys.manifest)
        base = self._base(document)
        if (
            existing is not None
            and existing.input_etag == document["etag"]
            and (existing.model_version == document.get("model_version"))
        ):
            return {"status": existing.status, "duplicate": True}  # a retried commit
        outcomes = [
            RangeOutcome.model_validate_json(
                self.s3.get_object(Bucket=bucket, Key=staging.outcome(i))["Body"].read()
            )
            for i in range(document["range_count"])
        ]
        assembler = S3Assembler(self.s3, bucket)
        manifest = commit_ranges(outcomes, assembler, keys, staging, base)
        sink.write_manifest(keys.manifest, manifest, manifest_etag)
        assembler.delete(staging.all_keys(document["range_count"]))
        return {"status": manifest.status, "rows_read": manifest.rows_read}

    def fail(self, document: dict[str, Any]) -> dict[str, Any]:
        bucket, key = document["bucket"], document["key"]
        staging = Staging(document["run"])
        keys = output_keys(self.config, key)
        listed = self.s3.list_objects_v2(Bucket=bucket, Prefix=staging.root)
        failures = [
            json.loads(self.s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read())
            for o in sorted(listed.get("Contents", []), key=lambda o: o["Key"])
            if o["Key"].endswith(".failed.json")
        ]
        error = document.get("error") or {}
        if failures:
            reason, failed_range = failures[0]["reason"], failures[0]["index"]
        else:
            reason = f"{error.get('Error', 'error')}: {error.get('Cause', '')}".strip()
            failed_range = None
        manifest = BatchManifest(
            status="failed",
            reason=reason,
            failed_range=failed_range,
            finished_at=datetime.now(UTC),
            **self._base(document),
        )
        sink = S3Sink(self.s3, bucket)
        _, etag = sink.read_manifest(keys.manifest)
        sink.write_manifest(keys.manifest, manifest, etag)
        return {"status": "failed", "failed_range": failed_range, "reason": reason}

    def _base(self, document: dict[str, Any]) -> dict[str, Any]:
        keys = output_keys(self.config, document["key"])
        scorer = self._scorer_for(document.get("model_version"))
        return {
            "input_bucket": document["bucket"],
            "input_key": document["key"],
            "input_etag": document["etag"],
            "predictions_key": keys.predictions,
            "model": scorer.name,
            "model_version": scorer.version,
            "started_at": datetime.now(UTC),
        }
