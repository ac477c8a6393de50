"""The champion in memory, for every function that scores: the API and batch.

:class:`ModelHolder` loads the model an alias names and re-checks the alias (one HEAD) at most
every ``refresh_seconds``: a promotion or rollback is picked up without a redeploy, a failed
reload (S3 down, a tampered artifact, version skew) keeps the previous model serving and is
counted, and a caller that finds no model at all gets :class:`ModelUnavailableError` with the
reason (the API answers 503, batch fails the message so SQS retries it).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from skylift.errors import SkyliftError
from skylift.registry import DEFAULT_ALIAS
from skylift.scoring import Scorer

__all__ = ["ModelHolder", "ModelStatus", "ModelUnavailableError"]

logger = logging.getLogger(__name__)


class ModelUnavailableError(SkyliftError):
    """No model to score with; the message says why."""


@dataclass(frozen=True)
class ModelStatus:
    loaded: bool
    version: int | None
    reason: str  # why no model (or why the last reload failed), "" when all is well
    loaded_at: datetime | None


class ModelHolder:
    """The champion in memory, re-checked at most every ``refresh_seconds``.

    ``registry`` needs ``alias_etag(alias)``, ``resolve(alias)`` and ``load(version)`` (a
    :class:`~skylift.registry.ModelRegistry`). Thread-safe: one thread reloads while the
    others keep serving the current model.
    """

    def __init__(
        self,
        registry: Any | None,
        refresh_seconds: float,
        *,
        alias: str = DEFAULT_ALIAS,
        clock: Callable[[], float] = time.monotonic,
        allow_version_skew: bool = False,
        unavailable_reason: str = "",
        runtime: str = "sklearn",
    ) -> None:
        self.registry = registry
        self.refresh_seconds = refresh_seconds
        self.alias = alias
        self._clock = clock
        self._allow_version_skew = allow_version_skew
        # [deploy].runtime: "onnx" loads the verified model.onnx and refuses a version without.
        self._load_options: dict[str, Any] = {"allow_version_skew": allow_version_skew}
        if runtime != "sklearn":
            self._load_options["runtime"] = runtime
        self._scorer: Scorer | None = None
        self._etag: str | None = None
        self._checked_at: float | None = None
        self._loaded_at: datetime | None = None
        self._reason = unavailable_reason or ("no registry configured" if registry is None else "")
        self._failures = 0
        self._failures_lock = threading.Lock()
        self._lock = threading.Lock()

    @property
    def load_options(self) -> dict[str, Any]:
        """How versions are loaded (runtime, version skew): a canary is loaded alike."""
        return dict(self._load_options)

    @classmethod
    def unavailable(cls, reason: str) -> ModelHolder:
        """A holder that never has a model (config or registry could not be set up)."""
        return cls(None, float("inf"), unavailable_reason=reason)

    def current(self) -> Scorer:
        """The model to score with; raises ModelUnavailableError when there is none."""
        self.maybe_refresh()
        scorer = self._scorer
        if scorer is None:
            raise ModelUnavailableError(
                f"no model to score with: {self._reason or 'not loaded yet'}"
            )
        return scorer

    @property
    def scorer(self) -> Scorer | None:
        return self._scorer

    def status(self) -> ModelStatus:
        self.maybe_refresh()
        scorer = self._scorer
        return ModelStatus(
            loaded=scorer is not None,
            version=scorer.version if scorer else None,
            reason=self._reason,
            loaded_at=self._loaded_at,
        )

    def take_reload_failures(self) -> int:
        with self._failures_lock:
            count, self._failures = self._failures, 0
        return count

    def maybe_refresh(self) -> None:
        if self.registry is None:
            return
        now = self._clock()
        if self._checked_at is not None and now - self._checked_at < self.refresh_seconds:
            return
        # Another thread is already checking: serve what we have rather than queue behind it.
        if not self._lock.acquire(blocking=False):
            return
        try:
            self._checked_at = now
            self._refresh()
        finally:
            self._lock.release()

    def after_restore(self) -> None:
        """After a SnapStart restore: pooled connections are dead; re-check the alias now."""
        if self.registry is not None:
            self.registry.close_connections()
            self.refresh()

    def refresh(self) -> None:
        """Check the alias now (ignores the interval)."""
        with self._lock:
            self._checked_at = self._clock()
            self._refresh()

    def _refresh(self) -> None:
        assert self.registry is not None
        try:
            etag = self.registry.alias_etag(self.alias)
            if etag is None:
                self._fail(f"model {self.registry.name!r} has no {self.alias!r} alias yet")
                return
            if etag == self._etag and self._scorer is not None:
                return
            version = self.registry.resolve(self.alias)
            if self._scorer is not None and self._scorer.version == version:
                self._etag = etag  # alias rewritten, same version: nothing to load
                return
            bundle = self.registry.load(version, **self._load_options)
            scorer = Scorer(bundle)
            scorer.warm()  # the first request (or a SnapStart restore) finds it ready
        except Exception as exc:
            # Whatever went wrong (S3 down, tampered artifact, bad pickle), the model in memory
            # keeps serving; the failure is counted for the ModelReloadFailures metric.
            self._fail(f"{type(exc).__name__}: {exc}")
            return
        previous = self._scorer.version if self._scorer else None
        self._scorer = scorer
        self._etag = etag
        self._loaded_at = datetime.now(UTC)
        self._reason = ""
        logger.info(
            "serving %s version %s (was %s)", bundle.manifest.name, bundle.version, previous
        )

    def _fail(self, reason: str) -> None:
        with self._failures_lock:
            self._failures += 1
        self._reason = reason
        if self._scorer is not None:
            logger.error(
                "model reload failed, still serving version %s: %s", self._scorer.version, reason
            )
        else:
            logger.error("no model loaded: %s", reason)
