"""Batch fan-out on one machine: one process over the whole file vs the fan-out's plan on 2, 4
and 8 worker processes (``skylift batch score --workers``): rows/s, speed-up per worker
(target >= 0.8 x workers up to the core count) and peak RSS per worker (target: flat).

Each run is a fresh process; a sampler reads the VmHWM of every process under it, so a
worker's peak is its own. Rows: SKYLIFT_BENCH_FANOUT_ROWS (default 1,000,000; the issue's
4,000,000 takes minutes per run on a small machine). Workers: SKYLIFT_BENCH_FANOUT_WORKERS.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchmarks._results import append

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "churn"
ROWS = int(os.environ.get("SKYLIFT_BENCH_FANOUT_ROWS", "1000000"))
WORKERS = [int(w) for w in os.environ.get("SKYLIFT_BENCH_FANOUT_WORKERS", "2,4,8").split(",")]


def _hwm_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text()
    except OSError:
        return ""


def child(workdir: str, workers: int) -> None:
    """Score workdir/bench.csv; print rows, seconds and each process's peak RSS as JSON."""
    sys.path.insert(0, str(EXAMPLE))
    from skylift.batch import BatchJob
    from skylift.batch.local_fanout import score_file_fanned
    from skylift.bundle import ModelBundle
    from skylift.config import load_config
    from skylift.scoring import Scorer

    config = load_config(EXAMPLE / "skylift.toml")
    scorer = Scorer(ModelBundle.load_dir(Path(workdir) / "bundle"))
    peaks: dict[int, float] = {}
    done = threading.Event()

    def sample() -> None:  # workers exit with the pool: read their peaks while they live
        while not done.wait(0.1):
            for pid in _children(os.getpid()):
                if "resource_tracker" in _cmdline(pid):
                    continue  # multiprocessing's helper, not a worker
                peaks[pid] = max(peaks.get(pid, 0.0), _hwm_mb(pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    source, out = Path(workdir) / "bench.csv", Path(workdir) / f"out-{workers}"
    started = time.perf_counter()
    if workers == 1:
        manifest = BatchJob(config, lambda: scorer).score_file(source, out)
    else:
        manifest = score_file_fanned(
            config, scorer, source, out, ranges=4 * workers, workers=workers
        )
    seconds = time.perf_counter() - started
    done.set()
    sampler.join()
    worker_peaks = sorted(peaks.values()) if workers > 1 else [_hwm_mb(os.getpid())]
    print(
        json.dumps(
            {
                "rows": manifest.rows_read,
                "seconds": seconds,
                "worker_peak_mb": worker_peaks,
                "parent_peak_mb": _hwm_mb(os.getpid()),
            }
        )
    )


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "child":
        child(sys.argv[2], int(sys.argv[3]))
        return
    sys.path.insert(0, str(EXAMPLE))
    from churn_model.data import generate_churn

    from skylift.config import load_config
    from skylift.training import train_candidate

    config = load_config(EXAMPLE / "skylift.toml")
    with tempfile.TemporaryDirectory() as workdir:
        train_candidate(config, generate_churn(5000, seed=0)).bundle.save(Path(workdir) / "bundle")
        with (Path(workdir) / "bench.csv").open("w") as handle:
            for i, done in enumerate(range(0, ROWS, 500_000)):
                part = generate_churn(min(500_000, ROWS - done), seed=10 + i, dirty=True)
                handle.write(part.drop(columns=["churned"]).to_csv(index=False, header=(i == 0)))
        results = {}
        for workers in [1, *WORKERS]:
            run = subprocess.run(
                [sys.executable, "-m", "benchmarks.batch_fanout", "child", workdir, str(workers)],
                capture_output=True,
                text=True,
                cwd=ROOT,
            )
            if run.returncode != 0:
                raise SystemExit(run.stderr[-2000:])
            results[workers] = json.loads(run.stdout.strip().splitlines()[-1])
            print(workers, results[workers], flush=True)
        outputs = [
            (Path(workdir) / f"out-{w}" / "predictions" / "bench.csv").read_bytes()
            for w in [1, *WORKERS]
        ]
        identical = all(o == outputs[0] for o in outputs)
    single = results[1]
    base_rate = single["rows"] / single["seconds"]
    cores = os.cpu_count() or 1
    lines = [
        f"{ROWS:,} rows; {cores} cores (load average {os.getloadavg()[0]:.1f} at the end); "
        f"fan-out output identical to the single run: {identical}.",
        "",
        "| workers | seconds | rows/s | speed-up | speed-up / worker | peak RSS per worker MB |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for workers, figures in results.items():
        rate = figures["rows"] / figures["seconds"]
        peaks = figures["worker_peak_mb"]
        lines.append(
            f"| {workers if workers > 1 else '1 (single)'} | {figures['seconds']:.1f} | "
            f"{rate:,.0f} | {rate / base_rate:.2f} | {rate / base_rate / workers:.2f} | "
            f"{min(peaks):.0f}-{max(peaks):.0f} |"
        )
    lines += [
        "",
        "Target: speed-up >= 0.8 x workers up to the core count; peak RSS per worker flat "
        "(each worker holds one chunk, whatever the file size).",
    ]
    append("batch_fanout", lines)


if __name__ == "__main__":
    main()
