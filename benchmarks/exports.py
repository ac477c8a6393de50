"""The onnx runtime against the sklearn runtime, on the same (portable) churn model.

* layer size: both layers as built by ``layers.build`` (3.12 bytecode of what the handlers
  import), unzipped; target onnx / sklearn <= 0.4;
* cold start: a fresh ``python3.12 -I -S -B`` with only the code asset and one layer on its path
  (read as Lambda mounts them: nothing written) imports skylift, verifies and loads the model
  (model.joblib, or model.onnx) and scores one validated record, as a function's init and first
  request do; medians of interleaved runs; target onnx / sklearn <= 0.35;
* latency: Scorer.score_records of 1 and 100 validated records, as the API scores them
  (medians), and batch rows/s (Scorer.score of a 50,000-row frame), in this process;
* what ``import pandas`` would add to the onnx cold start (the API path no longer imports it).

Run: ``python -m benchmarks.exports`` (appends to benchmarks/RESULTS.md).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks._results import append

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "churn"
RUNS = 7
LAYER_TARGET = 0.4
COLD_TARGET = 0.35

CHILD = """
import sys
sys.path[:0] = {paths!r}
from pathlib import Path
from skylift.bundle import ModelBundle
from skylift.scoring import Scorer
d = Path({bundle!r})
manifest = (d / "manifest.json").read_text()
if {onnx!r}:
    bundle = ModelBundle.load_onnx((d / "model.onnx").read_bytes(), manifest)
else:
    bundle = ModelBundle.load((d / "model.joblib").read_bytes(), manifest)
scorer = Scorer(bundle)
validation = scorer.schema.validate_records([{record!r}])
scorer.score_records(validation)  # as the API scores (onnx: the columns, no pandas)
print(200)
"""


# What pandas would cost the onnx runtime's cold start (the API scores the validated columns
# without it): import time and resident memory of `import pandas` after what that path imports.
PANDAS_CHILD = """
import os, sys, time
sys.path[:0] = {paths!r}
def rss_mb():  # resident now (not the peak: onnxruntime's load peaks before pandas)
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
import numpy, onnxruntime, pydantic, boto3
before = rss_mb()
started = time.perf_counter()
import pandas
took = (time.perf_counter() - started) * 1000
after = rss_mb()
print(f"{{took}} {{after - before}} {{after}}")
print(200)
"""


def run_pandas_child(python: str, code: str) -> tuple[float, float, float]:
    """(import pandas ms, RSS it adds MB, RSS after MB) in a fresh interpreter."""
    result = subprocess.run(
        [python, "-I", "-S", "-B", "-c", code],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"},
    )
    if result.returncode != 0:
        raise RuntimeError(f"child failed:\n{result.stderr[-2000:]}")
    took, added, peak = result.stdout.split()[:3]
    return float(took), float(added), float(peak)


def run_child(python: str, code: str) -> float:
    started = time.perf_counter()
    result = subprocess.run(
        [python, "-I", "-S", "-B", "-c", code],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"},
    )
    wall = (time.perf_counter() - started) * 1000
    if result.returncode != 0 or result.stdout.strip().splitlines()[-1:] != ["200"]:
        raise RuntimeError(f"child failed:\n{result.stderr[-2000:]}")
    return wall


def median_ms(function, repeats: int) -> float:  # type: ignore[no-untyped-def]
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def main() -> int:
    sys.path.insert(0, str(EXAMPLE))
    from churn_model.data import generate_churn
    from churn_model.train import train_portable

    from infrastructure.packaging import stage_code_asset
    from layers.build import build_layers
    from layers.interpreter import find_interpreter
    from skylift.bundle import ModelBundle
    from skylift.config import load_config
    from skylift.scoring import Scorer
    from skylift.training import train_candidate

    config = load_config(EXAMPLE / "skylift-onnx.toml")
    version = config.deploy.python_version
    python = find_interpreter(version)
    code = stage_code_asset(config)
    # The score function's layer under each runtime, as `cdk deploy` ships them.
    built = build_layers(config, code)
    sklearn_config = config.model_copy(
        update={"deploy": config.deploy.model_copy(update={"runtime": "sklearn"})}
    )
    layers = {"sklearn": build_layers(sklearn_config, code)["sklearn"], "onnx": built["onnx"]}
    bundle = train_candidate(config, generate_churn(5000, seed=1), train_fn=train_portable).bundle
    assert bundle.onnx is not None, bundle.manifest.exports
    records = json.loads(
        generate_churn(100, seed=99).drop(columns=["churned"]).to_json(orient="records")
    )

    with tempfile.TemporaryDirectory() as tmp:
        bundle.save(tmp)
        children = {
            runtime: CHILD.format(
                paths=[str(code), str(layers[runtime].path / "python")],
                bundle=tmp,
                onnx=runtime == "onnx",
                record=records[0],
            )
            for runtime in layers
        }
        for child in children.values():  # warm the page cache
            run_child(python, child)
        cold: dict[str, list[float]] = {runtime: [] for runtime in children}
        for _ in range(RUNS):
            for runtime, child in children.items():
                cold[runtime].append(run_child(python, child))
        onnx_path = [str(code), str(layers["onnx"].path / "python")]
        pandas_runs = [
            run_pandas_child(python, PANDAS_CHILD.format(paths=onnx_path)) for _ in range(RUNS)
        ]
        onnx_bundle = ModelBundle.load_onnx(
            (Path(tmp) / "model.onnx").read_bytes(), (Path(tmp) / "manifest.json").read_text()
        )

    scorers = {"sklearn": Scorer(bundle), "onnx": Scorer(onnx_bundle)}
    schema = bundle.manifest.feature_schema
    one = schema.validate_records(records[:1])
    hundred = schema.validate_records(records)
    big = generate_churn(50_000, seed=7)[schema.names]
    latency = {
        runtime: {
            "1 row ms": median_ms(lambda s=scorer: s.score_records(one), 300),
            "100 rows ms": median_ms(lambda s=scorer: s.score_records(hundred), 100),
            "batch rows/s": len(big) / (median_ms(lambda s=scorer: s.score(big), 5) / 1000),
        }
        for runtime, scorer in scorers.items()
    }

    size = {runtime: build.unzipped_bytes / 2**20 for runtime, build in layers.items()}
    cold_ms = {runtime: statistics.median(samples) for runtime, samples in cold.items()}
    lines = [
        f"Portable churn model (imputer + scaler + one-hot + LogisticRegression, ONNX verified to "
        f"{bundle.manifest.exports.onnx.max_abs_diff:.1e}); layers as built for Python {version} "  # type: ignore[union-attr]
        f"with bytecode; cold start = {python} `-I -S -B`, code asset + one layer, import + "
        f"verify + load + first predict, median of {RUNS} interleaved runs.",
        "",
        "| measure | sklearn | onnx | onnx / sklearn | target |",
        "|---|---:|---:|---:|---:|",
        f"| layer MB unzipped | {size['sklearn']:.1f} | {size['onnx']:.1f} | "
        f"{size['onnx'] / size['sklearn']:.2f} | <= {LAYER_TARGET} |",
        f"| cold start ms | {cold_ms['sklearn']:.0f} | {cold_ms['onnx']:.0f} | "
        f"{cold_ms['onnx'] / cold_ms['sklearn']:.2f} | <= {COLD_TARGET} |",
    ]
    for measure in ("1 row ms", "100 rows ms", "batch rows/s"):
        sk, ox = latency["sklearn"][measure], latency["onnx"][measure]
        fmt = ".0f" if "rows/s" in measure else ".2f"
        lines.append(f"| {measure} | {sk:{fmt}} | {ox:{fmt}} | {ox / sk:.2f} | |")
    pandas_ms, pandas_rss, peak_rss = (
        statistics.median(run[i] for run in pandas_runs) for i in range(3)
    )
    lines += [
        "",
        f"pandas, which the onnx API path no longer imports (batch does, to read CSV): `import "
        f"pandas` after numpy, onnxruntime, pydantic and boto3 takes {pandas_ms:.0f} ms "
        f"({pandas_ms / cold_ms['onnx']:.0%} of the onnx cold start above, which is without it) "
        f"and adds {pandas_rss:.0f} MB of resident memory (to {peak_rss:.0f} MB).",
        f"Retrain's layer under runtime = onnx (sklearn + skl2onnx, onnx, onnxruntime; no "
        f"bytecode): {built['exports'].unzipped_bytes / 2**20:.1f} MB + code "
        f"{built['exports'].code_bytes / 2**20:.1f} MB of Lambda's 250 MB.",
    ]
    append("exports: onnx runtime vs sklearn runtime", lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
