"""Append a benchmark's table to benchmarks/RESULTS.md with a dated heading."""

from __future__ import annotations

import os
import platform
from datetime import UTC, datetime
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def append(name: str, lines: list[str]) -> None:
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    heading = f"## {name} ({stamp}, {platform.python_version()}, {os.cpu_count()} cpu)"
    text = "\n".join([heading, "", *lines, ""])
    print(text)
    with RESULTS.open("a") as handle:
        handle.write("\n" + text + "\n")
