"""ModelRegistry: immutable, numbered model versions and movable aliases on S3.

Layout under ``<models_prefix><name>/`` (callers never build these keys themselves)::

    versions/<n>/claim.json      reserves number n (If-None-Match: *), so racing registers differ
    versions/<n>/model.joblib    the artifact
    versions/<n>/model.onnx      the same pipeline in ONNX, only when verified (sha256 in the
                                 manifest's exports record)
    versions/<n>/manifest.sig    the KMS signature of the manifest (skylift.signing)
    versions/<n>/manifest.json   written last: a version without it does not exist
    aliases/<alias>.json         {"version", "updated_at", "history": [...]}, changed only by
                                 conditional writes (If-Match on the ETag read, or
                                 If-None-Match: * for a new alias)

A crash between the artifact and the manifest leaves an invisible, unused number; an alias can
only name a version whose manifest exists, and of two concurrent promotions exactly one wins.
With signing on, :meth:`ModelRegistry.load` is the one gate between S3 and the unpickler: the
signature, the model name and version number, then the artifact's hash, in that order.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from skylift import aws
from skylift.bundle import (
    MANIFEST_FILE,
    MODEL_FILE,
    ONNX_FILE,
    Manifest,
    ModelBundle,
    no_verified_onnx,
)
from skylift.registry_types import (
    AliasNotFoundError,
    AliasRecord,
    AliasState,
    BucketNotFoundError,
    ConcurrentUpdateError,
    ModelNotFoundError,
    NotServableError,
    RegistryError,
    VersionNotFoundError,
)
from skylift.signing import SIGNATURE_FILE, KmsSigning, ManifestSignature, SignatureError

__all__ = [
    "DEFAULT_ALIAS",
    "AliasNotFoundError",
    "AliasRecord",
    "AliasState",
    "BucketNotFoundError",
    "ConcurrentUpdateError",
    "ModelNotFoundError",
    "ModelRegistry",
    "RegistryError",
    "VersionNotFoundError",
]

logger = logging.getLogger(__name__)

DEFAULT_ALIAS = "champion"
_MAX_CLAIM_ATTEMPTS = 50


@dataclass(frozen=True)
class _AliasRead:
    state: AliasState | None
    etag: str | None


class ModelRegistry:
    """Versions and aliases of one model name in one bucket."""

    def __init__(
        self,
        bucket: str,
        name: str,
        *,
        prefix: str = "models/",
        s3_client: Any | None = None,
        endpoint_url: str | None = None,
        signing: KmsSigning | None = None,
        serving_runtime: str = "sklearn",
    ) -> None:
        self.bucket = bucket
        self.name = name
        self._root = f"{prefix}{name}/"
        self._s3 = s3_client or aws.client("s3", endpoint_url=endpoint_url)
        self.signing = signing  # None: versions are neither signed nor checked for a signature
        # [deploy].runtime: with "onnx", promote and rollback refuse a version the score and
        # batch functions could not load (no verified model.onnx), whatever path asks.
        self.serving_runtime = serving_runtime

    def close_connections(self) -> None:
        """Drop pooled HTTP connections (after a SnapStart restore they are dead); the client
        opens new ones on its next call."""
        self._s3.close()
        if self.signing is not None:
            self.signing.close_connections()

    @classmethod
    def from_config(
        cls, config: Any, *, s3_client: Any | None = None, endpoint_url: str | None = None
    ) -> ModelRegistry:
        signing = None
        if (key := config.signing_key) is not None:
            signing = KmsSigning(
                key,
                trusted_key_ids=config.registry.trusted_key_ids,
                kms_client=aws.client("kms", endpoint_url=endpoint_url),
                sts_factory=lambda: aws.client("sts", endpoint_url=endpoint_url),
            )
        return cls(
            config.storage.bucket,
            config.model.name,
            prefix=config.storage.models_prefix,
            s3_client=s3_client,
            endpoint_url=endpoint_url,
            signing=signing,
            serving_runtime=config.deploy.runtime,
        )

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self._root}"

    # ---- keys --------------------------------------------------------------------------------

    def _version_key(self, version: int, file: str) -> str:
        return f"{self._root}versions/{version}/{file}"

    def _alias_key(self, alias: str) -> str:
        return f"{self._root}aliases/{alias}.json"

    # ---- versions ----------------------------------------------------------------------------

    def register(self, bundle: ModelBundle, *, actor: str = "") -> Manifest:
        """Store ``bundle`` as the next version; returns its manifest with the version set."""
        if bundle.manifest.name != self.name:
            raise RegistryError(
                f"bundle is for model {bundle.manifest.name!r}, registry is for {self.name!r}"
            )
        version = self._claim_next_version(actor)
        manifest = bundle.manifest.model_copy(update={"version": version})
        manifest_bytes = manifest.model_dump_json(indent=2).encode()
        self._put(self._version_key(version, MODEL_FILE), bundle.artifact)
        if bundle.onnx is not None:
            self._put(self._version_key(version, ONNX_FILE), bundle.onnx)
        if self.signing is not None:
            signature = self.signing.sign(manifest_bytes, model=self.name, version=version)
            self._put(
                self._version_key(version, SIGNATURE_FILE),
                signature.to_bytes(),
                content_type="application/json",
                if_none_match=True,
            )
        # The manifest is the commit marker; If-None-Match guards against any overwrite.
        self._put(
            self._version_key(version, MANIFEST_FILE),
            manifest_bytes,
            content_type="application/json",
            if_none_match=True,
        )
        bundle.manifest = manifest
        logger.info("registered %s version %s", self.name, version)
        return manifest

    def _claim_next_version(self, actor: str) -> int:
        candidate = self._highest_number() + 1
        for _ in range(_MAX_CLAIM_ATTEMPTS):
            claim = json.dumps(
                {"claimed_at": datetime.now(UTC).isoformat(), "actor": actor}
            ).encode()
            try:
                self._put(self._version_key(candidate, "claim.json"), claim, if_none_match=True)
                return candidate
            except ConcurrentUpdateError:
                candidate += 1
        raise RegistryError(
            f"could not claim a version number for {self.name} after {_MAX_CLAIM_ATTEMPTS} tries"
        )

    def _highest_number(self) -> int:
        numbers = [int(n) for n in self._version_dirs()]
        return max(numbers, default=0)

    def _version_dirs(self) -> list[str]:
        prefix = f"{self._root}versions/"
        names: list[str] = []
        paginator = self._s3.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix, Delimiter="/"):
                for common in page.get("CommonPrefixes", []):
                    part = common["Prefix"][len(prefix) :].rstrip("/")
                    if part.isdigit():
                        names.append(part)
        except ClientError as exc:
            raise self._translate(exc, prefix) from exc
        return names

    def list_versions(self) -> list[Manifest]:
        """Complete versions (manifest present), oldest first."""
        manifests: list[Manifest] = []
        for number in sorted(int(n) for n in self._version_dirs()):
            try:
                manifests.append(self.describe(number))
            except VersionNotFoundError:
                continue  # claimed but never completed (or still being written)
        return manifests

    def describe(self, version: int) -> Manifest:
        return Manifest.model_validate_json(self._manifest_bytes(version))

    def _manifest_bytes(self, version: int) -> bytes:
        key = self._version_key(version, MANIFEST_FILE)
        try:
            return self._get(key)
        except (ModelNotFoundError, VersionNotFoundError) as exc:
            raise VersionNotFoundError(
                f"{self.name} has no version {version} ({self.uri})"
            ) from exc

    def signature(self, version: int) -> ManifestSignature | None:
        """The version's ``manifest.sig`` as stored (not verified), None when there is none."""
        body = self._get_optional(self._version_key(version, SIGNATURE_FILE))
        return None if body is None else ManifestSignature.model_validate_json(body)

    def verified_manifest(self, version: int) -> tuple[Manifest, ManifestSignature | None]:
        """The manifest of ``version`` once its signature (when signing is on) holds and it
        names this model and version; raises SignatureError otherwise."""
        source = f"s3://{self.bucket}/{self._version_key(version, '')}"
        body = self._manifest_bytes(version)
        signature = None
        if self.signing is not None:
            signature = self.signing.verify(
                body,
                self._get_optional(self._version_key(version, SIGNATURE_FILE)),
                model=self.name,
                version=version,
                source=source,
            )
        manifest = Manifest.model_validate_json(body)
        if (manifest.name, manifest.version) != (self.name, version):
            raise SignatureError(
                f"{source}: manifest.json describes {manifest.name} version {manifest.version}, "
                f"stored as {self.name} version {version}; refusing a moved version"
            )
        return manifest, signature

    def load(
        self, version: int, *, allow_version_skew: bool = False, runtime: str = "sklearn"
    ) -> ModelBundle:
        """Fetch, verify and unpickle ``version``: the artifact is not even fetched before
        the manifest's signature holds, and is unpickled only if its hash matches. With
        runtime "onnx": model.onnx instead, hash-checked, never a pickle."""
        manifest, _ = self.verified_manifest(version)
        if runtime == "onnx":
            source = f"s3://{self.bucket}/{self._version_key(version, '')}"
            if manifest.exports is None or not manifest.exports.onnx_verified:
                return ModelBundle.load_onnx(b"", manifest, source=source)  # raises: why not
            return ModelBundle.load_onnx(
                self._get(self._version_key(version, ONNX_FILE)), manifest, source=source
            )
        artifact = self.artifact(version)
        return ModelBundle.load(
            artifact,
            manifest,
            allow_version_skew=allow_version_skew,
            source=f"s3://{self.bucket}/{self._version_key(version, '')}",
        )

    def artifact(self, version: int) -> bytes:
        """The stored model.joblib of ``version``, as bytes (never unpickled here)."""
        return self._get(self._version_key(version, MODEL_FILE))

    def load_alias(
        self, alias: str = DEFAULT_ALIAS, *, allow_version_skew: bool = False
    ) -> ModelBundle:
        return self.load(self.resolve(alias), allow_version_skew=allow_version_skew)

    # ---- aliases -----------------------------------------------------------------------------

    def resolve(self, alias: str = DEFAULT_ALIAS) -> int:
        return self.alias(alias).version

    def alias(self, alias: str = DEFAULT_ALIAS) -> AliasState:
        read = self._read_alias(alias)
        if read.state is None:
            raise AliasNotFoundError(f"{self.name} has no alias {alias!r} yet ({self.uri})")
        return read.state

    def alias_etag(self, alias: str = DEFAULT_ALIAS) -> str | None:
        """The alias object's ETag (cheap HEAD), for callers that poll for changes."""
        try:
            head = self._s3.head_object(Bucket=self.bucket, Key=self._alias_key(alias))
        except ClientError as exc:
            if _code(exc) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise self._translate(exc, self._alias_key(alias)) from exc
        return str(head["ETag"])

    def promote(
        self,
        version: int,
        alias: str = DEFAULT_ALIAS,
        *,
        expected_current: int | object | None = ...,
        reason: str = "",
        actor: str = "",
    ) -> AliasState:
        """Point ``alias`` at ``version`` with a conditional write.

        ``expected_current`` (an int, or None for "alias must not exist yet") makes the
        promotion conditional on what the caller evaluated against: a retrain that compared
        its challenger with champion v3 fails with ConcurrentUpdateError if v4 won meanwhile.
        """
        self._check_servable(self.describe(version))  # only complete versions, that can serve
        read = self._read_alias(alias)
        current = read.state.version if read.state else None
        if expected_current is not ... and expected_current != current:
            raise ConcurrentUpdateError(
                f"{alias} of {self.name} is {current}, expected {expected_current}"
            )
        if read.state is not None and current == version:
            return read.state  # already there: promoting is idempotent, history stays clean
        if read.state is None:
            state = AliasState(
                alias=alias,
                version=version,
                updated_at=datetime.now(UTC),
                reason=reason,
                actor=actor,
            )
        else:
            state = read.state.successor(version, reason=reason, actor=actor)
        self._write_alias(alias, state, read.etag)
        logger.info("%s/%s -> version %s (was %s)", self.name, alias, version, current)
        return state

    def _check_servable(self, manifest: Manifest) -> None:
        if self.serving_runtime == "onnx" and not (
            manifest.exports is not None and manifest.exports.onnx_verified
        ):
            raise NotServableError(
                f"refusing to point an alias at it: {no_verified_onnx(manifest)}"
            )

    def rollback(
        self, alias: str = DEFAULT_ALIAS, *, reason: str = "rollback", actor: str = ""
    ) -> AliasState:
        """Point ``alias`` back at the version it named before the current one."""
        read = self._read_alias(alias)
        if read.state is None:
            raise AliasNotFoundError(f"{self.name} has no alias {alias!r} to roll back")
        previous = next((r for r in read.state.history if r.version != read.state.version), None)
        if previous is None:
            raise RegistryError(
                f"{alias} of {self.name} has no earlier version to roll back to "
                f"(it has only ever named version {read.state.version})"
            )
        self._check_servable(self.describe(previous.version))
        # The rolled-back-from entry moves into history; the restored entry leaves it.
        rest = list(read.state.history)
        rest.remove(previous)
        state = read.state.successor(previous.version, reason=reason, actor=actor, history=rest)
        self._write_alias(alias, state, read.etag)
        return state

    def aliases(self) -> dict[str, int]:
        prefix = f"{self._root}aliases/"
        found: dict[str, int] = {}
        paginator = self._s3.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    name = item["Key"][len(prefix) :].removesuffix(".json")
                    state = self._read_alias(name).state
                    if state is not None:
                        found[name] = state.version
        except ClientError as exc:
            raise self._translate(exc, prefix) from exc
        return found

    def alias_with_etag(self, alias: str) -> tuple[AliasState | None, str | None]:
        """The alias (None when it does not exist) and the ETag to make a write conditional
        on (:meth:`replace_alias`)."""
        read = self._read_alias(alias)
        return read.state, read.etag

    def replace_alias(self, state: AliasState, etag: str | None) -> None:
        """Write ``state`` if the alias still has ``etag`` (None: if it does not exist yet);
        ConcurrentUpdateError otherwise."""
        self._write_alias(state.alias, state, etag)

    def _read_alias(self, alias: str) -> _AliasRead:
        key = self._alias_key(alias)
        try:
            response = self._s3.get_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _code(exc) in ("NoSuchKey", "404"):
                return _AliasRead(None, None)
            raise self._translate(exc, key) from exc
        body = response["Body"].read()
        return _AliasRead(AliasState.model_validate_json(body), response["ETag"])

    def _write_alias(self, alias: str, state: AliasState, etag: str | None) -> None:
        body = state.model_dump_json(indent=2).encode()
        key = self._alias_key(alias)
        if etag is None:
            self._put(key, body, content_type="application/json", if_none_match=True)
        else:
            self._put(key, body, content_type="application/json", if_match=etag)

    # ---- S3 ----------------------------------------------------------------------------------

    def _put(
        self,
        key: str,
        body: bytes,
        *,
        content_type: str = "application/octet-stream",
        if_none_match: bool = False,
        if_match: str | None = None,
    ) -> None:
        extra: dict[str, Any] = {}
        if if_none_match:
            extra["IfNoneMatch"] = "*"
        if if_match is not None:
            extra["IfMatch"] = if_match
        try:
            self._s3.put_object(
                Bucket=self.bucket, Key=key, Body=body, ContentType=content_type, **extra
            )
        except ClientError as exc:
            # 412: the condition failed; 409: a concurrent conditional write is in flight.
            if _code(exc) in ("PreconditionFailed", "412", "ConditionalRequestConflict", "409"):
                raise ConcurrentUpdateError(
                    f"s3://{self.bucket}/{key} changed concurrently"
                ) from exc
            raise self._translate(exc, key) from exc

    def _get(self, key: str) -> bytes:
        try:
            return bytes(self._s3.get_object(Bucket=self.bucket, Key=key)["Body"].read())
        except ClientError as exc:
            raise self._translate(exc, key) from exc

    def _get_optional(self, key: str) -> bytes | None:
        """``key``'s body, or None when it is missing (S3 answers 403 rather than 404 to a
        role without s3:ListBucket, so a denied read counts as missing too)."""
        try:
            return bytes(self._s3.get_object(Bucket=self.bucket, Key=key)["Body"].read())
        except ClientError as exc:
            if _code(exc) in ("NoSuchKey", "404", "AccessDenied", "403"):
                return None
            raise self._translate(exc, key) from exc

    def _translate(self, exc: ClientError, key: str) -> Exception:
        code = _code(exc)
        if code == "NoSuchBucket":
            return BucketNotFoundError(
                f"bucket {self.bucket!r} does not exist (check [storage].bucket or "
                "SKYLIFT_STORAGE__BUCKET, and the endpoint)"
            )
        if code in ("NoSuchKey", "404"):
            return VersionNotFoundError(f"s3://{self.bucket}/{key} not found")
        if code in ("AccessDenied", "403"):
            return RegistryError(f"access denied to s3://{self.bucket}/{key}")
        return exc


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))
