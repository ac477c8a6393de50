"""The data bucket and its access-log bucket: encrypted, versioned, private, TLS-only."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_s3 as s3
from constructs import Construct

from skylift.topology import Topology


class Storage(Construct):
    """The data bucket (encrypted, versioned, private, TLS-only, logged) and its log bucket."""

    def __init__(self, scope: Construct, id: str, topology: Topology) -> None:
        super().__init__(scope, id)
        # What every bucket here gets: encrypted, private, TLS-only, versioned, kept on delete.
        secure: dict[str, Any] = {
            "encryption": s3.BucketEncryption.S3_MANAGED,
            "block_public_access": s3.BlockPublicAccess.BLOCK_ALL,
            "enforce_ssl": True,
            "versioned": True,
            "removal_policy": cdk.RemovalPolicy.RETAIN,
        }
        self.logs = s3.Bucket(
            self,
            "AccessLogs",
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_PREFERRED,
            lifecycle_rules=[s3.LifecycleRule(expiration=cdk.Duration.days(365))],
            **secure,
        )
        self.bucket = s3.Bucket(
            self,
            "Data",
            server_access_logs_bucket=self.logs,
            server_access_logs_prefix="data/",
            **secure,
            lifecycle_rules=[
                s3.LifecycleRule(prefix=topology.capture_prefix, expiration=cdk.Duration.days(90)),
                s3.LifecycleRule(
                    prefix=topology.predictions_prefix,
                    transitions=[
                        s3.Transition(
                            storage_class=s3.StorageClass.INFREQUENT_ACCESS,
                            transition_after=cdk.Duration.days(30),
                        )
                    ],
                    expiration=cdk.Duration.days(365),
                ),
                s3.LifecycleRule(
                    prefix=topology.quarantine_prefix,
                    expiration=cdk.Duration.days(90),
                ),
                s3.LifecycleRule(
                    abort_incomplete_multipart_upload_after=cdk.Duration.days(2),
                    noncurrent_version_expiration=cdk.Duration.days(30),
                ),
            ],
        )
