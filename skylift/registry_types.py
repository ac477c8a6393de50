"""The registry's errors and the alias document (``aliases/<alias>.json``): which version an
alias names, since when, why, and its history."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from skylift.errors import SkyliftError

__all__ = [
    "AliasNotFoundError",
    "AliasRecord",
    "AliasState",
    "BucketNotFoundError",
    "ConcurrentUpdateError",
    "ModelNotFoundError",
    "NotServableError",
    "RegistryError",
    "VersionNotFoundError",
]


class RegistryError(SkyliftError):
    """Base class of registry errors."""


class NotServableError(RegistryError):
    """The version cannot run on the functions' runtime ([deploy].runtime = "onnx" and no
    verified model.onnx): an alias is never pointed at it."""


class BucketNotFoundError(RegistryError):
    pass


class ModelNotFoundError(RegistryError):
    pass


class VersionNotFoundError(RegistryError):
    pass


class AliasNotFoundError(RegistryError):
    pass


class ConcurrentUpdateError(RegistryError):
    """Somebody else changed the alias between our read and our conditional write."""


class AliasRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: int
    updated_at: datetime
    reason: str = ""
    actor: str = ""


class AliasState(BaseModel):
    """The alias object: where it points now and where it pointed before (newest first)."""

    model_config = ConfigDict(extra="forbid")
    alias: str
    version: int
    updated_at: datetime
    reason: str = ""
    actor: str = ""
    history: list[AliasRecord] = Field(default_factory=list)
