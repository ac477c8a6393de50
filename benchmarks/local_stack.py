"""Local stack figures: start/stop time, what the local API gateway adds to a request, and how
long an S3 put takes to reach the batch function through the notification, SQS and the poller.

* gateway overhead: ``POST /predict`` (1 record) over HTTP through :class:`LocalGateway`
  (request -> proxy event -> score handler -> HTTP reply, API key checked) against the same
  event handed to the same handler in-process; interleaved rounds, medians.
* S3 -> batch: a no-op batch handler stands in (the real one's scoring time is the batch
  benchmark's business); the figure is put_object -> handler entered.

Run: ``python -m benchmarks.local_stack`` (appends to benchmarks/RESULTS.md; ``--no-write``
only prints).
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import statistics
import sys
import tempfile
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "churn"
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"

NOOP_BATCH = """
    import time

    CALLS = []


    def handler(event, context):
        CALLS.append((time.perf_counter(), event))
        return {"batchItemFailures": []}
"""


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def main() -> int:
    sys.path.insert(0, str(EXAMPLE))
    sys.path.insert(0, str(ROOT))
    os.environ["POWERTOOLS_TRACE_DISABLED"] = "true"
    import requests
    from churn_model.data import generate_churn

    from skylift.config import load_config
    from skylift.local.stack import LocalStack
    from skylift.registry import ModelRegistry
    from skylift.training import train_and_register

    config = load_config(EXAMPLE / "skylift.toml")
    # Capture off: its Firehose calls are the online benchmark's subject, not this one's.
    os.environ["SKYLIFT_API__CAPTURE_SAMPLE_RATE"] = "0"
    workdir = Path(tempfile.mkdtemp())
    (workdir / "noop_batch_bench.py").write_text(textwrap.dedent(NOOP_BATCH))
    sys.path.insert(0, str(workdir))
    records = json.loads(
        generate_churn(1, seed=3).drop(columns=[config.model.target]).to_json(orient="records")
    )

    started = time.perf_counter()
    stack = LocalStack(config, clocks=False, handlers={"batch": "noop_batch_bench.handler"})
    stack.start()
    start_s = time.perf_counter() - started
    try:
        s3 = stack.client("s3")
        key = f"{config.storage.training_prefix}churn.csv"
        s3.put_object(
            Bucket=config.storage.bucket,
            Key=key,
            Body=generate_churn(2000, seed=0).to_csv(index=False).encode(),
        )
        registry = ModelRegistry.from_config(config, s3_client=s3)
        train_and_register(
            config, registry, f"s3://{config.storage.bucket}/{key}", promote=True, actor="bench"
        )
        session = requests.Session()
        session.headers.update({"x-api-key": stack.api_key})
        body = json.dumps({"records": records})
        url = f"{stack.api_url}/predict"
        assert session.post(url, data=body, headers={"content-type": "application/json"}).ok
        # The same event the gateway builds, handed to the handler directly.
        assert stack.gateway is not None
        events: list[dict] = []
        original = stack.gateway.invoke

        def recording(event: dict, context: object) -> object:
            events.append(event)
            return original(event, context)

        stack.gateway.invoke = recording
        session.post(url, data=body, headers={"content-type": "application/json"})
        stack.gateway.invoke = original
        event, score = events[0], stack.functions["score"]
        http_ms: list[float] = []
        direct_ms: list[float] = []
        with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
            for _ in range(300):
                t0 = time.perf_counter()
                session.post(url, data=body, headers={"content-type": "application/json"})
                http_ms.append((time.perf_counter() - t0) * 1000)
                t0 = time.perf_counter()
                score.invoke(event)
                direct_ms.append((time.perf_counter() - t0) * 1000)

        import noop_batch_bench  # type: ignore[import-not-found,unused-ignore]

        delivery_ms: list[float] = []
        for n in range(10):
            before = len(noop_batch_bench.CALLS)
            t0 = time.perf_counter()
            s3.put_object(Bucket=config.storage.bucket, Key=f"incoming/bench/{n}.csv", Body=b"x")
            while len(noop_batch_bench.CALLS) == before:
                time.sleep(0.005)
            delivery_ms.append((noop_batch_bench.CALLS[-1][0] - t0) * 1000)
    finally:
        t0 = time.perf_counter()
        stack.stop()
        stop_s = time.perf_counter() - t0

    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    h50, h99 = statistics.median(http_ms), percentile(http_ms, 99)
    d50, d99 = statistics.median(direct_ms), percentile(direct_ms, 99)
    report = "\n".join(
        [
            f"## local_stack ({stamp}, {platform.python_version()}, {os.cpu_count()} cpu)",
            "",
            "| figure | p50 | p99 |",
            "|---|---:|---:|",
            f"| start (moto + provisioning + gateway + poller) | {start_s * 1000:.0f} ms | |",
            f"| stop (threads joined, ports closed) | {stop_s * 1000:.0f} ms | |",
            f"| POST /predict 1 record over HTTP via gateway | {h50:.2f} ms | {h99:.2f} ms |",
            f"| same event to the handler in-process | {d50:.2f} ms | {d99:.2f} ms |",
            f"| gateway adds (p50) | {h50 - d50:+.2f} ms | |",
            f"| S3 put -> batch handler entered (10 files) | "
            f"{statistics.median(delivery_ms):.0f} ms | {max(delivery_ms):.0f} ms (max) |",
            "",
        ]
    )
    print(report)
    if "--no-write" not in sys.argv:
        with RESULTS.open("a") as handle:
            handle.write(report + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
