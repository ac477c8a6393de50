"""Lambda SnapStart runtime hooks for the score function.

With SnapStart, Lambda runs the function's init once when a version is published, snapshots
the environment, and starts new environments from that snapshot. ``snapshot_restore_py`` (part
of Lambda's managed Python runtimes, not of the layer) holds the hooks the runtime calls:
before the snapshot (load and warm the model) and after each restore (re-check the champion,
reconnect, reseed). Outside Lambda the module is absent and nothing is registered, except where
the local stack provides it and calls the hooks as Lambda would
(:func:`skylift.local.functions` with SnapStart on).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

__all__ = [
    "INIT_TYPE_ENV",
    "ON_DEMAND_INIT",
    "SNAPSTART_INIT",
    "hook_counts",
    "register_snapstart_hooks",
    "run_snapshot_then_restore",
]

logger = logging.getLogger(__name__)

# Set by Lambda for the init: "on-demand", "provisioned-concurrency" or "snap-start".
INIT_TYPE_ENV = "AWS_LAMBDA_INITIALIZATION_TYPE"
SNAPSTART_INIT = "snap-start"
ON_DEMAND_INIT = "on-demand"


def register_snapstart_hooks(before: Callable[[], None], after: Callable[[], None]) -> bool:
    """Register the hooks with the runtime when this init is a SnapStart one; False otherwise
    (no snapshot will be taken, so nothing would ever call them)."""
    if os.environ.get(INIT_TYPE_ENV) != SNAPSTART_INIT:
        return False
    try:
        from snapshot_restore_py import register_after_restore, register_before_snapshot
    except ImportError:
        return False
    register_before_snapshot(before)
    register_after_restore(after)
    return True


def hook_counts() -> tuple[int, int]:
    """How many before-snapshot and after-restore hooks are registered (in this process)."""
    try:
        from snapshot_restore_py import get_after_restore, get_before_snapshot
    except ImportError:
        return 0, 0
    return len(get_before_snapshot()), len(get_after_restore())


def run_snapshot_then_restore(since: tuple[int, int] = (0, 0)) -> int:
    """Do what Lambda does between publishing a version and the first restored invoke: run the
    before-snapshot hooks (in reverse order of registration), then the after-restore hooks (in
    order), those registered after ``since`` (:func:`hook_counts` before the init). Returns
    how many hooks ran; 0 without ``snapshot_restore_py``."""
    try:
        from snapshot_restore_py import get_after_restore, get_before_snapshot
    except ImportError:
        return 0
    before = list(get_before_snapshot())[since[0] :]
    after = list(get_after_restore())[since[1] :]
    for hook, args, kwargs in reversed(before):
        hook(*args, **kwargs)
    for hook, args, kwargs in after:
        hook(*args, **kwargs)
    logger.info(
        "SnapStart: ran %d before-snapshot and %d after-restore hooks", len(before), len(after)
    )
    return len(before) + len(after)
