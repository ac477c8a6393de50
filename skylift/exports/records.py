"""What the manifest records about each export: whether it exists, and how close it came.

Kept in one model (``Manifest.exports``) so the manifest grows by one field, and whatever signs
the manifest covers the ONNX artifact's sha256 too.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ONNX_FILE", "ExportCheck", "Exports"]

ONNX_FILE = "model.onnx"


class ExportCheck(BaseModel):
    """One export compared with the pipeline on the holdout.

    ``available``: the translator produced something that runs. ``verified``: it ran on every
    holdout row and no probability (prediction, for regression) differs by more than
    ``tolerance``, and every label agrees. Only a verified export is used.
    """

    model_config = ConfigDict(extra="forbid")

    available: bool
    verified: bool = False
    max_abs_diff: float | None = None
    agreement: float | None = Field(
        default=None, description="share of holdout rows whose predicted label is the pipeline's"
    )
    rows: int = 0
    tolerance: float
    reason: str = ""  # why not available / not verified; "" when verified
    sha256: str | None = None  # of the artifact (ONNX)
    size_bytes: int | None = None
    detail: dict[str, str] = Field(default_factory=dict)  # e.g. input precision, dialect

    def summary(self) -> str:
        if not self.available:
            return f"not available: {self.reason}"
        diff = "n/a" if self.max_abs_diff is None else f"{self.max_abs_diff:.3g}"
        state = "verified" if self.verified else f"NOT verified ({self.reason})"
        agreement = "" if self.agreement is None else f", label agreement {self.agreement:.4%}"
        return f"{state}; max |diff| {diff} (tolerance {self.tolerance:g}){agreement}"


class Exports(BaseModel):
    model_config = ConfigDict(extra="forbid")

    onnx: ExportCheck | None = None
    sql: ExportCheck | None = None

    @property
    def onnx_verified(self) -> bool:
        return self.onnx is not None and self.onnx.verified and self.onnx.sha256 is not None
