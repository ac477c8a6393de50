"""SkyliftStack: the whole deployment for one SkyliftConfig, one construct per concern.

Built from :func:`skylift.topology.describe`, the same description the local stack
provisions from, so the two cannot drift apart unnoticed (tests/infrastructure checks it).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aws_cdk as cdk
from constructs import Construct

from infrastructure.components import (
    BatchFanout,
    BatchTrigger,
    Functions,
    ModelSigning,
    Observability,
    Scheduling,
    Serving,
    Storage,
)
from infrastructure.components.retention import log_retention
from skylift.config import SkyliftConfig
from skylift.topology import describe

__all__ = ["SkyliftStack"]


class SkyliftStack(cdk.Stack):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        config: SkyliftConfig,
        code_dir: Path,
        layer_dirs: Mapping[str, Path],
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, id, **kwargs)
        topology = describe(config)
        for key, value in topology.tags.items():
            cdk.Tags.of(self).add(key, value)
        self.storage = Storage(self, "Storage", topology)
        self.functions = Functions(
            self,
            "Functions",
            config=config,
            topology=topology,
            bucket=self.storage.bucket,
            code_dir=code_dir,
            layer_dirs=layer_dirs,
        )
        fns = self.functions.functions
        self.signing = ModelSigning(
            self,
            "Signing",
            config=config,
            topology=topology,
            bucket=self.storage.bucket,
            functions=fns,
        )
        self.serving = Serving(
            self, "Serving", config=config, topology=topology, function=fns["score"]
        )
        self.batch = BatchTrigger(
            self,
            "Batch",
            topology=topology,
            bucket=self.storage.bucket,
            function=fns["batch"],
            log_retention=log_retention(config.deploy.log_retention_days),
        )
        self.scheduling = Scheduling(
            self, "Scheduling", topology=topology, bucket=self.storage.bucket, functions=fns
        )
        self.observability = Observability(
            self,
            "Observability",
            config=config,
            topology=topology,
            api=self.serving.api,
            dlq=self.batch.dlq,
            invocation_failures=self.scheduling.failures,
            functions=fns,
        )
        self.fanout = BatchFanout(
            self,
            "BatchFanout",
            topology=topology,
            bucket=self.storage.bucket,
            fanout_function=fns["fanout"],
            batch_function=fns["batch"],
            topic=self.observability.topic,
            log_retention_days=config.deploy.log_retention_days,
        )
        cdk.CfnOutput(self, "ApiUrl", value=self.serving.api.url)
        cdk.CfnOutput(self, "BucketName", value=self.storage.bucket.bucket_name)
