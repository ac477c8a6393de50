"""A file above [batch].fanout_min_bytes, put in incoming/ on the local stack, is scored end to
end through the fan-out: S3 -> SQS -> batch function -> StartExecution (moto) -> the local
runner of the deployed definition (plan, Distributed Map over ranges, commit)."""

from __future__ import annotations

import json

import pytest

from tests.helpers import EXAMPLE_DIR


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    from skylift.config import load_config

    folder = tmp_path_factory.mktemp("fanout")
    text = (EXAMPLE_DIR / "skylift.toml").read_text()
    text = text.replace('source_dir = "."', f'source_dir = "{EXAMPLE_DIR}"')
    text = text.replace(
        "[batch]\n",
        "[batch]\nfanout_min_bytes = 2000\nfanout_range_bytes = 4000\nfanout_max_concurrency = 2\n",
    )
    (folder / "skylift.toml").write_text(text)
    return load_config(folder / "skylift.toml")


def test_large_file_is_scored_through_the_map(config):
    from churn_model.data import generate_churn

    from skylift.batch import output_keys
    from skylift.bundle import TrainingDataRef
    from skylift.local.stack import LocalStack
    from skylift.registry import ModelRegistry
    from skylift.training import train_candidate

    frame = generate_churn(600, seed=3)
    with LocalStack(config, clocks=False) as stack:
        s3 = stack.client("s3")
        registry = ModelRegistry.from_config(config, s3_client=s3)
        result = train_candidate(
            config, frame, TrainingDataRef(uri="memory://e2e", sha256="0" * 64, rows=600)
        )
        registry.register(result.bundle)
        registry.promote(1)
        body = frame.head(300).drop(columns=["churned"]).to_csv(index=False).encode()
        assert len(body) > 2000
        key = f"{config.storage.incoming_prefix}huge.csv"
        s3.put_object(Bucket=config.storage.bucket, Key=key, Body=body)
        manifest = stack.wait_for_json(output_keys(config, key).manifest, timeout=120)
        assert manifest["status"] == "succeeded", manifest
        assert (
            manifest["rows_read"] == 300 == manifest["rows_scored"] + manifest["rows_quarantined"]
        )
        assert len(manifest["ranges"]) >= 5
        assert sum(r["rows_read"] for r in manifest["ranges"]) == 300
        (execution,) = stack.fanout.results.values()
        assert execution.status == "SUCCEEDED"
        assert execution.attempts["ScoreRange"] == len(manifest["ranges"])
        predictions = s3.get_object(
            Bucket=config.storage.bucket, Key=output_keys(config, key).predictions
        )
        assert predictions["Body"].read().decode().count("\n") == 301  # header + every row
        assert json.loads(json.dumps(manifest))["ranges"][0]["index"] == 0
