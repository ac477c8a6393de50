"""Cold start where it is paid: the deployed artifact on the runtime's Python version.

The layer and code assets of a real synth (``layers.artifact``: laid out as Lambda unzips
them, files dated 1980-01-01) run in fresh processes of ``[deploy].python_version``
(``-I -S -B``, only those folders on the path):

* handler: import ``functions.score.app`` (config, registry, champion fetched from a moto
  server over HTTP, sha256 checked) and answer one /predict request;
* naive: import scikit-learn, pandas and joblib from the same layer, ``joblib.load`` the same
  artifact from a local file and ``predict_proba`` one row (with bytecode);
* the handler again from a copy of the layer without its bytecode (the layer before issue 10,
  with its shared objects intact: the old recipe's stripped ones did not even import numpy);
* the handler with ``[registry].signing = "none"``: the same signed champion loaded without
  verifying its signature (kms:GetPublicKey + kms:Verify against the moto server), so
  handler / that row is the cold-start cost of verification (issue 15).

Runs are interleaved; medians of wall and CPU time (user + system of the child). Target:
handler / naive <= 1.2. Also the largest imports of the handler process (``-X importtime``),
to show where init goes.

Run: ``python -m benchmarks.cold_start`` (appends to benchmarks/RESULTS.md).
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks._results import append
from benchmarks.online_latency import (
    CREDENTIALS,
    EXAMPLE,
    moto_server_process,
    predict_event,
    setup_aws,
)

TARGET = 1.2
RUNS = 7

HANDLER = """
import json, sys
sys.path[:0] = {paths!r}
import functions.score.app as app
reply = app.handler(json.load(open({event!r})), None)
print(reply["statusCode"])
"""

NAIVE = """
import sys
sys.path[:0] = {paths!r}
import joblib
import pandas as pd
import sklearn
model = joblib.load({artifact!r})
model.predict_proba(pd.DataFrame([{row!r}]))
print(200)
"""


def run_child(python: str, code: str, env: dict[str, str], *flags: str) -> tuple[float, float, str]:
    """(wall ms, CPU ms, stderr) of one fresh process that must print 200."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run(
        [python, "-I", "-S", "-B", *flags, "-c", code], env=env, capture_output=True, text=True
    )
    wall = (time.perf_counter() - started) * 1000
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000
    if result.returncode != 0 or result.stdout.strip().splitlines()[-1:] != ["200"]:
        raise RuntimeError(f"child failed: {result.stdout[-500:]}\n{result.stderr[-2000:]}")
    return wall, cpu, result.stderr


def largest_imports(stderr: str, count: int = 10) -> list[tuple[str, float]]:
    """Top-level packages by cumulative import time, from ``-X importtime`` output."""
    packages: dict[str, float] = {}
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _self, cumulative, name = (part.strip() for part in line[len("import time:") :].split("|"))
        if cumulative.isdigit() and "." not in name and not name.startswith("_"):
            packages[name] = max(packages.get(name, 0.0), int(cumulative) / 1000)
    return sorted(packages.items(), key=lambda item: -item[1])[:count]


def main() -> int:
    sys.path.insert(0, str(EXAMPLE))
    os.environ.update(CREDENTIALS)  # this process registers the model on the moto server
    from churn_model.data import generate_churn

    from layers.artifact import deployed_artifact
    from layers.interpreter import find_interpreter
    from skylift.bundle import TrainingDataRef
    from skylift.config import load_config
    from skylift.training import train_candidate

    config = load_config(EXAMPLE / "skylift.toml")
    python = find_interpreter(config.deploy.python_version)
    frame = generate_churn(3000, seed=1)
    data = TrainingDataRef(uri="memory://churn", sha256="0" * 64, rows=len(frame))
    bundle = train_candidate(config, frame, data).bundle
    records = json.loads(
        generate_churn(1, seed=99).drop(columns=["churned"]).to_json(orient="records")
    )
    row = {k: v for k, v in records[0].items() if k != config.model.id_column}

    with tempfile.TemporaryDirectory() as tmp, moto_server_process() as endpoint:
        work = Path(tmp)
        artifact = deployed_artifact(config, work / "lambda")
        bare_layer = work / "bare" / "python"
        shutil.copytree(artifact.layer, bare_layer, ignore=shutil.ignore_patterns("__pycache__"))
        setup_aws(endpoint, config, bundle)
        (work / "model.joblib").write_bytes(bundle.artifact)
        event = work / "event.json"
        event.write_text(json.dumps(predict_event(records)))
        env = {
            "PATH": "/usr/bin:/bin",
            **CREDENTIALS,
            "AWS_ENDPOINT_URL": endpoint,
            "SKYLIFT_CONFIG": str(artifact.task / "skylift.toml"),
            "POWERTOOLS_SERVICE_NAME": "skylift",
            "POWERTOOLS_METRICS_NAMESPACE": "Skylift",
            "POWERTOOLS_TRACE_DISABLED": "true",
        }
        handler = HANDLER.format(paths=artifact.sys_path(), event=str(event))
        unsigned_env = {**env, "SKYLIFT_REGISTRY__SIGNING": "none"}
        children = {
            "handler": (handler, env),
            "naive": (
                NAIVE.format(
                    paths=[str(artifact.layer)], artifact=str(work / "model.joblib"), row=row
                ),
                env,
            ),
            "handler, layer without bytecode": (
                HANDLER.format(paths=[str(artifact.task), str(bare_layer)], event=str(event)),
                env,
            ),
            "handler, signature not verified": (handler, unsigned_env),
        }
        samples: dict[str, list[tuple[float, float]]] = {name: [] for name in children}
        for code, child_env in children.values():  # warm the page cache
            run_child(python, code, child_env)
        for _ in range(RUNS):
            for name, (code, child_env) in children.items():
                wall, cpu, _stderr = run_child(python, code, child_env)
                samples[name].append((wall, cpu))
        _wall, _cpu, importtime = run_child(python, handler, env, "-X", "importtime")

    medians = {
        name: (statistics.median(w for w, _ in runs), statistics.median(c for _, c in runs))
        for name, runs in samples.items()
    }
    naive_wall, naive_cpu = medians["naive"]
    lines = [
        f"Deployed assets of a real synth, run by {python} (`-I -S -B`, files dated 1980-01-01); "
        f"medians of {RUNS} interleaved runs; model fetched from a moto server over HTTP.",
        "",
        "| process | wall ms | CPU ms | wall / naive | CPU / naive | target |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, (wall, cpu) in medians.items():
        target = f"<= {TARGET}" if name == "handler" else ""
        lines.append(
            f"| {name} | {wall:.0f} | {cpu:.0f} | {wall / naive_wall:.2f} | "
            f"{cpu / naive_cpu:.2f} | {target} |"
        )
    signed_wall, signed_cpu = medians["handler"]
    plain_wall, plain_cpu = medians["handler, signature not verified"]
    lines += [
        "",
        f"Signature verification at cold start (issue 15): handler / handler not verifying = "
        f"{signed_wall / plain_wall:.2f} wall ({signed_wall - plain_wall:+.0f} ms), "
        f"{signed_cpu / plain_cpu:.2f} CPU ({signed_cpu - plain_cpu:+.0f} ms).",
    ]
    lines += ["", "Largest imports of the handler process (`-X importtime`, cumulative):", ""]
    lines += [f"- `{name}`: {ms:.0f} ms" for name, ms in largest_imports(importtime)]
    append("cold_start", lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
