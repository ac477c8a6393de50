"""ModelBundle: a fitted model (model.joblib) and its manifest (manifest.json).

The manifest says what the model is (name, version, task, target, classes, feature schema),
how good it was on the holdout, what it was trained on, which runtime wrote it, the sha256 of
the artifact and the baseline profile for drift. Loading checks the hash *before* unpickling
(joblib can run arbitrary code) and refuses a scikit-learn version other than the runtime's
unless the caller explicitly allows it, which is logged.
"""

from __future__ import annotations

import hashlib
import io
import logging
import platform
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import joblib
import numpy as np
import pandas as pd
import sklearn
from pydantic import BaseModel, ConfigDict, Field

from skylift.errors import SkyliftError
from skylift.profile import BaselineProfile
from skylift.schema import FeatureSchema

__all__ = [
    "MANIFEST_FILE",
    "MODEL_FILE",
    "BundleError",
    "IntegrityError",
    "Manifest",
    "ModelBundle",
    "RuntimeVersions",
    "TrainingDataRef",
    "VersionSkewError",
]

logger = logging.getLogger(__name__)

MODEL_FILE = "model.joblib"
MANIFEST_FILE = "manifest.json"


class BundleError(SkyliftError):
    """A bundle cannot be built, read or trusted."""


class IntegrityError(BundleError):
    """The artifact's sha256 does not match the manifest: never unpickle it."""


class VersionSkewError(BundleError):
    """The bundle was written by another scikit-learn than the one running."""


class RuntimeVersions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    python: str
    sklearn: str
    numpy: str
    pandas: str
    joblib: str

    @classmethod
    def current(cls) -> RuntimeVersions:
        return cls(
            python=platform.python_version(),
            sklearn=sklearn.__version__,
            numpy=np.__version__,
            pandas=pd.__version__,
            joblib=joblib.__version__,
        )


class TrainingDataRef(BaseModel):
    model_config = ConfigDict(extra="forbid")
    uri: str
    sha256: str
    rows: int


class HoldoutInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")
    fraction: float
    seed: int
    rows: int


class Manifest(BaseModel):
    """Everything known about one model version; stored as manifest.json beside the artifact."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    format_version: int = 1
    name: str
    version: int | None = None  # assigned by the registry on register
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    task: Literal["classification", "regression"]
    target: str
    id_column: str | None = None
    classes: list[Any] | None = None
    feature_schema: FeatureSchema
    metrics: dict[str, float] = Field(default_factory=dict)
    sha256: str
    size_bytes: int
    runtime: RuntimeVersions
    training_data: TrainingDataRef | None = None
    holdout: HoldoutInfo | None = None
    baseline: BaselineProfile | None = None
    entry_point: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)

    def public(self) -> dict[str, Any]:
        """The part safe to show API callers (no baseline samples, no data locations)."""
        return self.model_dump(
            mode="json",
            include={
                "name",
                "version",
                "created_at",
                "task",
                "target",
                "id_column",
                "classes",
                "feature_schema",
                "metrics",
                "runtime",
            },
        )


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class ModelBundle:
    """A fitted estimator with its manifest. Build with :meth:`create`, read with :meth:`load`."""

    def __init__(self, model: Any, manifest: Manifest, artifact: bytes | None = None) -> None:
        self.model = model
        self.manifest = manifest
        self._artifact = artifact

    @classmethod
    def create(
        cls,
        model: Any,
        *,
        name: str,
        task: Literal["classification", "regression"],
        target: str,
        feature_schema: FeatureSchema,
        metrics: dict[str, float] | None = None,
        id_column: str | None = None,
        training_data: TrainingDataRef | None = None,
        holdout: HoldoutInfo | None = None,
        baseline: BaselineProfile | None = None,
        entry_point: str | None = None,
        tags: dict[str, str] | None = None,
    ) -> ModelBundle:
        """Serialise ``model`` and describe it; the hash covers exactly the bytes stored."""
        if not hasattr(model, "predict"):
            raise BundleError(f"{type(model).__name__} has no predict(): not a fitted estimator")
        buffer = io.BytesIO()
        joblib.dump(model, buffer, compress=3)
        artifact = buffer.getvalue()
        classes = getattr(model, "classes_", None)
        manifest = Manifest(
            name=name,
            task=task,
            target=target,
            id_column=id_column,
            classes=[_plain(c) for c in classes] if classes is not None else None,
            feature_schema=feature_schema,
            metrics=metrics or {},
            sha256=sha256_bytes(artifact),
            size_bytes=len(artifact),
            runtime=RuntimeVersions.current(),
            training_data=training_data,
            holdout=holdout,
            baseline=baseline,
            entry_point=entry_point,
            tags=tags or {},
        )
        return cls(model, manifest, artifact)

    @property
    def artifact(self) -> bytes:
        if self._artifact is None:
            raise BundleError("bundle holds no serialised artifact")
        return self._artifact

    @property
    def version(self) -> int | None:
        return self.manifest.version

    @classmethod
    def load(
        cls,
        artifact: bytes,
        manifest: Manifest | bytes | str,
        *,
        allow_version_skew: bool = False,
        source: str = "bundle",
    ) -> ModelBundle:
        """Verify ``artifact`` against ``manifest``, then unpickle it.

        Raises IntegrityError on a hash mismatch (before any unpickling) and VersionSkewError
        when the recorded scikit-learn differs from the runtime's, unless allowed (callers pass
        ``[model].allow_version_skew``).
        """
        if not isinstance(manifest, Manifest):
            manifest = Manifest.model_validate_json(manifest)
        digest = sha256_bytes(artifact)
        if digest != manifest.sha256:
            raise IntegrityError(
                f"{source}: sha256 of {MODEL_FILE} is {digest}, manifest says "
                f"{manifest.sha256}; refusing to load a modified artifact"
            )
        recorded, running = manifest.runtime.sklearn, sklearn.__version__
        if recorded != running:
            if not allow_version_skew:
                raise VersionSkewError(
                    f"{source}: written by scikit-learn {recorded}, this runtime has {running}; "
                    "retrain with this version, or set [model].allow_version_skew = true "
                    "(SKYLIFT_MODEL__ALLOW_VERSION_SKEW=true) to accept the risk"
                )
            logger.warning(
                "loading %s written by scikit-learn %s with %s (version skew allowed)",
                source,
                recorded,
                running,
            )
        with warnings.catch_warnings():
            if not allow_version_skew:
                # sklearn only warns on skewed pickles; the contract says refuse.
                from sklearn.exceptions import InconsistentVersionWarning

                warnings.simplefilter("error", InconsistentVersionWarning)
            try:
                model = joblib.load(io.BytesIO(artifact))
            except Warning as exc:
                raise VersionSkewError(f"{source}: {exc}") from exc
            except Exception as exc:
                raise BundleError(f"{source}: cannot unpickle {MODEL_FILE}: {exc}") from exc
        return cls(model, manifest, artifact)

    # ---- local directories -------------------------------------------------------------------

    def save(self, directory: str | Path) -> Path:
        """Write model.joblib then manifest.json into ``directory``."""
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        (path / MODEL_FILE).write_bytes(self.artifact)
        (path / MANIFEST_FILE).write_text(self.manifest.model_dump_json(indent=2))
        return path

    @classmethod
    def load_dir(cls, directory: str | Path, *, allow_version_skew: bool = False) -> ModelBundle:
        path = Path(directory)
        try:
            artifact = (path / MODEL_FILE).read_bytes()
            manifest = (path / MANIFEST_FILE).read_text()
        except FileNotFoundError as exc:
            raise BundleError(f"{path}: not a model bundle ({exc.filename} missing)") from exc
        return cls.load(artifact, manifest, allow_version_skew=allow_version_skew, source=str(path))


def _plain(value: Any) -> Any:
    """numpy scalars -> Python scalars, so classes serialise to JSON as they were."""
    return value.item() if hasattr(value, "item") else value
