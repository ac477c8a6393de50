"""What ``skylift models verify`` checks about a stored version, without unpickling it.

Three checks, each passed, failed (with the reason) or skipped: the manifest's signature (and
that it names this model and version), the artifact's sha256 against the manifest, and the
runtime that wrote the bundle against this one (scikit-learn must match; the others are shown).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

from skylift.bundle import Manifest, RuntimeVersions
from skylift.errors import SkyliftError
from skylift.registry import ModelRegistry

__all__ = ["Check", "check_version"]


@dataclass(frozen=True)
class Check:
    name: str  # "signature", "sha256", "runtime"
    result: Literal["passed", "failed", "skipped"]
    detail: str


def check_version(registry: ModelRegistry, version: int) -> list[Check]:
    """The three checks of ``version``; a failed signature does not stop the others."""
    checks: list[Check] = []
    manifest: Manifest | None = None
    try:
        manifest, signature = registry.verified_manifest(version)
        if signature is None:
            checks.append(Check("signature", "skipped", '[registry].signing = "none"'))
        else:
            statement = signature.statement
            checks.append(
                Check(
                    "signature",
                    "passed",
                    f"{signature.algorithm} by KMS key {signature.key_id}, signed by "
                    f"{statement.signer or 'unknown'} at {statement.signed_at.isoformat()}",
                )
            )
    except SkyliftError as exc:
        checks.append(Check("signature", "failed", str(exc)))
        manifest = registry.describe(version)  # the unverified manifest, for the other checks
    digest = hashlib.sha256(registry.artifact(version)).hexdigest()
    if digest == manifest.sha256:
        checks.append(Check("sha256", "passed", digest))
    else:
        checks.append(
            Check("sha256", "failed", f"model.joblib has {digest}, manifest says {manifest.sha256}")
        )
    recorded, running = manifest.runtime, RuntimeVersions.current()
    others = ", ".join(
        f"{name} {value}"
        + ("" if value == getattr(running, name) else f" (here {getattr(running, name)})")
        for name, value in recorded.model_dump().items()
        if name != "sklearn"
    )
    if recorded.sklearn == running.sklearn:
        checks.append(Check("runtime", "passed", f"scikit-learn {recorded.sklearn}; {others}"))
    else:
        checks.append(
            Check(
                "runtime",
                "failed",
                f"written by scikit-learn {recorded.sklearn}, this runtime has {running.sklearn}; "
                f"{others}",
            )
        )
    return checks
