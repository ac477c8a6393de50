"""The deployable artifact, as `cdk deploy` would upload it, run by the runtime's Python.

The CDK app is synthesized with the layer as `make layer` built it (pip for Lambda's platform,
trimmed, bytecode compiled by the target version); the layer and code assets are taken from
the cloud assembly and laid out as Lambda mounts them (/opt and /var/task), every file dated
1980-01-01 as the pinned CDK CLI zips them. Each handler then runs in an isolated interpreter
of ``[deploy].python_version`` (`-I -S -B`: no site-packages, no user paths, no bytecode
written) with only those two folders on its path, on real events, against a moto server on
127.0.0.1. A missing module, a library that does not load, a module compiled from source at
import (no valid bytecode shipped) or a handler error fails the test.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import textwrap
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from skylift.local.server import local_aws
from tests.helpers import create_signing_key, load_event

# Lambda puts the code first, then the layer's python/ (and the runtime's own modules, which
# this interpreter's standard library stands in for).
RUNNER = textwrap.dedent(
    """
    import importlib.machinery, importlib.util, json, sys
    task, layer, runtime, module, event_path = sys.argv[1:6]
    compiled = []
    _source_to_code = importlib.machinery.SourceFileLoader.source_to_code
    def source_to_code(self, data, path, *args, **kwargs):
        compiled.append(str(path))
        return _source_to_code(self, data, path, *args, **kwargs)
    importlib.machinery.SourceFileLoader.source_to_code = source_to_code
    sys.path[:0] = [task, layer]
    sys.path.append(runtime)  # after the layer, as Lambda's /var/runtime
    handler = importlib.import_module(module).handler
    from skylift.snapstart import run_snapshot_then_restore
    hooks = run_snapshot_then_restore()  # what Lambda does for a SnapStart version
    reply = handler(json.load(open(event_path)), None)
    banned = [m for m in ("moto", "requests", "rich", "click", "pytest") if m in sys.modules]
    watched = ("sklearn", "scipy", "pandas", "joblib", "onnxruntime", "skl2onnx")
    print("RESULT " + json.dumps({
        "reply": reply,
        "imported": [m for m in watched if m in sys.modules],
        "importable": [m for m in watched if importlib.util.find_spec(m) is not None],
        "hooks": hooks,
        "banned": banned,
        "compiled": [p for p in compiled if p.startswith((task, layer))],
        "paths": [p for p in sys.path if "site-packages" in p],
    }, default=str))
    """
)


@pytest.fixture(scope="module")
def target_python(churn_config):
    from layers.interpreter import find_interpreter

    return find_interpreter(churn_config.deploy.python_version)


@pytest.fixture(scope="module")
def deployed(churn_config, tmp_path_factory):
    """(/var/task, /opt/python) from the assets of a real synth with the built layer."""
    from layers.artifact import LayerNotBuiltError, deployed_artifact

    try:
        artifact = deployed_artifact(churn_config, tmp_path_factory.mktemp("lambda"))
    except LayerNotBuiltError as exc:
        pytest.fail(str(exc))
    return artifact.task, artifact.layer


@pytest.fixture(scope="module")
def runtime(tmp_path_factory):
    """Lambda's own modules beside the standard library (/var/runtime): the SnapStart hooks."""
    import snapshot_restore_py

    folder = tmp_path_factory.mktemp("runtime")
    shutil.copy(snapshot_restore_py.__file__, folder)  # a single module
    return folder


@pytest.fixture(scope="module")
def aws(churn_config, churn_frame):
    with local_aws(set_environ=False) as local:  # the handlers run in subprocesses
        yield from _provision(local.endpoint_url, churn_config, churn_frame)


def _provision(endpoint: str, churn_config: Any, churn_frame: Any) -> Iterator[tuple[str, Any]]:
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket=churn_config.storage.bucket)
    create_signing_key(churn_config, endpoint)
    s3.put_object(
        Bucket=churn_config.storage.bucket,
        Key="training/churn.csv",
        Body=churn_frame.to_csv(index=False).encode(),
    )
    yield endpoint, s3


def run(
    target_python,
    deployed,
    runtime,
    endpoint,
    module,
    event,
    tmp_path,
    config,
    *,
    outcome_of: dict[str, Any] | None = None,
    compiled_from: str | None = None,
):
    """The handler's reply; fails unless it ran from bytecode alone (but for sources under
    ``compiled_from``: a layer shipped without, layers.build.NO_BYTECODE_LAYERS) and, for a
    function with SnapStart, after its before-snapshot and after-restore hooks ran (as Lambda
    runs them). ``outcome_of`` receives what else the run saw (modules imported, importable)."""
    task, layer = deployed
    snap_start = module == "functions.score.app" and config.score_snap_start
    event_path = tmp_path / "event.json"
    event_path.write_text(json.dumps(event))
    env = {
        "PATH": "/usr/bin:/bin",
        "LAMBDA_TASK_ROOT": str(task),
        "SKYLIFT_CONFIG": str(task / "skylift.toml"),
        "SKYLIFT_STORAGE__BUCKET": config.storage.bucket,
        "AWS_LAMBDA_INITIALIZATION_TYPE": "snap-start" if snap_start else "on-demand",
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "POWERTOOLS_SERVICE_NAME": "skylift",
        "POWERTOOLS_METRICS_NAMESPACE": "Skylift",
        "POWERTOOLS_TRACE_DISABLED": "true",
    }
    arguments = [str(task), str(layer), str(runtime), module, str(event_path)]
    result = subprocess.run(
        [target_python, "-I", "-S", "-B", "-c", RUNNER, *arguments],
        capture_output=True,
        text=True,
        env=env,
        cwd=task,
        timeout=300,
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    assert result.returncode == 0 and lines, result.stderr[-3000:]
    outcome = json.loads(lines[-1][len("RESULT ") :])
    if outcome_of is not None:
        outcome_of.update(outcome)
    assert outcome["banned"] == [] and outcome["paths"] == []
    compiled = [p for p in outcome["compiled"] if not p.startswith(compiled_from or "\0")]
    assert compiled == [], f"{module} compiled from source: {compiled}"
    assert outcome["hooks"] == (2 if snap_start else 0)
    return outcome["reply"]


def test_every_handler_runs_from_the_deployed_assets(
    target_python, deployed, runtime, aws, churn_config, churn_frame, tmp_path
):
    endpoint, s3 = aws
    bucket = churn_config.storage.bucket
    assert churn_config.score_snap_start  # the score function below restores from a snapshot

    def invoke(module: str, event_file: str, event: dict[str, Any] | None = None):
        event = event or load_event(event_file)
        args = (endpoint, module, event, tmp_path, churn_config)
        return run(target_python, deployed, runtime, *args)

    retrained = invoke("functions.retrain.app", "eventbridge_retrain_schedule.json")
    assert retrained["status"] == "succeeded" and retrained["promoted"]

    health = invoke("functions.score.app", "api_health.json")
    assert health["statusCode"] == 200, health
    predicted = invoke("functions.score.app", "api_predict.json")
    assert predicted["statusCode"] == 200 and json.loads(predicted["body"])["predictions"]

    key = "incoming/november/customers 2026-11 été.csv"
    rows = churn_frame.head(20).drop(columns=["churned"])
    body = rows.to_csv(index=False).encode()
    etag = s3.put_object(Bucket=bucket, Key=key, Body=body)["ETag"].strip('"')
    # The sample event names another object's eTag: the batch function would skip it as stale.
    event = load_event("sqs_s3_object_created.json")
    notification = json.loads(event["Records"][0]["body"])
    notification["Records"][0]["s3"]["object"].update(eTag=etag, size=len(body))
    event["Records"][0]["body"] = json.dumps(notification)
    batch = invoke("functions.batch.app", "", event)
    assert batch == {"batchItemFailures": []}
    manifest_key = "predictions/november/customers 2026-11 été.csv.manifest.json"
    manifest = json.loads(s3.get_object(Bucket=bucket, Key=manifest_key)["Body"].read())
    assert manifest["rows_scored"] == 20

    monitored = invoke("functions.monitor.app", "eventbridge_monitor_schedule.json")
    assert monitored["report_key"].startswith("reports/monitoring/")


@pytest.fixture(scope="module")
def onnx_config():
    from skylift.config import load_config
    from tests.helpers import EXAMPLE_DIR

    return load_config(EXAMPLE_DIR / "skylift-onnx.toml")


@pytest.fixture(scope="module")
def deployed_onnx(onnx_config, tmp_path_factory):
    """The runtime = onnx artifact: the code, and each function's layer as the stack attaches it."""
    from layers.artifact import LayerNotBuiltError, deployed_artifact

    try:
        return deployed_artifact(onnx_config, tmp_path_factory.mktemp("lambda-onnx"))
    except LayerNotBuiltError as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="module")
def aws_onnx(onnx_config, churn_frame):
    with local_aws(set_environ=False) as local:
        yield from _provision(local.endpoint_url, onnx_config, churn_frame)


def test_onnx_runtime_retrains_with_an_export_and_scores_without_sklearn(
    target_python, deployed_onnx, runtime, aws_onnx, onnx_config, churn_frame, tmp_path
):
    """retrain (exports layer) registers a verified model.onnx; score and batch (onnx layer)
    serve it with neither scikit-learn nor scipy in the layer, from bytecode alone."""
    endpoint, s3 = aws_onnx
    bucket = onnx_config.storage.bucket
    layers = deployed_onnx.layers
    assert layers["score"] == layers["batch"] == layers["fanout"] != layers["retrain"]

    def invoke(function: str, module: str, event: dict[str, Any], seen: dict[str, Any]):
        deployed = (deployed_onnx.task, layers[function])
        # The exports layer ships no bytecode (it would not fit): retrain compiles its imports.
        compiled_from = str(layers[function]) if function == "retrain" else None
        args = (endpoint, module, event, tmp_path, onnx_config)
        return run(
            target_python, deployed, runtime, *args, outcome_of=seen, compiled_from=compiled_from
        )

    seen: dict[str, Any] = {}
    retrained = invoke(
        "retrain", "functions.retrain.app", load_event("eventbridge_retrain_schedule.json"), seen
    )
    assert retrained["status"] == "succeeded" and retrained["promoted"], retrained
    assert {"sklearn", "skl2onnx", "onnxruntime"} <= set(seen["imported"])
    version = 1  # the first model of a fresh registry
    prefix = f"{onnx_config.storage.models_prefix}churn/versions/{version}/"
    manifest = json.loads(s3.get_object(Bucket=bucket, Key=prefix + "manifest.json")["Body"].read())
    onnx_check = manifest["exports"]["onnx"]
    assert onnx_check["verified"] and onnx_check["max_abs_diff"] <= onnx_check["tolerance"]
    exported = s3.get_object(Bucket=bucket, Key=prefix + "model.onnx")["Body"].read()
    assert hashlib.sha256(exported).hexdigest() == onnx_check["sha256"]

    lean = {"sklearn", "scipy", "joblib", "skl2onnx"}
    for event_file in ("api_health.json", "api_predict.json"):
        seen = {}
        reply = invoke("score", "functions.score.app", load_event(event_file), seen)
        assert reply["statusCode"] == 200, reply
        assert "onnxruntime" in seen["imported"]
        assert not lean & set(seen["imported"]) and not lean & set(seen["importable"]), seen
        assert "pandas" not in seen["imported"]  # the API scores the validated columns
    body = json.loads(reply["body"])
    assert body["predictions"] and body["model_version"] == version

    key = "incoming/onnx/customers.csv"
    payload = churn_frame.head(20).drop(columns=["churned"]).to_csv(index=False).encode()
    etag = s3.put_object(Bucket=bucket, Key=key, Body=payload)["ETag"].strip('"')
    event = load_event("sqs_s3_object_created.json")
    notification = json.loads(event["Records"][0]["body"])
    notification["Records"][0]["s3"]["object"].update(key=key, eTag=etag, size=len(payload))
    event["Records"][0]["body"] = json.dumps(notification)
    seen = {}
    assert invoke("batch", "functions.batch.app", event, seen) == {"batchItemFailures": []}
    assert {"onnxruntime", "pandas"} <= set(seen["imported"])  # batch reads CSV with pandas
    assert not lean & set(seen["imported"]) and not lean & set(seen["importable"]), seen
    written = s3.get_object(Bucket=bucket, Key="predictions/onnx/customers.csv.manifest.json")
    assert json.loads(written["Body"].read())["rows_scored"] == 20


LOAD_SHARED_OBJECTS = textwrap.dedent(
    """
    import ctypes, json, pathlib, sys
    failed = {}
    libraries = sorted(p for p in pathlib.Path(sys.argv[1]).rglob("*.so*") if p.is_file())
    for library in libraries:
        try:
            ctypes.CDLL(str(library))
        except OSError as exc:
            failed[str(library)] = str(exc)
    print(json.dumps({"loaded": len(libraries) - len(failed), "failed": failed}))
    """
)


def test_every_shared_object_in_the_layer_loads(target_python, deployed):
    """strip on auditwheel's vendored libraries breaks them; each must dlopen on the target."""
    _task, layer = deployed
    result = subprocess.run(
        [target_python, "-I", "-S", "-c", LOAD_SHARED_OBJECTS, str(layer)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    outcome = json.loads(result.stdout)
    assert outcome["failed"] == {}
    assert outcome["loaded"] > 200  # numpy, scipy, pandas, sklearn, pydantic_core, ...


def test_the_deployed_assets_fit_lambdas_unzipped_limit(deployed):
    from layers.build import LAMBDA_UNZIPPED_LIMIT, directory_size

    task, layer = deployed
    assert directory_size(task) + directory_size(layer) < LAMBDA_UNZIPPED_LIMIT
