"""A local function's environment variables, set only while its code runs.

Lambda gives each function its own process and environment; here every function shares this
process and ``os.environ``. So a function's variables (its config file, bucket, function name,
init type) are set for its import and for each invocation, then put back as they were, and
one process-wide lock lets one function at a time see its variables: the local stack runs its
functions one event at a time, whichever thread (gateway, poller, scheduler) delivers it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

__all__ = ["function_environment"]

# Re-entrant: a function's import may run code that enters its scope again.
_ENVIRON_LOCK = threading.RLock()


@contextmanager
def function_environment(variables: Mapping[str, str]) -> Iterator[None]:
    """``os.environ`` with ``variables`` set for the block, restored after it."""
    with _ENVIRON_LOCK:
        saved = {key: os.environ.get(key) for key in variables}
        os.environ.update(variables)
        try:
            yield
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
