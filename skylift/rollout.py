"""Safe rollouts: the ``candidate`` alias beside ``champion``, and how traffic is split.

The candidate alias (``aliases/candidate.json``, the same document as the champion's) names a
version and a mode: ``canary`` (it answers ``percent`` % of the traffic) or ``shadow`` (it is
scored on the champion's captured records, never answers). Ending a rollout does not delete
the alias: its mode becomes ``promoted`` or ``aborted``, so every move is a conditional write
with history, as for the champion.

A decision (promote or abort) is taken by the conditional write that closes the candidate:
of two concurrent decisions exactly one wins (the other gets ConcurrentUpdateError) and only
the winner moves the champion. Promotion then moves the champion conditionally on the
version read before: a promotion elsewhere meanwhile makes it fail, never overwrite.

Routing (:func:`routes_to_candidate`) is a stable hash (BLAKE2b, not Python's salted
``hash()``) of the record's id, or of the request body without one: one customer always sees
one version, in every Lambda environment.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from skylift.registry import DEFAULT_ALIAS, ModelRegistry
from skylift.registry_types import AliasState, RegistryError

__all__ = [
    "CANDIDATE_ALIAS",
    "Rollout",
    "RolloutError",
    "abort_candidate",
    "describe_candidate",
    "promote_candidate",
    "read_rollout",
    "routes_to_candidate",
    "routing_key",
    "start_candidate",
]

logger = logging.getLogger(__name__)

CANDIDATE_ALIAS = "candidate"
ACTIVE_MODES = ("canary", "shadow")
_HASH_SPACE = 2**64


class RolloutError(RegistryError):
    """A rollout command that cannot apply: no candidate, a bad percentage, ..."""


@dataclass(frozen=True)
class Rollout:
    """The champion and the active candidate (None when there is none)."""

    champion: int | None
    candidate: AliasState | None  # only an active one (canary or shadow)
    candidate_etag: str | None

    @property
    def mode(self) -> str | None:
        return self.candidate.mode if self.candidate else None

    @property
    def canary_percent(self) -> float:
        if self.candidate is None or self.candidate.mode != "canary":
            return 0.0
        return float(self.candidate.percent or 0.0)


def read_rollout(registry: ModelRegistry) -> Rollout:
    champion, _ = registry.alias_with_etag(DEFAULT_ALIAS)
    state, etag = registry.alias_with_etag(CANDIDATE_ALIAS)
    active = state if state is not None and state.mode in ACTIVE_MODES else None
    return Rollout(champion.version if champion else None, active, etag)


def start_candidate(
    registry: ModelRegistry,
    version: int,
    mode: Literal["canary", "shadow"],
    *,
    percent: float | None = None,
    reason: str = "",
    actor: str = "",
) -> AliasState:
    """Make ``version`` the candidate (replacing an active one, which is recorded in history).

    The version must exist and, with signing on, its signature must hold: a candidate is
    served like the champion, so it is checked like one before the alias moves."""
    if mode == "canary":
        if percent is None or not 0 < percent < 100:
            raise RolloutError(
                f"--percent must be between 0 and 100 (exclusive), got {percent}: "
                "a canary answers part of the traffic, not none or all of it"
            )
    else:
        percent = None
    registry.verified_manifest(version)  # VersionNotFoundError / SignatureError
    champion, _ = registry.alias_with_etag(DEFAULT_ALIAS)
    if champion is None:
        raise RolloutError(
            f"{registry.name} has no champion yet: promote a version first "
            "(a candidate is compared with the champion)"
        )
    if champion.version == version:
        raise RolloutError(f"version {version} is already the champion of {registry.name}")
    current, etag = registry.alias_with_etag(CANDIDATE_ALIAS)
    kwargs: dict[str, Any] = {"reason": reason, "actor": actor, "mode": mode, "percent": percent}
    if current is None:
        state = AliasState(
            alias=CANDIDATE_ALIAS, version=version, updated_at=datetime.now(UTC), **kwargs
        )
    else:
        state = current.successor(version, **kwargs)
    registry.replace_alias(state, etag)
    logger.info("%s/candidate -> version %s (%s)", registry.name, version, _describe(state))
    return state


def promote_candidate(
    registry: ModelRegistry,
    *,
    expected_version: int | None = None,
    reason: str = "candidate promoted",
    actor: str = "",
) -> AliasState:
    """Close the candidate as promoted, then make it the champion; returns the champion.

    ``expected_version`` makes the decision conditional on the candidate evaluated (the
    monitor passes the version it compared)."""
    rollout = _active(registry, expected_version)
    assert rollout.candidate is not None
    version = rollout.candidate.version
    closed = rollout.candidate.successor(version, reason=reason, actor=actor, mode="promoted")
    registry.replace_alias(closed, rollout.candidate_etag)  # the decision: one writer wins
    champion = registry.promote(
        version, expected_current=rollout.champion, reason=reason, actor=actor
    )
    logger.info("%s: candidate version %s promoted to champion", registry.name, version)
    return champion


def abort_candidate(
    registry: ModelRegistry,
    *,
    expected_version: int | None = None,
    reason: str = "candidate aborted",
    actor: str = "",
) -> AliasState:
    """Close the candidate as aborted: every request goes to the champion again."""
    rollout = _active(registry, expected_version)
    assert rollout.candidate is not None
    version = rollout.candidate.version
    closed = rollout.candidate.successor(version, reason=reason, actor=actor, mode="aborted")
    registry.replace_alias(closed, rollout.candidate_etag)
    logger.info("%s: candidate version %s aborted: %s", registry.name, version, reason)
    return closed


def _active(registry: ModelRegistry, expected_version: int | None) -> Rollout:
    rollout = read_rollout(registry)
    if rollout.candidate is None:
        raise RolloutError(
            f"{registry.name} has no active candidate (start one with "
            "`skylift models canary VERSION --percent P` or `skylift models shadow VERSION`)"
        )
    if expected_version is not None and rollout.candidate.version != expected_version:
        raise RolloutError(
            f"the candidate of {registry.name} is version {rollout.candidate.version} now, "
            f"not {expected_version}: the decision is left undone"
        )
    return rollout


def _describe(state: AliasState) -> str:
    return f"canary {state.percent:g}%" if state.mode == "canary" else str(state.mode)


def describe_candidate(state: AliasState | None) -> str:
    """``candidate (canary 10%)`` / ``candidate (shadow)``, for listings."""
    return "" if state is None else f"candidate ({_describe(state)})"


# ---- routing ------------------------------------------------------------------------------


def routing_key(value: Any) -> bytes:
    """The bytes hashed for one entity: its id as text (``7`` and ``"7"`` route alike)."""
    return value if isinstance(value, bytes) else str(value).encode("utf-8")


def routes_to_candidate(key: bytes, percent: float) -> bool:
    """Whether the entity with ``key`` is answered by a canary taking ``percent`` %: the first
    8 bytes of its BLAKE2b digest, as a fraction of 2**64, below percent/100."""
    if percent <= 0:
        return False
    digest = hashlib.blake2b(key, digest_size=8, person=b"skylift-canary").digest()
    return int.from_bytes(digest, "big") < percent / 100.0 * _HASH_SPACE
