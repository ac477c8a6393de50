"""Helpers shared by test modules (fixtures live in conftest.py): sample records and API
events, a fake Lambda context and clock, reply readers, API-capture lines, fake handler
packages, and S3 faults injected through botocore's event hooks."""

from __future__ import annotations

import base64
import json
import textwrap
import uuid
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from botocore.awsrequest import AWSResponse

from skylift.topology import FunctionSpec

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_DIR = ROOT / "examples" / "churn"
EVENTS_DIR = ROOT / "events"


def create_signing_key(config: Any, endpoint_url: str | None = None) -> str:
    """The KMS key the stack provisions for ``config`` ([registry] signing), created in the
    moto behind ``endpoint_url`` (or mock_aws); returns its ARN."""
    import boto3

    kms = boto3.client("kms", region_name="us-east-1", endpoint_url=endpoint_url)
    key = kms.create_key(KeyUsage="SIGN_VERIFY", KeySpec="ECC_NIST_P256")["KeyMetadata"]
    kms.create_alias(AliasName=config.default_signing_alias, TargetKeyId=key["KeyId"])
    return str(key["Arn"])


class _CreatesFile:
    """Unpickling this object opens (creates) a file: proof that a payload ran."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return (open, (str(self.path), "w"))


def pickle_payload(marker: Path) -> bytes:
    """An attacker's model.joblib: creates ``marker`` if it is ever unpickled."""
    import pickle

    return pickle.dumps(_CreatesFile(marker))


def tamper_champion(s3: Any, config: Any, version: int, marker: Path) -> None:
    """The attack of issue 15: overwrite ``version``'s model.joblib with a payload and its
    manifest's sha256 (and size) to match, leaving manifest.sig as it was."""
    import hashlib

    root = f"{config.storage.models_prefix}{config.model.name}/versions/{version}/"
    bucket = config.storage.bucket
    payload = pickle_payload(marker)
    manifest = json.loads(s3.get_object(Bucket=bucket, Key=root + "manifest.json")["Body"].read())
    manifest.update(sha256=hashlib.sha256(payload).hexdigest(), size_bytes=len(payload))
    s3.put_object(Bucket=bucket, Key=root + "model.joblib", Body=payload)
    s3.put_object(Bucket=bucket, Key=root + "manifest.json", Body=json.dumps(manifest).encode())


def load_event(name: str) -> dict[str, Any]:
    """A sample event from events/ (the real AWS shapes)."""
    return json.loads((EVENTS_DIR / name).read_text())  # type: ignore[no-any-return]


# ---- the scoring API ----------------------------------------------------------------------------

RECORD = {
    "customer_id": "C1",
    "age": 41.0,
    "tenure_months": 12,
    "contract": "month-to-month",
    "internet_service": "fiber",
    "payment_method": "electronic-check",
    "region": "north",
    "paperless_billing": "yes",
    "monthly_charges": 80.5,
    "total_charges": 950.0,
    "support_calls": 3,
}


class FakeContext:
    """The little of Lambda's context the handler may read."""

    function_name = "skylift-score"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:skylift-score"
    aws_request_id = "00000000-0000-0000-0000-000000000001"


def api_event(
    method: str = "POST",
    path: str = "/predict",
    body: str | None = None,
    *,
    content_type: str | None = "application/json",
    base64_body: bool = False,
) -> dict[str, Any]:
    """A REST proxy event like events/api_predict.json with another method, path or body."""
    event = load_event("api_predict.json")
    event["httpMethod"] = method
    event["path"] = path
    event["requestContext"]["httpMethod"] = method
    headers = {k: v for k, v in event["headers"].items() if k.lower() != "content-type"}
    if content_type is not None:
        headers["Content-Type"] = content_type
    event["headers"] = headers
    event["multiValueHeaders"] = {k: [v] for k, v in headers.items()}
    if base64_body and body is not None:
        body = base64.b64encode(body.encode()).decode()
    event["body"] = body
    event["isBase64Encoded"] = base64_body
    return event


def http_api_event(rest: dict[str, Any], *, stage: str = "$default") -> dict[str, Any]:
    """The HTTP API (payload 2.0) event API Gateway sends for the request ``rest`` describes:
    lower-case header names, repeated headers comma-joined, the stage in rawPath unless it is
    ``$default``, no body key without a body."""
    headers: dict[str, str] = {}
    for name, value in (rest.get("headers") or {}).items():
        headers[name.lower()] = value
    for name, values in (rest.get("multiValueHeaders") or {}).items():
        headers[name.lower()] = ",".join(values)
    method = rest["httpMethod"]
    raw_path = rest["path"] if stage == "$default" else f"/{stage}{rest['path']}"
    event = load_event("api_v2_predict.json")
    event.pop("body", None)
    event["rawPath"] = raw_path
    event["headers"] = headers
    event["requestContext"]["http"].update(method=method, path=raw_path)
    event["requestContext"]["stage"] = stage
    if rest.get("body") is not None:
        event["body"] = rest["body"]
    event["isBase64Encoded"] = bool(rest.get("isBase64Encoded"))
    return event


def predict_event(payload: Any) -> dict[str, Any]:
    return api_event(body=json.dumps(payload))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def call(service, event: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, Any]]:
    reply = service.handle(event, FakeContext())
    return reply["statusCode"], json.loads(reply["body"]), reply


def header(reply: dict[str, Any], name: str) -> str | None:
    """A reply header (REST proxy replies carry them as multiValueHeaders)."""
    for key, values in (reply.get("multiValueHeaders") or {}).items():
        if key.lower() == name.lower():
            return str(values[-1])
    for key, value in (reply.get("headers") or {}).items():
        if key.lower() == name.lower():
            return str(value)
    return None


def emf_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith('{"_aws"')]


def assert_error_shape(body: dict[str, Any]) -> None:
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"code", "message", "details"}
    assert isinstance(error["code"], str) and error["code"]
    assert isinstance(error["message"], str) and error["message"]
    for detail in error["details"]:
        assert set(detail) == {"record", "field", "problem"}
        assert detail["record"] is None or isinstance(detail["record"], int)


# ---- monitoring -------------------------------------------------------------------------------------


def capture(s3, config, scorer, frame, key="capture/2026/11/24/10/part-0001"):
    """Write API-capture lines as the score function's Firehose capture does."""
    features = frame.drop(columns=["churned", "customer_id"])
    scores = scorer.score_frame(scorer.schema.validate_frame(features).valid)
    lines = []
    for (_, row), (_, scored), cid in zip(
        features.iterrows(), scores.iterrows(), frame["customer_id"], strict=True
    ):
        lines.append(
            json.dumps(
                {
                    "captured_at": "2026-11-24T10:00:00Z",
                    "model": "churn",
                    "model_version": 1,
                    "request_id": "r",
                    "id": cid,
                    "features": {k: (None if pd.isna(v) else v) for k, v in row.items()},
                    "prediction": _plain(scored["prediction"]),
                    "probabilities": {
                        str(c): scored[f"probability_{c}"] for c in scorer.classes or []
                    },
                }
            )
        )
    s3.put_object(Bucket=config.storage.bucket, Key=key, Body=("\n".join(lines) + "\n").encode())


def _plain(value):
    return value.item() if hasattr(value, "item") else value


# ---- the local stack's functions -----------------------------------------------------------------


def fake_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str | None) -> str:
    """A package ``<name>/app.py`` on sys.path; with ``body`` None, app.py is missing."""
    name = f"fake_fn_{uuid.uuid4().hex[:8]}"
    package = tmp_path / name
    package.mkdir()
    (package / "__init__.py").write_text("")
    if body is not None:
        (package / "app.py").write_text(textwrap.dedent(body))
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def spec_for(package: str) -> FunctionSpec:
    return FunctionSpec(
        name="batch",
        handler=f"{package}.app.handler",
        description="fake",
        memory_mb=256,
        timeout_seconds=30,
        environment={"SKYLIFT_CONFIG": "skylift.toml"},
    )


# ---- S3 faults -------------------------------------------------------------------------------------


def fail_first(times: int, code: int = 503, error: str = "SlowDown"):
    state = {"left": times}

    def hook(request, **kwargs):
        if state["left"] > 0:
            state["left"] -= 1
            return AWSResponse(
                request.url,
                code,
                {},
                RawBody(f"<Error><Code>{error}</Code><Message>{error}</Message></Error>".encode()),
            )
        return None

    return hook, state


class RawBody:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **kwargs):
        yield self._data

    def read(self, *args):
        data, self._data = self._data, b""
        return data
