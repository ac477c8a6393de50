"""Lambda functions run in-process: handlers imported lazily from the topology's handler string.

Lambda cannot run inside moto (no Docker), so the local stack imports ``functions.<name>.app``
and calls its ``handler`` as Lambda would: the function's environment is set for the first
import (the cold start) and for each invocation, and only then (:mod:`skylift.local.environment`);
each invocation gets a fresh :class:`LambdaContext`, and one function runs one event at a time
(one execution environment). A handler that cannot be imported yet is not fatal: the stack
starts, the failure is logged once with its reason, and the import is retried on the next event.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
import threading
from collections.abc import Mapping
from typing import Any

from skylift.local.environment import function_environment
from skylift.local.gateway import LambdaContext
from skylift.snapstart import (
    INIT_TYPE_ENV,
    ON_DEMAND_INIT,
    SNAPSTART_INIT,
    hook_counts,
    run_snapshot_then_restore,
)
from skylift.topology import FunctionSpec

__all__ = ["HandlerUnavailable", "LocalFunction"]

logger = logging.getLogger(__name__)


class HandlerUnavailable(RuntimeError):
    """The function's handler module cannot be imported (yet)."""


class LocalFunction:
    """One function of the topology, loaded on its first event."""

    def __init__(
        self,
        spec: FunctionSpec,
        environment: Mapping[str, str],
        region: str = "us-east-1",
    ) -> None:
        self.spec = spec
        # Lambda tells the init what it is; the score function's SnapStart hooks register on it.
        init_type = SNAPSTART_INIT if spec.snap_start else ON_DEMAND_INIT
        self.environment = {**environment, INIT_TYPE_ENV: init_type}
        self.region = region
        self._handler: Any = None
        self._module_name, _, self._attribute = spec.handler.rpartition(".")
        self._lock = threading.RLock()
        self._last_error: str | None = None
        self.invocations = 0

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def loaded(self) -> bool:
        return self._handler is not None

    def load(self) -> Any:
        """Import the handler (once); raises :class:`HandlerUnavailable` with the reason."""
        with self._lock:
            if self._handler is not None:
                return self._handler
            hooks_before_init = hook_counts()
            try:
                with function_environment(self.environment):
                    module = importlib.import_module(self._module_name)
                    handler = getattr(module, self._attribute)
                    if self.spec.snap_start:
                        # As Lambda does when the version is published, then for each new copy.
                        run_snapshot_then_restore(since=hooks_before_init)
            except Exception as exc:
                sys.modules.pop(self._module_name, None)  # a later import starts afresh
                reason = f"{type(exc).__name__}: {exc}"
                if reason != self._last_error:
                    logger.error(
                        "function %r: cannot import handler %s (%s); its events wait until "
                        "it can be imported",
                        self.name,
                        self.spec.handler,
                        reason,
                    )
                    self._last_error = reason
                raise HandlerUnavailable(
                    f"function {self.name!r}: handler {self.spec.handler} cannot be imported: "
                    f"{reason}"
                ) from exc
            if self._last_error is not None:
                logger.info("function %r: handler %s imported", self.name, self.spec.handler)
            self._last_error = None
            self._handler = handler
            return handler

    def findable(self) -> bool:
        """Whether the handler's module exists, without importing it (the import, Lambda's
        cold start, waits for the first event)."""
        if self._handler is not None:
            return True
        importlib.invalidate_caches()  # the file may have appeared since the last look
        try:
            found = importlib.util.find_spec(self._module_name) is not None
        except (ImportError, ValueError):  # its package is missing too
            found = False
        if not found:
            reason = f"module {self._module_name} not found"
            if reason != self._last_error:
                logger.error(
                    "function %r: handler %s: %s; its events wait until it exists",
                    self.name,
                    self.spec.handler,
                    reason,
                )
                self._last_error = reason
        return found

    def available(self) -> bool:
        try:
            self.load()
        except HandlerUnavailable:
            return False
        return True

    def context(self) -> LambdaContext:
        return LambdaContext(
            function_name=self.spec.name,
            memory_limit_in_mb=self.spec.memory_mb,
            timeout_seconds=self.spec.timeout_seconds,
            region=self.region,
        )

    def invoke(self, event: dict[str, Any], context: Any = None) -> Any:
        """Run one event; exceptions propagate (as a function error does)."""
        handler = self.load()
        with self._lock, function_environment(self.environment):
            self.invocations += 1
            return handler(event, context or self.context())

    def unload(self) -> None:
        """Forget the imported module, so the next stack gets a cold start against its own
        endpoints (handlers keep boto3 clients at module scope)."""
        with self._lock:
            if self._handler is not None:
                sys.modules.pop(self._module_name, None)
            self._handler = None
