"""ModelBundle: a fitted model (model.joblib) and its manifest (manifest.json).

A bundle may also carry ``model.onnx``, the same pipeline exported to ONNX; it is only ever
present when it was verified against the pipeline on the holdout, and its sha256 sits in the
manifest's ``exports`` record (so whatever covers the manifest covers it too).

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

from pydantic import BaseModel, ConfigDict, Field

from skylift.errors import SkyliftError
from skylift.exports.records import ONNX_FILE, Exports
from skylift.profile import BaselineProfile
from skylift.schema import FeatureSchema

__all__ = [
    "MANIFEST_FILE",
    "MODEL_FILE",
    "ONNX_FILE",
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
        # Imported here: the onnx runtime reads manifests without scikit-learn installed.
        import joblib
        import numpy as np
        import pandas as pd
        import sklearn

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
    exports: Exports | None = None  # ONNX/SQL translations and how they compared (skylift.exports)

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

    def __init__(
        self,
        model: Any,
        manifest: Manifest,
        artifact: bytes | None = None,
        onnx: bytes | None = None,
    ) -> None:
        self.model = model
        self.manifest = manifest
        self._artifact = artifact
        self.onnx = onnx  # model.onnx, only when verified (manifest.exports.onnx)

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
        import joblib

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
        import joblib
        import sklearn

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

    @classmethod
    def load_onnx(
        cls, onnx: bytes, manifest: Manifest | bytes | str, *, source: str = "bundle"
    ) -> ModelBundle:
        """Verify ``model.onnx`` against the manifest and load it with onnxruntime.

        No pickle is read (and scikit-learn is not imported): the model is an
        :class:`~skylift.exports.onnx_runtime.OnnxEstimator`. Raises BundleError when the
        version has no verified ONNX export, IntegrityError on a hash mismatch.
        """
        from skylift.exports.onnx_runtime import OnnxEstimator

        if not isinstance(manifest, Manifest):
            manifest = Manifest.model_validate_json(manifest)
        record = manifest.exports.onnx if manifest.exports else None
        if record is None or not record.verified or record.sha256 is None:
            raise BundleError(f"{source}: {no_verified_onnx(manifest)}")
        digest = sha256_bytes(onnx)
        if digest != record.sha256:
            raise IntegrityError(
                f"{source}: sha256 of {ONNX_FILE} is {digest}, manifest says {record.sha256}; "
                "refusing to load a modified artifact"
            )
        try:
            model = OnnxEstimator(onnx, task=manifest.task, classes=manifest.classes)
        except Exception as exc:
            raise BundleError(f"{source}: cannot load {ONNX_FILE}: {exc}") from exc
        return cls(model, manifest, None, onnx)

    # ---- local directories -------------------------------------------------------------------

    def save(self, directory: str | Path) -> Path:
        """Write model.joblib then manifest.json into ``directory``."""
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        (path / MODEL_FILE).write_bytes(self.artifact)
        if self.onnx is not None:
            (path / ONNX_FILE).write_bytes(self.onnx)
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


def no_verified_onnx(manifest: Manifest) -> str:
    """Why a version cannot run on the onnx runtime (for errors and `models describe`)."""
    record = manifest.exports.onnx if manifest.exports else None
    why = "it was registered without exports" if record is None else record.summary()
    return (
        f"model {manifest.name} version {manifest.version} has no verified ONNX export ({why}); "
        'deploy it with [deploy].runtime = "sklearn", or register a pipeline that converts'
    )


def _plain(value: Any) -> Any:
    """numpy scalars -> Python scalars, so classes serialise to JSON as they were."""
    return value.item() if hasattr(value, "item") else value
