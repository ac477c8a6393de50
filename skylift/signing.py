"""Signed manifests: writing to the bucket is not enough to run code.

A version's ``manifest.json`` names its model, version and the artifact's sha256. At
registration :class:`KmsSigning` signs a small statement about those exact bytes (model,
version, sha256 of the manifest, who signed and when) with an asymmetric KMS key
(ECC_NIST_P256, ECDSA_SHA_256) and stores it as ``manifest.sig`` beside the manifest. Before
any artifact byte is read, :meth:`KmsSigning.verify` checks, in order: the signature exists,
it is a statement about this manifest, for this model and version number (an old signed
version replayed under a new number is refused), by a trusted key, and KMS says it verifies.

Verification calls ``kms:Verify`` (one call per load: cold start and promotions) rather than
checking locally with ``cryptography``: that package is about 17 MB unzipped and the layer
has about 8.5 MB to spare. The trusted keys' ARNs are learned once per key id with
``kms:GetPublicKey`` (which also checks the key is an ECC_NIST_P256 signing key) and cached.

The statement is signed as a RAW message (KMS hashes it with SHA-256): moto does not
implement ``MessageType=DIGEST`` (it hashes the digest again), and RAW keeps signatures
checkable with any ECDSA P-256 library.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Final, Literal

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict, ValidationError

from skylift.bundle import BundleError

__all__ = [
    "ALGORITHM",
    "KEY_SPEC",
    "SIGNATURE_FILE",
    "KmsSigning",
    "ManifestSignature",
    "SignatureError",
    "SignedStatement",
]

logger = logging.getLogger(__name__)

SIGNATURE_FILE = "manifest.sig"
ALGORITHM: Final = "ECDSA_SHA_256"
KEY_SPEC = "ECC_NIST_P256"


class SignatureError(BundleError):
    """The manifest's signature is missing or does not hold: never load the artifact."""


class SignedStatement(BaseModel):
    """What the key signs: this manifest (by hash) is version ``version`` of ``model``."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())
    model: str
    version: int
    manifest_sha256: str
    signer: str  # the caller identity that signed (an IAM role or user ARN), "" if unknown
    signed_at: datetime

    def message(self) -> bytes:
        """The exact bytes signed: canonical JSON (sorted keys, no spaces)."""
        return json.dumps(
            self.model_dump(mode="json"), sort_keys=True, separators=(",", ":")
        ).encode()


class ManifestSignature(BaseModel):
    """``manifest.sig``: the statement, the key that signed it and the signature."""

    model_config = ConfigDict(extra="forbid")
    format_version: int = 1
    statement: SignedStatement
    key_id: str  # the signing key's ARN, as KMS answered Sign
    algorithm: Literal["ECDSA_SHA_256"] = ALGORITHM
    signature: str  # base64 of the DER-encoded ECDSA signature

    def to_bytes(self) -> bytes:
        return self.model_dump_json(indent=2).encode()


def _key_id(key: str) -> str:
    """A key's id from its id or ARN (GetPublicKey answers an ARN on AWS, the id on moto)."""
    return key.rsplit("/", 1)[-1] if key.startswith("arn:") else key


class KmsSigning:
    """Sign with ``key_id`` and accept signatures by it or by ``trusted_key_ids``.

    ``key_id`` may be an alias (``alias/...``): KMS resolves it, and the signature records
    the key's ARN, so re-pointing the alias for rotation leaves old versions verifiable as
    long as the old key is listed in ``trusted_key_ids``.
    """

    def __init__(
        self,
        key_id: str,
        *,
        trusted_key_ids: Sequence[str] = (),
        kms_client: Any,
        sts_factory: Callable[[], Any] | None = None,
    ) -> None:
        self.key_id = key_id
        self._trusted = (key_id, *trusted_key_ids)
        self._kms = kms_client
        # STS only names the signer at registration: made on first use, so loads never pay
        # for creating its client (hundreds of ms at a cold start).
        self._sts_factory = sts_factory
        self._sts: Any | None = None
        self._resolved: dict[str, str] = {}  # configured id/alias -> key id, per GetPublicKey

    def close_connections(self) -> None:
        """Drop pooled connections (dead after a SnapStart restore); clients reopen them."""
        self._kms.close()
        if self._sts is not None:
            self._sts.close()

    # ---- signing (registration) ----------------------------------------------------------------

    def sign(self, manifest: bytes, *, model: str, version: int) -> ManifestSignature:
        """Sign the statement that ``manifest`` is ``version`` of ``model``."""
        statement = SignedStatement(
            model=model,
            version=version,
            manifest_sha256=hashlib.sha256(manifest).hexdigest(),
            signer=self._caller(),
            signed_at=datetime.now(UTC),
        )
        try:
            answer = self._kms.sign(
                KeyId=self.key_id,
                Message=statement.message(),
                MessageType="RAW",
                SigningAlgorithm=ALGORITHM,
            )
        except (ClientError, BotoCoreError) as exc:
            raise SignatureError(
                f"cannot sign {model} version {version} with KMS key {self.key_id}: {exc} "
                "(check [registry].signing_key_id and that this role may kms:Sign; "
                '[registry].signing = "none" turns signing off)'
            ) from exc
        return ManifestSignature(
            statement=statement,
            key_id=str(answer["KeyId"]),
            signature=base64.b64encode(answer["Signature"]).decode(),
        )

    def _caller(self) -> str:
        if self._sts_factory is None:
            return ""
        try:
            if self._sts is None:
                self._sts = self._sts_factory()
            return str(self._sts.get_caller_identity()["Arn"])
        except (ClientError, BotoCoreError) as exc:  # who signed is informative, not required
            logger.warning("cannot tell who is signing (sts:GetCallerIdentity): %s", exc)
            return ""

    # ---- verification (before unpickling) ------------------------------------------------------

    def verify(
        self, manifest: bytes, signature: bytes | None, *, model: str, version: int, source: str
    ) -> ManifestSignature:
        """Check ``signature`` holds for ``manifest`` as ``version`` of ``model``; raises
        SignatureError with the reason otherwise."""
        if signature is None:
            raise SignatureError(
                f"{source}: unsigned ({SIGNATURE_FILE} is missing or unreadable); refusing to "
                "load a version not signed at registration"
            )
        try:
            parsed = ManifestSignature.model_validate_json(signature)
            raw = base64.b64decode(parsed.signature, validate=True)
        except (ValidationError, binascii.Error, ValueError) as exc:
            raise SignatureError(
                f"{source}: {SIGNATURE_FILE} is not a valid signature: {exc}"
            ) from exc
        statement = parsed.statement
        digest = hashlib.sha256(manifest).hexdigest()
        if statement.manifest_sha256 != digest:
            raise SignatureError(
                f"{source}: the signature is over a different manifest (signed sha256 "
                f"{statement.manifest_sha256}, manifest.json has {digest}); the manifest was "
                "changed after signing"
            )
        if (statement.model, statement.version) != (model, version):
            raise SignatureError(
                f"{source}: signed as {statement.model} version {statement.version}, stored as "
                f"{model} version {version}; refusing a replayed or moved version"
            )
        trusted = self._trusted_key(parsed.key_id)
        if trusted is None:
            raise SignatureError(
                f"{source}: signed by KMS key {parsed.key_id}, which is not a trusted key "
                f"({', '.join(self._trusted)}; see [registry].trusted_key_ids)"
            )
        if not self._kms_verifies(trusted, statement.message(), raw, source):
            raise SignatureError(
                f"{source}: the signature does not verify with KMS key {parsed.key_id}; "
                f"{SIGNATURE_FILE} was altered or made for other content"
            )
        return parsed

    def trusted_key_ids(self) -> list[str]:
        """The key ids (resolved once through kms:GetPublicKey) whose signatures count."""
        return [self._resolve(key) for key in self._trusted]

    def _trusted_key(self, signed_by: str) -> str | None:
        wanted = _key_id(signed_by)
        return next((key for key in self.trusted_key_ids() if key == wanted), None)

    def _resolve(self, key: str) -> str:
        if key not in self._resolved:
            try:
                answer = self._kms.get_public_key(KeyId=key)
            except (ClientError, BotoCoreError) as exc:
                raise SignatureError(
                    f"cannot read the public key of KMS key {key}: {exc} (check "
                    "[registry].signing_key_id and that this role may kms:GetPublicKey)"
                ) from exc
            spec = answer.get("KeySpec") or answer.get("CustomerMasterKeySpec")
            if answer.get("KeyUsage") != "SIGN_VERIFY" or spec != KEY_SPEC:
                raise SignatureError(
                    f"KMS key {key} is {spec} for {answer.get('KeyUsage')}; signing needs an "
                    f"{KEY_SPEC} key for SIGN_VERIFY"
                )
            self._resolved[key] = _key_id(str(answer["KeyId"]))
        return self._resolved[key]

    def _kms_verifies(self, key: str, message: bytes, signature: bytes, source: str) -> bool:
        try:
            answer = self._kms.verify(
                KeyId=key,
                Message=message,
                MessageType="RAW",
                Signature=signature,
                SigningAlgorithm=ALGORITHM,
            )
        except ClientError as exc:
            # AWS answers a bad signature with KMSInvalidSignatureException (moto: a false
            # SignatureValid); anything else is KMS failing, not the bundle.
            if exc.response.get("Error", {}).get("Code") == "KMSInvalidSignatureException":
                return False
            raise SignatureError(f"{source}: cannot verify the signature with KMS: {exc}") from exc
        return bool(answer.get("SignatureValid"))
