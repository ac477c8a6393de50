"""`python -m benchmarks` (make bench): run every benchmark script; each appends its table to
benchmarks/RESULTS.md. Ratios are against baselines measured in the same run, never absolute
timings. Pass names to run a subset: `python -m benchmarks online_latency`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    scripts = sorted(p for p in HERE.glob("*.py") if not p.name.startswith("_"))
    if argv:
        scripts = [p for p in scripts if p.stem in argv]
    failed = []
    for script in scripts:
        print(f"== {script.stem}", flush=True)
        result = subprocess.run(
            [sys.executable, "-m", f"benchmarks.{script.stem}"], cwd=HERE.parent
        )
        if result.returncode != 0:
            failed.append(script.stem)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
