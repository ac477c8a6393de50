"""Signed model bundles (issue 15): the signing key, who may use it, who may write models/.

- The key: an asymmetric KMS key (ECC_NIST_P256, SIGN_VERIFY) behind the alias the functions
  name (``[registry].signing_key_id`` names an existing key instead). KMS does not rotate
  asymmetric keys: rotate by creating a new key, re-pointing the alias and listing the old key
  in ``[registry].trusted_key_ids`` until the versions it signed are retired.
- Only the retrain role may kms:Sign; score, batch and monitor may only kms:GetPublicKey and
  kms:Verify (the key policy delegates to IAM, the CDK default, so deployers keep control).
- The bucket policy denies PutObject/DeleteObject under models/ to every principal but the
  retrain role and ``[registry].writers``. It denies object writes only: whoever manages the
  stack can still change the policy itself, so nobody is locked out of the bucket.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infrastructure.nag import acknowledge
from skylift.config import SkyliftConfig
from skylift.topology import Topology

__all__ = ["SIGN_ACTIONS", "VERIFY_ACTIONS", "ModelSigning"]

SIGN_ACTIONS = ["kms:Sign"]
VERIFY_ACTIONS = ["kms:GetPublicKey", "kms:Verify"]
# Writing these under models/ creates, replaces or removes a version or an alias.
MODEL_WRITE_ACTIONS = ["s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion"]


class ModelSigning(Construct):
    """The signing key and its grants, and the bucket policy that guards models/."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        config: SkyliftConfig,
        topology: Topology,
        bucket: s3.Bucket,
        functions: dict[str, lambda_.Function],
    ) -> None:
        super().__init__(scope, id)
        self.key: kms.Key | None = None
        self.policies: dict[str, iam.Policy] = {}
        models = f"{config.storage.models_prefix}{topology.model_name}/"
        # The functions that register versions and move aliases (retrain).
        writers = [
            functions[name].role
            for name, spec in topology.functions.items()
            if models in spec.s3_write
        ]
        bucket.add_to_resource_policy(
            iam.PolicyStatement(
                sid="OnlyRegistryWritersChangeModels",
                effect=iam.Effect.DENY,
                principals=[iam.AnyPrincipal()],
                actions=MODEL_WRITE_ACTIONS,
                resources=[bucket.arn_for_objects(f"{config.storage.models_prefix}*")],
                conditions={
                    "ArnNotLike": {
                        "aws:PrincipalArn": [
                            *(role.role_arn for role in writers if role is not None),
                            *config.registry.writers,
                        ]
                    }
                },
            )
        )
        if topology.signing_key is None:
            return
        key_resources, key_conditions = self._key(topology)
        for name, spec in topology.functions.items():
            actions = (SIGN_ACTIONS if spec.kms_sign else []) + (
                VERIFY_ACTIONS if spec.kms_verify else []
            )
            role = functions[name].role
            if not actions or role is None:
                continue
            # A policy of its own per role, so an acknowledgment below stays on it alone.
            policy = iam.Policy(
                self,
                f"{name.title()}Kms",
                roles=[role],
                statements=[
                    iam.PolicyStatement(
                        actions=actions, resources=key_resources, conditions=key_conditions
                    )
                ],
            )
            if key_conditions is not None:
                acknowledge(
                    policy,
                    "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:kms:<AWS::Region>:"
                    "<AWS::AccountId>:key/*]",
                    f"Only the key carrying {topology.signing_key} (kms:ResourceAliases).",
                )
            self.policies[name] = policy

    def _key(self, topology: Topology) -> tuple[list[str], dict[str, object] | None]:
        """The key's ARN for the grants (and a condition when only an alias names it)."""
        key_id = topology.signing_key
        assert key_id is not None
        if topology.provision_signing_key:
            self.key = kms.Key(
                self,
                "Key",
                description=f"Signs the versions of model {topology.model_name}",
                key_spec=kms.KeySpec.ECC_NIST_P256,
                key_usage=kms.KeyUsage.SIGN_VERIFY,
                alias=key_id.removeprefix("alias/"),
                # Old versions stay verifiable only while their key exists.
                removal_policy=cdk.RemovalPolicy.RETAIN,
            )
            cdk.CfnOutput(self, "SigningKeyArn", value=self.key.key_arn)
            return [self.key.key_arn], None
        stack = cdk.Stack.of(self)
        if key_id.startswith("arn:"):
            return [key_id], None
        if key_id.startswith("alias/"):
            # An existing key known by its alias: grant on whichever key carries that alias.
            return [stack.format_arn(service="kms", resource="key", resource_name="*")], {
                "ForAnyValue:StringEquals": {"kms:ResourceAliases": key_id}
            }
        return [stack.format_arn(service="kms", resource="key", resource_name=key_id)], None
