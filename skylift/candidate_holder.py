"""The canary in memory, beside the champion's :class:`~skylift.model_holder.ModelHolder`.

:class:`CandidateHolder` re-checks the ``candidate`` alias (one HEAD) at most every
``refresh_seconds``, like the champion's holder. Only a canary is loaded: a shadow candidate
is scored by the monitor on the captured records, off the request path, so it costs the
score function nothing. The canary is loaded through the same gate as the champion
(:meth:`ModelRegistry.load`: signature, then hash, then unpickling).

Memory is bounded to one extra model: a replaced canary is dropped before the next is loaded.
Whatever fails (S3, a bad signature, a pickle that does not load, version skew), the champion
serves alone: the failure is logged as a warning and counted for the CandidateLoadFailures
metric, and the next check tries again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from skylift.registry_types import AliasState
from skylift.rollout import ACTIVE_MODES, CANDIDATE_ALIAS
from skylift.scoring import Scorer

__all__ = ["Canary", "CandidateHolder"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Canary:
    """A loaded canary and the share of traffic it answers."""

    scorer: Scorer
    percent: float


class CandidateHolder:
    """The candidate alias, re-checked at most every ``refresh_seconds``; thread-safe."""

    def __init__(
        self,
        registry: Any,
        refresh_seconds: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        load_options: dict[str, Any] | None = None,
    ) -> None:
        self.registry = registry
        self.refresh_seconds = refresh_seconds
        self._clock = clock
        self._load_options = load_options or {}
        self._etag: str | None = None
        self._checked_at: float | None = None
        self._state: AliasState | None = None  # the active candidate (canary or shadow)
        self._canary: Canary | None = None
        self._failures = 0
        self.last_error = ""
        self._lock = threading.Lock()
        self._failures_lock = threading.Lock()

    @property
    def state(self) -> AliasState | None:
        return self._state

    def canary(self) -> Canary | None:
        """The loaded canary, None when there is none (no candidate, a shadow, a failed load)."""
        self.maybe_refresh()
        return self._canary

    def take_load_failures(self) -> int:
        with self._failures_lock:
            count, self._failures = self._failures, 0
        return count

    def maybe_refresh(self) -> None:
        now = self._clock()
        if self._checked_at is not None and now - self._checked_at < self.refresh_seconds:
            return
        if not self._lock.acquire(blocking=False):
            return  # another thread is checking: serve what we have
        try:
            self._checked_at = now
            self._refresh()
        finally:
            self._lock.release()

    def refresh(self) -> None:
        with self._lock:
            self._checked_at = self._clock()
            self._refresh()

    def _refresh(self) -> None:
        try:
            etag = self.registry.alias_etag(CANDIDATE_ALIAS)
            if etag == self._etag:
                return
            state, _ = self.registry.alias_with_etag(CANDIDATE_ALIAS)
        except Exception as exc:
            self._fail(f"cannot read the candidate alias: {type(exc).__name__}: {exc}")
            return
        active = state if state is not None and state.mode in ACTIVE_MODES else None
        self._state = active
        if active is None or active.mode != "canary":
            self._drop()
            self._etag = etag
            return
        loaded = self._canary
        if loaded is not None and loaded.scorer.version == active.version:
            self._canary = Canary(loaded.scorer, float(active.percent or 0.0))
            self._etag = etag
            return
        self._drop()  # one extra model at most, never two
        try:
            scorer = Scorer(self.registry.load(active.version, **self._load_options))
            scorer.warm()
        except Exception as exc:
            self._fail(
                f"canary version {active.version} not loaded, the champion serves alone: "
                f"{type(exc).__name__}: {exc}"
            )
            return
        self._canary = Canary(scorer, float(active.percent or 0.0))
        self._etag = etag
        self.last_error = ""
        logger.info("canary version %s loaded for %s%% of traffic", active.version, active.percent)

    def _drop(self) -> None:
        if self._canary is not None:
            logger.info("canary version %s unloaded", self._canary.scorer.version)
        self._canary = None

    def _fail(self, reason: str) -> None:
        # _etag stays as it was, so the next check tries the load again
        with self._failures_lock:
            self._failures += 1
        self.last_error = reason
        logger.warning("%s", reason)
