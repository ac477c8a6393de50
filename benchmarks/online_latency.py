"""Online scoring latency: the score handler against the bare model, in the same run.

Three figures, each a ratio to a baseline measured alongside it (interleaved, so load from
other processes hits both sides alike):

* handler latency (event in, proxy reply out, in-process) for 1 and 100 records against
  ``pipeline.predict_proba`` on the same rows as a ready DataFrame. Targets: p50 ratio <= 1.15
  (1 record), <= 1.10 (100 records), p99 reported.
* cold start: a fresh process that imports ``functions.score.app`` (config from the env, model
  fetched from a moto server over HTTP) and serves one request, against a naive process that
  imports scikit-learn, ``joblib.load``-s the same artifact from a local file and predicts one
  row. Target: ratio <= 1.2.
* capture on (sample rate 1, Firehose on the moto server) against capture off: p50 ratio
  <= 1.1.
* CPU contention: 1-record requests while busy processes keep every core loaded, the score
  function's threading (``OMP_NUM_THREADS=1``, as the stacks set it; applied in-process with
  threadpoolctl) against the runtime's default thread pools. Target: p99 ratio <= 0.5 (OpenMP's
  spin-waiting pool gave p99 1.76 s against 26 ms single-threaded).

The moto server runs in a separate process so that serving Firehose and S3 calls does not
compete with the measured process for the GIL, as on AWS.

Run: ``python -m benchmarks.online_latency`` (appends to benchmarks/RESULTS.md; ``--no-write``
only prints; ``--contention`` measures and prints only the contention figure;
``--request-path`` measures only the two handler rows and prints them; ``--rollout`` measures
only the rollout rows below and appends them).

Rollout rows (``--rollout``): the same handler with a 10% canary active (version 2 loaded
beside the champion, routed per customer id) against no candidate, and with a shadow
candidate against none, at 1 and 100 records; p50 and p99 ratios, target <= 1.05. Cold start
with the canary loaded too (a fresh process loads both versions) against the same process
without a candidate, and the extra resident memory of the loaded canary.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "churn"
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
EVENT_TEMPLATE = ROOT / "events" / "api_predict.json"

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
TARGETS = {
    "1 record": 1.15,
    "100 records": 1.10,
    "cold start": 1.2,
    "capture on/off": 1.1,
    "1 record, CPU contention": 0.5,
    "canary on/off, 1 record": 1.05,
    "canary on/off, 100 records": 1.05,
    "shadow on/off, 1 record": 1.05,
    "shadow on/off, 100 records": 1.05,
    "cold start, canary loaded": 1.5,
}
# Figures judged on their p99 ratio (tail latency is the point), the rest on p50.
P99_JUDGED = {"1 record, CPU contention"}
BURNER = "while True:\n    pass\n"


# ---- helpers ----------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def moto_server_process() -> Iterator[str]:
    """A moto server in its own process on 127.0.0.1 (a free port)."""
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("moto server did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def interleaved(
    a: Callable[[], Any], b: Callable[[], Any], rounds: int, warmup: int = 20
) -> tuple[list[float], list[float]]:
    """Time a and b alternately (milliseconds each)."""
    for _ in range(warmup):
        a()
        b()
    times_a: list[float] = []
    times_b: list[float] = []
    clock = time.perf_counter
    for _ in range(rounds):
        start = clock()
        a()
        times_a.append((clock() - start) * 1000)
        start = clock()
        b()
        times_b.append((clock() - start) * 1000)
    return times_a, times_b


def in_blocks(
    a: Callable[[], Any],
    b: Callable[[], Any],
    *,
    blocks: int,
    size: int,
    settle: Callable[[], Any],
) -> tuple[list[float], list[float]]:
    """Time a and b in alternating blocks of back-to-back calls (milliseconds each).

    For work that continues in the background (capture): strict alternation would charge a's
    background sends to b. Inside a block a's sends compete with a's own next requests, as
    under sustained load; ``settle`` (untimed) drains them before b's block starts.
    """
    for _ in range(size):
        a()
        b()
    settle()
    times_a: list[float] = []
    times_b: list[float] = []
    clock = time.perf_counter
    for _ in range(blocks):
        for call, times in ((a, times_a), (b, times_b)):
            for _ in range(size):
                start = clock()
                call()
                times.append((clock() - start) * 1000)
            settle()
    return times_a, times_b


def predict_event(records: list[dict[str, Any]]) -> dict[str, Any]:
    event = json.loads(EVENT_TEMPLATE.read_text())
    event["body"] = json.dumps({"records": records})
    event["isBase64Encoded"] = False
    return event


# ---- setup ------------------------------------------------------------------------------------


def create_signing_key(endpoint: str, config: Any) -> None:
    """The key the stack provisions (as the local stack does), so versions are signed."""
    import boto3

    if config.signing_key is not None:
        kms = boto3.client("kms", endpoint_url=endpoint, region_name="us-east-1")
        key = kms.create_key(KeyUsage="SIGN_VERIFY", KeySpec="ECC_NIST_P256")["KeyMetadata"]
        kms.create_alias(AliasName=config.default_signing_alias, TargetKeyId=key["KeyId"])


def setup_aws(endpoint: str, config: Any, bundle: Any) -> None:
    import boto3

    from skylift.registry import ModelRegistry

    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket=config.storage.bucket)
    create_signing_key(endpoint, config)
    registry = ModelRegistry.from_config(config, s3_client=s3, endpoint_url=endpoint)
    registry.promote(int(registry.register(bundle).version or 0))
    firehose = boto3.client("firehose", endpoint_url=endpoint, region_name="us-east-1")
    firehose.create_delivery_stream(
        DeliveryStreamName=config.api.capture_stream,
        DeliveryStreamType="DirectPut",
        ExtendedS3DestinationConfiguration={
            "RoleARN": "arn:aws:iam::123456789012:role/skylift-capture",
            "BucketARN": f"arn:aws:s3:::{config.storage.bucket}",
            "Prefix": config.storage.capture_prefix,
        },
    )


# ---- CPU contention ---------------------------------------------------------------------------


@contextlib.contextmanager
def busy_cores() -> Iterator[int]:
    """One spinning process per core (other tenants of a loaded host), stopped afterwards."""
    count = os.cpu_count() or 2
    burners = [subprocess.Popen([sys.executable, "-c", BURNER]) for _ in range(count)]
    try:
        time.sleep(0.5)
        yield count
    finally:
        for burner in burners:
            burner.terminate()
        for burner in burners:
            burner.wait(timeout=10)


def contention(config: Any, event: dict[str, Any], rounds: int) -> tuple[list[float], list[float]]:
    """1-record latency under CPU contention: one native thread against the default pools."""
    from skylift.serving import create_service
    from skylift.topology import SCORE_THREADING

    saved = {name: os.environ.get(name) for name in SCORE_THREADING}
    os.environ.update(SCORE_THREADING)
    try:
        one_thread = create_service(config)  # reads OMP_NUM_THREADS at init, as in Lambda
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    default = create_service(config)
    with busy_cores():
        return interleaved(
            functools.partial(one_thread.handle, event, None),
            functools.partial(default.handle, event, None),
            rounds,
        )


# ---- cold start -------------------------------------------------------------------------------

HANDLER_CHILD = """
import json, os, sys
sys.path.insert(0, {example!r})
import functions.score.app as app
reply = app.handler(json.loads(open({event!r}).read()), None)
sys.stdout.write(str(reply["statusCode"]) + "\\n")
sys.stdout.flush()
os._exit(0)
"""

NAIVE_CHILD = """
import os, sys
sys.path.insert(0, {example!r})
import joblib
import pandas as pd
import sklearn
model = joblib.load({artifact!r})
row = pd.DataFrame([{row!r}])
model.predict_proba(row)
sys.stdout.write("200\\n")
sys.stdout.flush()
os._exit(0)
"""


def time_process(code: str, env: dict[str, str]) -> float:
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True
    )
    elapsed = (time.perf_counter() - start) * 1000
    if result.returncode != 0 or result.stdout.strip().splitlines()[-1:] != ["200"]:
        raise RuntimeError(f"child failed: {result.stdout}\n{result.stderr[-2000:]}")
    return elapsed


def cold_start(endpoint: str, bundle: Any, records: list[dict[str, Any]], runs: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        artifact = Path(tmp) / "model.joblib"
        artifact.write_bytes(bundle.artifact)
        event_file = Path(tmp) / "event.json"
        event_file.write_text(json.dumps(predict_event(records[:1])))
        row = {k: v for k, v in records[0].items() if k != "customer_id"}
        base_env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SKYLIFT_"))}
        base_env.update(CREDENTIALS)
        handler_env = {
            **base_env,
            "AWS_ENDPOINT_URL": endpoint,
            "SKYLIFT_CONFIG": str(EXAMPLE / "skylift.toml"),
            "POWERTOOLS_SERVICE_NAME": "skylift",
            "POWERTOOLS_METRICS_NAMESPACE": "Skylift",
        }
        handler_code = HANDLER_CHILD.format(example=str(EXAMPLE), event=str(event_file))
        naive_code = NAIVE_CHILD.format(example=str(EXAMPLE), artifact=str(artifact), row=row)
        time_process(naive_code, base_env)  # warm the OS file cache for both
        time_process(handler_code, handler_env)
        handler_times, naive_times = [], []
        for _ in range(runs):
            handler_times.append(time_process(handler_code, handler_env))
            naive_times.append(time_process(naive_code, base_env))
    return {"handler": handler_times, "naive": naive_times}


# ---- main -------------------------------------------------------------------------------------


def _rss_mb() -> float:
    """Resident set size of this process (Linux /proc), in MB."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


def rollout_figures(endpoint: str, config: Any, bundle: Any, records: list[dict[str, Any]]):
    """Canary and shadow on vs off, cold start with the canary loaded, the canary's memory."""
    import boto3

    from skylift.registry import ModelRegistry
    from skylift.rollout import abort_candidate, start_candidate
    from skylift.serving import create_service

    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    registry = ModelRegistry.from_config(config, s3_client=s3, endpoint_url=endpoint)
    candidate = int(registry.register(bundle).version or 0)
    off = config.model_copy(update={"api": config.api.model_copy(update={"capture_stream": None})})
    plain = create_service(off)
    figures = []
    extra_mb = 0.0
    for mode in ("canary", "shadow"):
        start_candidate(registry, candidate, mode, percent=10 if mode == "canary" else None)
        with_candidate = create_service(off, load=False)
        with_candidate.holder.refresh()
        assert with_candidate.candidates is not None
        before = _rss_mb()
        with_candidate.candidates.refresh()  # loads and warms the canary (not a shadow)
        if mode == "canary":
            assert with_candidate.candidates.canary() is not None, "canary not loaded"
            extra_mb = _rss_mb() - before
        for count, rounds in ((1, 400), (100, 150)):
            event = predict_event(records[:count])
            on_ms, off_ms = interleaved(
                functools.partial(with_candidate.handle, event, None),
                functools.partial(plain.handle, event, None),
                rounds,
            )
            label = f"{mode} on/off, {count} record{'s' if count > 1 else ''}"
            figures.append(_figure(label, f"{mode} on", on_ms, "no candidate", off_ms))
        abort_candidate(registry)
    # cold start: alternate runs with and without a canary (the alias moves between them)
    with tempfile.TemporaryDirectory() as tmp:
        event_file = Path(tmp) / "event.json"
        event_file.write_text(json.dumps(predict_event(records[:1])))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SKYLIFT_"))}
        env.update(
            CREDENTIALS,
            AWS_ENDPOINT_URL=endpoint,
            SKYLIFT_CONFIG=str(EXAMPLE / "skylift.toml"),
            POWERTOOLS_SERVICE_NAME="skylift",
            POWERTOOLS_METRICS_NAMESPACE="Skylift",
        )
        code = HANDLER_CHILD.format(example=str(EXAMPLE), event=str(event_file))
        time_process(code, env)
        with_canary, alone = [], []
        for _ in range(5):
            start_candidate(registry, candidate, "canary", percent=10)
            with_canary.append(time_process(code, env))
            abort_candidate(registry)
            alone.append(time_process(code, env))
    figures.append(
        _figure("cold start, canary loaded", "champion + canary", with_canary, "champion", alone)
    )
    return figures, extra_mb


def main() -> int:
    sys.path.insert(0, str(EXAMPLE))
    os.environ.update(CREDENTIALS)
    os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "Skylift")
    os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "skylift")
    os.environ["POWERTOOLS_TRACE_DISABLED"] = "true"
    import pandas as pd
    from churn_model.data import generate_churn

    from skylift.bundle import TrainingDataRef
    from skylift.config import load_config
    from skylift.serving import create_service
    from skylift.training import train_candidate

    config = load_config(EXAMPLE / "skylift.toml")
    frame = generate_churn(3000, seed=1)
    bundle = train_candidate(
        config, frame, TrainingDataRef(uri="memory://churn", sha256="0" * 64, rows=len(frame))
    ).bundle
    rows = generate_churn(100, seed=99).drop(columns=[config.model.target])
    records = json.loads(rows.to_json(orient="records"))
    features = [c for c in rows.columns if c != config.model.id_column]

    figures: list[tuple[str, str, float, float, float, float, float]] = []
    with moto_server_process() as endpoint:
        os.environ["AWS_ENDPOINT_URL"] = endpoint
        setup_aws(endpoint, config, bundle)
        off = config.model_copy(
            update={"api": config.api.model_copy(update={"capture_stream": None})}
        )
        on = config.model_copy(
            update={"api": config.api.model_copy(update={"capture_sample_rate": 1.0})}
        )
        if "--rollout" in sys.argv:  # only the rollout rows
            with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
                figures, extra_mb = rollout_figures(endpoint, off_config(config), bundle, records)
            report = _report(figures, sent=0, failures=0, flushed=True, rollout_mb=extra_mb)
            print(report)
            if "--no-write" not in sys.argv:
                with RESULTS.open("a") as handle:
                    handle.write(report + "\n")
            return 0
        if "--contention" in sys.argv:  # only that figure (quick)
            with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
                one_ms, default_ms = contention(off, predict_event(records[:1]), rounds=150)
            figure = _figure(
                "1 record, CPU contention", "1 thread", one_ms, "default threads", default_ms
            )
            print(_report([figure], sent=0, failures=0, flushed=True))
            return 0
        service_off = create_service(off)
        service_on = create_service(on)
        model = service_off.holder.current().model
        # EMF lines are written (to /dev/null) as Lambda writes them to its log.
        with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
            for label, count, rounds in (("1 record", 1, 400), ("100 records", 100, 150)):
                event = predict_event(records[:count])
                frame_rows = pd.DataFrame(records[:count])[features]
                handler_ms, raw_ms = interleaved(
                    functools.partial(service_off.handle, event, None),
                    functools.partial(model.predict_proba, frame_rows),
                    rounds,
                )
                figures.append(_figure(label, "handler", handler_ms, "predict_proba", raw_ms))
            if "--request-path" in sys.argv:
                print(_report(figures, sent=0, failures=0, flushed=True), file=sys.stderr)
                return 0
            event = predict_event(records[:1])
            on_ms, off_ms = in_blocks(
                lambda: service_on.handle(event, None),
                lambda: service_off.handle(event, None),
                blocks=4,
                size=300,  # ~1.5 s per block: longer than the capture linger (1 s)
                settle=lambda: service_on.flush(timeout=30),
            )
            flushed = service_on.flush(timeout=30)
            figures.append(_figure("capture on/off", "capture on", on_ms, "capture off", off_ms))
            one_ms, default_ms = contention(off, event, rounds=150)
            figures.append(
                _figure(
                    "1 record, CPU contention",
                    "1 thread",
                    one_ms,
                    "default threads",
                    default_ms,
                )
            )
        failures = service_on.capture.take_failures()
        sent = getattr(service_on.capture, "sent", 0)
        cold = cold_start(endpoint, bundle, records, runs=5)
        figures.append(
            _figure(
                "cold start", "handler process", cold["handler"], "naive process", cold["naive"]
            )
        )
    report = _report(figures, sent=sent, failures=failures, flushed=flushed)
    print(report)
    if "--no-write" not in sys.argv:
        with RESULTS.open("a") as handle:
            handle.write(report + "\n")
    return 0


def _figure(
    label: str, name: str, measured: list[float], baseline_name: str, baseline: list[float]
) -> tuple[str, str, float, float, float, float, float]:
    p50, p99 = statistics.median(measured), percentile(measured, 99)
    b50, b99 = statistics.median(baseline), percentile(baseline, 99)
    ratio = p99 / b99 if label in P99_JUDGED else p50 / b50
    return (label, f"{name} vs {baseline_name}", p50, p99, b50, b99, ratio)


def off_config(config: Any) -> Any:
    return config.model_copy(update={"api": config.api.model_copy(update={"capture_stream": None})})


def _report(
    figures: list[tuple],
    *,
    sent: int,
    failures: int,
    flushed: bool,
    rollout_mb: float | None = None,
) -> str:
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"## online_latency ({stamp}, {platform.python_version()}, {os.cpu_count()} cpu)",
        "",
        "| case | measured vs baseline | p50 ms | p99 ms | baseline p50 ms | baseline p99 ms "
        "| p50 added ms | ratio (p50; p99 for contention) | target | met |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for label, what, p50, p99, b50, b99, ratio in figures:
        target = TARGETS[label]
        lines.append(
            f"| {label} | {what} | {p50:.2f} | {p99:.2f} | {b50:.2f} | {b99:.2f} "
            f"| {p50 - b50:+.2f} | {ratio:.3f} | <= {target} | {'yes' if ratio <= target else 'NO'} |"
        )
    if rollout_mb is not None:
        lines += [
            "",
            f"Rollout: loading the 10% canary beside the champion added {rollout_mb:.1f} MB of "
            "RSS (the candidate holder keeps one canary at most). "
            "Shadow candidates are never loaded by the score function. Cold start: 5 fresh "
            "processes each, alternating, medians.",
            "",
        ]
        return "\n".join(lines)
    lines += [
        "",
        f"Capture: {sent} records delivered to Firehose (moto server), {failures} failed, "
        f"queue drained: {flushed}. Cold start: 5 fresh processes each, medians; the handler "
        "process loads its config, fetches the model from S3 (moto over HTTP), checks its sha256.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
