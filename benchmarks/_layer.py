"""Run a benchmark with the Lambda layer's packages: importing this module makes ``pyarrow``
unimportable in this process (the layer has none; see benchmarks/layer_size.py), so pandas
falls back to what Lambda runs (python-backed strings, no Arrow readers). Import it before
anything imports pandas; children started with ``-m benchmarks.<script>`` import it again."""

from __future__ import annotations

import importlib.abc
import sys
from typing import Any

BLOCKED = ("pyarrow",)


class _Blocked(importlib.abc.MetaPathFinder):
    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked: not in the layer)")
        return None


if any(name.split(".")[0] in BLOCKED for name in sys.modules):
    raise RuntimeError("benchmarks._layer must be imported before pyarrow is")
sys.meta_path.insert(0, _Blocked())
