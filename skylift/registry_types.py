"""The registry's errors and the alias document (``aliases/<alias>.json``): which version an
alias names, since when, why, and its history."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from skylift.errors import SkyliftError

__all__ = [
    "AliasMode",
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


# The candidate alias's mode: serving as a canary or a shadow, or closed (promoted, aborted).
# The champion has none.
AliasMode = Literal["canary", "shadow", "promoted", "aborted"]
HISTORY_LIMIT = 100


class AliasRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: int
    updated_at: datetime
    reason: str = ""
    actor: str = ""
    mode: AliasMode | None = None
    percent: float | None = None  # canary only: the share of traffic it answers


class AliasState(BaseModel):
    """The alias object: where it points now and where it pointed before (newest first)."""

    model_config = ConfigDict(extra="forbid")
    alias: str
    version: int
    updated_at: datetime
    reason: str = ""
    actor: str = ""
    mode: AliasMode | None = None
    percent: float | None = None
    history: list[AliasRecord] = Field(default_factory=list)

    def record(self) -> AliasRecord:
        """This state as a history entry."""
        return AliasRecord.model_validate(self.model_dump(exclude={"alias", "history"}))

    def successor(
        self,
        version: int,
        *,
        reason: str = "",
        actor: str = "",
        mode: AliasMode | None = None,
        percent: float | None = None,
        history: list[AliasRecord] | None = None,
    ) -> AliasState:
        """The next state of this alias: ``version`` now, this state first in its history."""
        earlier = self.history if history is None else history
        return AliasState(
            alias=self.alias,
            version=version,
            updated_at=datetime.now(UTC),
            reason=reason,
            actor=actor,
            mode=mode,
            percent=percent,
            history=[self.record(), *earlier][:HISTORY_LIMIT],
        )
