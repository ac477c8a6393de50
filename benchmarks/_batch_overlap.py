"""Would overlapping read, score and write in threads pay? (issue 14; not run by ``make bench``.)

Scores a local CSV of the churn example's dirty rows with the batch fast path's pieces
(read_chunks with the schema, validate_typed, Scorer.score_frame, encode_csv), once in
sequence and once as a three-stage pipeline (a reader thread and a writer thread around the
scoring thread, queues of two chunks), best of ``SKYLIFT_BENCH_REPEATS`` each, interleaved.
pyarrow is blocked as in the layer. Usage::

    SKYLIFT_BENCH_ROWS=1000000 python -m benchmarks._batch_overlap
"""

from __future__ import annotations

import os
import queue
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from benchmarks._layer import BLOCKED

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "churn"
ROWS = int(os.environ.get("SKYLIFT_BENCH_ROWS", "1000000"))
REPEATS = int(os.environ.get("SKYLIFT_BENCH_REPEATS", "2"))
_DONE = object()


def stages(path: Path, out: Path) -> tuple[Callable[[], Iterator[Any]], Callable, Callable]:
    sys.path.insert(0, str(EXAMPLE))
    from churn_model.data import generate_churn

    from skylift.batch.fastpath import encode_csv, validate_typed
    from skylift.batch.readers import read_chunks
    from skylift.config import load_config
    from skylift.scoring import Scorer
    from skylift.training import train_candidate

    config = load_config(EXAMPLE / "skylift.toml")
    bundle = train_candidate(config, generate_churn(5000, seed=0)).bundle
    scorer = Scorer(bundle)
    schema = scorer.schema

    def chunks() -> Iterator[Any]:
        handle = path.open("rb")
        _, iterator = read_chunks(handle, "csv", chunk_rows=50_000, schema=schema)
        yield from iterator
        handle.close()

    def score(chunk: Any) -> Any:
        validation = validate_typed(schema, chunk.frame)
        scored = scorer.score_frame(validation.valid)
        scored.insert(0, "customer_id", chunk.frame["customer_id"].loc[validation.valid.index])
        scored["model_version"] = 1
        return scored

    def write(handle: Any, scored: Any, header: bool) -> None:
        handle.write(encode_csv(scored, header))

    return chunks, score, write


def sequential(chunks: Callable, score: Callable, write: Callable, out: Path) -> None:
    with out.open("wb") as handle:
        for position, chunk in enumerate(chunks()):
            write(handle, score(chunk), position == 0)


def pipelined(chunks: Callable, score: Callable, write: Callable, out: Path) -> None:
    read_q: queue.Queue[Any] = queue.Queue(2)
    write_q: queue.Queue[Any] = queue.Queue(2)

    def reader() -> None:
        for chunk in chunks():
            read_q.put(chunk)
        read_q.put(_DONE)

    def writer() -> None:
        with out.open("wb") as handle:
            position = 0
            while (scored := write_q.get()) is not _DONE:
                write(handle, scored, position == 0)
                position += 1

    threads = [threading.Thread(target=reader), threading.Thread(target=writer)]
    for thread in threads:
        thread.start()
    while (chunk := read_q.get()) is not _DONE:
        write_q.put(score(chunk))
    write_q.put(_DONE)
    for thread in threads:
        thread.join()


def main() -> None:
    sys.path.insert(0, str(EXAMPLE))
    from churn_model.data import generate_churn

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "in.csv"
        with path.open("w") as handle:
            for i, done in enumerate(range(0, ROWS, 500_000)):
                part = generate_churn(min(500_000, ROWS - done), seed=10 + i, dirty=True)
                handle.write(part.drop(columns=["churned"]).to_csv(index=False, header=(i == 0)))
        chunks, score, write = stages(path, Path(folder))
        best: dict[str, float] = {}
        outputs: dict[str, bytes] = {}
        for _ in range(REPEATS):
            for name, run in (("sequential", sequential), ("pipelined", pipelined)):
                out = Path(folder) / f"{name}.csv"
                started = time.perf_counter()
                run(chunks, score, write, out)
                best[name] = min(best.get(name, 1e9), time.perf_counter() - started)
                outputs[name] = out.read_bytes()
    assert outputs["sequential"] == outputs["pipelined"]
    assert not any(m.split(".")[0] in BLOCKED for m in sys.modules)
    threads = os.environ.get("OMP_NUM_THREADS", "default")
    print(
        f"{ROWS:,} rows, {os.cpu_count()} cpu, OMP_NUM_THREADS={threads}: sequential "
        f"{best['sequential']:.2f} s, pipelined {best['pipelined']:.2f} s "
        f"({best['sequential'] / best['pipelined']:.2f}x)"
    )


if __name__ == "__main__":
    main()
