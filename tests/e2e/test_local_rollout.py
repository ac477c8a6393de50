"""A canary on the local stack, over the real moto server and HTTP: the score function picks
up the candidate alias without a redeploy, routes per customer id (sticky), names the version
of each prediction and tags the capture Firehose delivers to S3; the real monitor function
promotes a canary that held, and aborts one whose captured error rate breaches."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.helpers import EXAMPLE_DIR

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("isolated_logging")]


def project(tmp_path: Path) -> Path:
    text = (EXAMPLE_DIR / "skylift.toml").read_text()
    text = text.replace('source_dir = "."', f'source_dir = "{EXAMPLE_DIR}"')
    text = text.replace("model_refresh_seconds = 30", "model_refresh_seconds = 0")
    text += (
        "\n[rollout]\nmin_requests = 40\nhold_hours = 0.0001\nauto_promote = true\n"
        "auto_abort = true\n"
        # two requests of 60 records: latency and PSI are noise here, errors are the test
        "max_latency_ratio = 100.0\nmax_prediction_psi = 10.0\n"
    )
    path = tmp_path / "skylift.toml"
    path.write_text(text)
    return path


def predict(stack: Any, rows: list[dict[str, Any]]) -> dict[str, Any]:
    response = requests.post(
        f"{stack.api_url}/predict",
        headers={"x-api-key": stack.api_key},
        json={"records": rows},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def captured(s3: Any, config: Any) -> list[dict[str, Any]]:
    lines: list[dict[str, Any]] = []
    bucket = config.storage.bucket
    for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=config.storage.capture_prefix
    ):
        for item in page.get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read().decode()
            lines += [json.loads(line) for line in body.splitlines() if line.strip()]
    return lines


def test_a_canary_is_routed_captured_promoted_and_a_failing_one_aborted(tmp_path):
    from churn_model.data import generate_churn

    from skylift.config import load_config
    from skylift.local.stack import LocalStack
    from skylift.registry import ModelRegistry
    from skylift.rollout import CANDIDATE_ALIAS, read_rollout, start_candidate
    from skylift.training import train_and_register

    config = load_config(project(tmp_path))
    with LocalStack(config, clocks=False, poll=False) as stack:
        s3 = stack.client("s3")
        key = f"{config.storage.training_prefix}churn.csv"
        s3.put_object(
            Bucket=config.storage.bucket,
            Key=key,
            Body=generate_churn(1500, seed=0).to_csv(index=False).encode(),
        )
        registry = ModelRegistry.from_config(config, s3_client=s3)
        uri = f"s3://{config.storage.bucket}/{key}"
        train_and_register(config, registry, uri, promote=True)
        train_and_register(config, registry, uri, promote=False)
        start_candidate(registry, 2, "canary", percent=50, actor="e2e")

        frame = generate_churn(60, seed=11).drop(columns=["churned"])
        rows = json.loads(frame.to_json(orient="records"))
        first = predict(stack, rows)
        versions = {p["id"]: p["model_version"] for p in first["predictions"]}
        assert set(versions.values()) == {1, 2} and first["model_version"] == 1
        again = predict(stack, rows[::-1])  # another request, another order: same versions
        assert {p["id"]: p["model_version"] for p in again["predictions"]} == versions

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            lines = captured(s3, config)
            if sum(1 for line in lines if line.get("role") == "candidate") >= 40:
                break
            time.sleep(0.5)
        roles = {(line["id"], line["role"], line["model_version"]) for line in lines}
        assert roles == {(i, "candidate" if v == 2 else "champion", v) for i, v in versions.items()}

        summary = stack.trigger("monitor")
        assert summary["rollout"] == "promote", summary
        assert registry.resolve() == 2
        assert registry.alias(CANDIDATE_ALIAS).mode == "promoted"
        assert predict(stack, rows[:5])["model_version"] == 2  # picked up without a redeploy

        # version 1 comes back as a canary, and fails on every captured record
        start_candidate(registry, 1, "canary", percent=50, actor="e2e")
        started = read_rollout(registry).candidate
        assert started is not None
        failing = [
            json.dumps(
                {
                    "captured_at": started.updated_at.isoformat(),
                    "model": "churn",
                    "model_version": 1,
                    "role": "candidate",
                    "request_id": f"r{n}",
                    "id": f"x{n}",
                    "features": {},
                    "prediction": None,
                    "error": "RuntimeError: injected",
                    "scoring_ms": 1.0,
                }
            )
            for n in range(50)
        ]
        s3.put_object(
            Bucket=config.storage.bucket,
            Key=f"{config.storage.capture_prefix}injected/part-1",
            Body=("\n".join(failing) + "\n").encode(),
        )
        summary = stack.trigger("monitor")
        assert summary["rollout"] == "abort", summary
        assert registry.resolve() == 2 and read_rollout(registry).candidate is None
        reports = s3.list_objects_v2(
            Bucket=config.storage.bucket, Prefix=f"{config.storage.reports_prefix}rollout/"
        )
        assert reports["KeyCount"] >= 2
