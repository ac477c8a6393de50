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

__all__ = ["ENVIRON_LOCK", "function_environment"]

# Held while a function runs, and by whatever else changes the process's environment for a
# while (the moto server's endpoint): so no one sees or restores a function's variables.
# Re-entrant: a function's import may run code that enters its scope again.
ENVIRON_LOCK = threading.RLock()


@contextmanager
def function_environment(variables: Mapping[str, str]) -> Iterator[None]:
    """``os.environ`` with ``variables`` set for the block, restored after it.

    A variable the block itself changed again is left as the block left it (the code it ran
    meant that), and one it did not is put back as it was before."""
    with ENVIRON_LOCK:
        saved = {key: os.environ.get(key) for key in variables}
        os.environ.update(variables)
        try:
            yield
        finally:
            for key, value in saved.items():
                if os.environ.get(key) != variables[key]:
                    continue
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
