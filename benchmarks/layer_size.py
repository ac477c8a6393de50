"""Layer size against Lambda's 250 MB limit, and `cdk synth` wall time with a warm cache.

Builds the real layer (pip, manylinux wheels for Lambda; cached by requirements hash) and
times `npx cdk synth --quiet` twice (the first warms the layer and code-asset caches).
"""

from __future__ import annotations

import os
import subprocess
import time

from benchmarks._results import append
from infrastructure.packaging import ROOT
from layers.build import LAMBDA_UNZIPPED_LIMIT, build_layer, directory_size
from skylift.config import load_config


def main() -> None:
    config = load_config(ROOT / "examples" / "churn" / "skylift.toml")
    from infrastructure.packaging import stage_code_asset

    code_dir = stage_code_asset(config)
    deploy = config.deploy
    layer = build_layer(
        deploy.python_version, deploy.architecture, code_dir=code_dir, with_zip=True
    )
    code = directory_size(code_dir)
    env = {**os.environ, "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1"}
    timings = []
    for _ in range(2):
        started = time.perf_counter()
        subprocess.run(
            ["npx", "cdk", "synth", "--quiet"], cwd=ROOT, env=env, check=True, capture_output=True
        )
        timings.append(time.perf_counter() - started)
    mb = 2**20
    append(
        "layer_size",
        [
            "| figure | value | limit / target | ratio |",
            "|---|---:|---:|---:|",
            f"| layer unzipped | {layer.unzipped_bytes / mb:.1f} MB | | |",
            f"| layer + code unzipped | {(layer.unzipped_bytes + code) / mb:.1f} MB | 250 MB Lambda limit | {(layer.unzipped_bytes + code) / LAMBDA_UNZIPPED_LIMIT:.2f} |",
            f"| .pyc in the layer | {(layer.bytecode.pyc_bytes if layer.bytecode else 0) / mb:.1f} MB | | |",
            f"| layer zipped | {(layer.zipped_bytes or 0) / mb:.1f} MB | | |",
            f"| code asset | {code / mb:.2f} MB | | |",
            f"| cdk synth, warm layer cache | {timings[1]:.1f} s | first run {timings[0]:.1f} s | {timings[1] / timings[0]:.2f} |",
            "",
            "Layer: scikit-learn, numpy, scipy, pandas, joblib, pydantic, pydantic-settings, "
            "aws-lambda-powertools, boto3 (botocore trimmed to the services called); "
            "tests and type stubs removed; the packages' own extension modules stripped (never "
            "the vendored *.libs).",
            layer.bytecode.describe() if layer.bytecode else "no bytecode",
        ],
    )


if __name__ == "__main__":
    main()
