"""Signed manifests (issue 15): writing to the bucket is not enough to run code.

Every refusal is checked before the artifact reaches the unpickler: the tampered artifact is a
pickle that creates a file, and the file must never appear.
"""

from __future__ import annotations

import base64
import json

import boto3
import pytest

from skylift.bundle import IntegrityError
from skylift.model_holder import ModelHolder, ModelUnavailableError
from skylift.registry import ModelRegistry
from skylift.signing import KmsSigning, SignatureError
from tests.helpers import pickle_payload, tamper_champion


def _root(config, version: int) -> str:
    return f"{config.storage.models_prefix}{config.model.name}/versions/{version}/"


def _copy(s3, config, source: int, target: int, files=("model.joblib", "manifest.sig")) -> None:
    bucket = config.storage.bucket
    for name in (*files, "manifest.json"):
        s3.copy_object(
            Bucket=bucket,
            Key=_root(config, target) + name,
            CopySource={"Bucket": bucket, "Key": _root(config, source) + name},
        )


def _other_key(alias: str | None = None) -> str:
    kms = boto3.client("kms", region_name="us-east-1")
    key = kms.create_key(KeyUsage="SIGN_VERIFY", KeySpec="ECC_NIST_P256")["KeyMetadata"]
    if alias:
        kms.create_alias(AliasName=alias, TargetKeyId=key["KeyId"])
    return str(key["Arn"])


def test_registration_signs_the_manifest_and_load_verifies_it(registry, churn_bundle, s3):
    manifest = registry.register(churn_bundle)
    signature = registry.signature(manifest.version)
    assert signature is not None
    assert signature.algorithm == "ECDSA_SHA_256"
    assert (signature.statement.model, signature.statement.version) == ("churn", 1)
    assert signature.statement.signer == "arn:aws:sts::123456789012:user/moto"
    assert ":key/" in signature.key_id
    assert registry.load(1).version == 1


def test_the_signature_is_plain_ecdsa_p256_over_the_statement(registry, churn_bundle):
    """Pins the wire format: any P-256 library (here `cryptography`) checks what KMS signed,
    with the public key from kms:GetPublicKey."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import load_der_public_key

    registry.register(churn_bundle)
    signature = registry.signature(1)
    der = boto3.client("kms", region_name="us-east-1").get_public_key(KeyId=signature.key_id)
    public_key = load_der_public_key(der["PublicKey"])
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    public_key.verify(
        base64.b64decode(signature.signature),
        signature.statement.message(),
        ec.ECDSA(hashes.SHA256()),
    )


def test_the_attack_overwritten_artifact_and_hash_never_unpickled(
    registry, churn_bundle, s3, churn_config, tmp_path
):
    registry.register(churn_bundle)
    marker = tmp_path / "pwned"
    tamper_champion(s3, churn_config, 1, marker)
    with pytest.raises(SignatureError, match="signature is over a different manifest"):
        registry.load(1)
    assert not marker.exists()


def test_without_signing_the_same_attack_runs(registry, churn_bundle, s3, churn_config, tmp_path):
    """What signing closes: the hash check alone trusts a manifest from the same bucket."""
    registry.register(churn_bundle)
    marker = tmp_path / "pwned"
    tamper_champion(s3, churn_config, 1, marker)
    unsigned = ModelRegistry.from_config(
        churn_config.model_copy(
            update={"registry": churn_config.registry.model_copy(update={"signing": "none"})}
        ),
        s3_client=s3,
    )
    unsigned.load(1)  # "loads": the hash matches, and unpickling ran the payload
    assert marker.exists()


def test_a_missing_signature_is_refused(registry, churn_bundle, s3, churn_config, tmp_path):
    registry.register(churn_bundle)
    marker = tmp_path / "pwned"
    tamper_champion(s3, churn_config, 1, marker)
    s3.delete_object(
        Bucket=churn_config.storage.bucket, Key=_root(churn_config, 1) + "manifest.sig"
    )
    with pytest.raises(SignatureError, match="unsigned"):
        registry.load(1)
    assert not marker.exists()


def test_a_bundle_signed_with_another_key_is_refused(
    registry, churn_bundle, s3, churn_config, tmp_path
):
    """The attacker re-signs the tampered manifest with a KMS key of their own."""
    registry.register(churn_bundle)
    marker = tmp_path / "pwned"
    tamper_champion(s3, churn_config, 1, marker)
    bucket, root = churn_config.storage.bucket, _root(churn_config, 1)
    manifest = s3.get_object(Bucket=bucket, Key=root + "manifest.json")["Body"].read()
    theirs = KmsSigning(_other_key(), kms_client=boto3.client("kms", region_name="us-east-1"))
    forged = theirs.sign(manifest, model="churn", version=1)
    s3.put_object(Bucket=bucket, Key=root + "manifest.sig", Body=forged.to_bytes())
    with pytest.raises(SignatureError, match="not a trusted key"):
        registry.load(1)
    assert not marker.exists()


def test_a_signature_naming_our_key_but_made_for_other_content_is_refused(
    registry, churn_bundle, s3, churn_config, tmp_path
):
    """The statement is rewritten to name the tampered manifest; the signature stays ours."""
    registry.register(churn_bundle)
    marker = tmp_path / "pwned"
    tamper_champion(s3, churn_config, 1, marker)
    bucket, root = churn_config.storage.bucket, _root(churn_config, 1)
    manifest = s3.get_object(Bucket=bucket, Key=root + "manifest.json")["Body"].read()
    signature = json.loads(s3.get_object(Bucket=bucket, Key=root + "manifest.sig")["Body"].read())
    import hashlib

    signature["statement"]["manifest_sha256"] = hashlib.sha256(manifest).hexdigest()
    s3.put_object(Bucket=bucket, Key=root + "manifest.sig", Body=json.dumps(signature).encode())
    with pytest.raises(SignatureError, match="does not verify with KMS key"):
        registry.load(1)
    assert not marker.exists()


def test_an_old_signed_version_replayed_under_a_new_number_is_refused(
    registry, churn_bundle, s3, churn_config
):
    registry.register(churn_bundle)
    registry.register(churn_bundle)
    _copy(s3, churn_config, source=1, target=3)  # all three files, signature intact
    with pytest.raises(
        SignatureError, match="signed as churn version 1, stored as churn version 3"
    ):
        registry.load(3)


def test_a_moved_manifest_is_refused_without_signing_too(registry, churn_bundle, s3, churn_config):
    registry.register(churn_bundle)
    _copy(s3, churn_config, source=1, target=2, files=("model.joblib",))
    unsigned = ModelRegistry(churn_config.storage.bucket, "churn", s3_client=s3)
    with pytest.raises(
        SignatureError, match="describes churn version 1, stored as churn version 2"
    ):
        unsigned.load(2)


def test_an_artifact_swapped_under_a_valid_signature_fails_the_hash(
    registry, churn_bundle, s3, churn_config, tmp_path
):
    registry.register(churn_bundle)
    marker = tmp_path / "pwned"
    s3.put_object(
        Bucket=churn_config.storage.bucket,
        Key=_root(churn_config, 1) + "model.joblib",
        Body=pickle_payload(marker),
    )
    with pytest.raises(IntegrityError):
        registry.load(1)
    assert not marker.exists()


def test_after_the_alias_is_repointed_old_versions_verify_only_if_the_old_key_is_trusted(
    churn_config, churn_bundle, s3
):
    old = ModelRegistry.from_config(churn_config, s3_client=s3)
    old.register(churn_bundle)
    kms = boto3.client("kms", region_name="us-east-1")
    old_key = old.signature(1).key_id
    new_key = _other_key()
    kms.update_alias(AliasName=churn_config.default_signing_alias, TargetKeyId=new_key)
    rotated = ModelRegistry.from_config(churn_config, s3_client=s3)
    assert rotated.register(churn_bundle).version == 2
    assert rotated.signature(2).key_id == new_key
    with pytest.raises(SignatureError, match="not a trusted key"):
        rotated.load(1)
    registry_config = churn_config.registry.model_copy(update={"trusted_key_ids": (old_key,)})
    trusting = ModelRegistry.from_config(
        churn_config.model_copy(update={"registry": registry_config}), s3_client=s3
    )
    assert trusting.load(1).version == 1
    assert trusting.load(2).version == 2


def test_signing_none_writes_no_signature_and_loads_unsigned(churn_config, churn_bundle, s3):
    config = churn_config.model_copy(
        update={"registry": churn_config.registry.model_copy(update={"signing": "none"})}
    )
    assert config.signing_key is None
    registry = ModelRegistry.from_config(config, s3_client=s3)
    registry.register(churn_bundle)
    assert registry.signature(1) is None
    assert registry.load(1).version == 1


def test_a_missing_key_fails_registration_with_the_field_named(churn_config, churn_bundle, s3):
    config = churn_config.model_copy(
        update={
            "registry": churn_config.registry.model_copy(
                update={"signing_key_id": "alias/no-such-key"}
            )
        }
    )
    registry = ModelRegistry.from_config(config, s3_client=s3)
    with pytest.raises(SignatureError, match=r"alias/no-such-key.*\[registry\]\.signing_key_id"):
        registry.register(churn_bundle)
    assert registry.list_versions() == []  # nothing half-registered is visible


def test_a_warm_holder_keeps_serving_and_counts_an_unsigned_promotion(
    registry, churn_bundle, s3, churn_config, tmp_path
):
    registry.promote(registry.register(churn_bundle).version)
    holder = ModelHolder(registry, 0.0)
    assert holder.current().version == 1
    second = registry.register(churn_bundle).version
    marker = tmp_path / "pwned"
    tamper_champion(s3, churn_config, second, marker)
    registry.promote(second)
    assert holder.current().version == 1
    assert holder.take_reload_failures() == 1
    assert "SignatureError" in holder.status().reason
    assert not marker.exists()


def test_a_cold_holder_has_no_model_and_says_why(
    registry, churn_bundle, s3, churn_config, tmp_path
):
    registry.promote(registry.register(churn_bundle).version)
    marker = tmp_path / "pwned"
    tamper_champion(s3, churn_config, 1, marker)
    holder = ModelHolder(registry, 60.0)
    with pytest.raises(ModelUnavailableError, match="signature is over a different manifest"):
        holder.current()
    assert not marker.exists()


def test_after_a_snapstart_restore_the_kms_connections_are_reopened(churn_config, s3):
    """Pooled connections do not survive a snapshot: the restore hook closes KMS's too."""
    closed: list[str] = []

    class Recording:
        def __init__(self, name: str) -> None:
            self.name = name

        def close(self) -> None:
            closed.append(self.name)

    signing = KmsSigning(
        "alias/k", kms_client=Recording("kms"), sts_factory=lambda: Recording("sts")
    )
    registry = ModelRegistry(churn_config.storage.bucket, "churn", s3_client=s3, signing=signing)
    registry.close_connections()
    assert closed == ["kms"]  # no STS client was ever made: nothing signed yet
