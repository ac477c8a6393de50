"""The CLI's error boundary: a user's mistake or an unreachable AWS is one line on stderr and
exit 2, never a traceback; `-c/--config` works after any subcommand; `skylift invoke` exits 1
on an HTTP error reply and takes a bare S3 event for the batch function; `skylift config check`
imports the entry point."""

from __future__ import annotations

import json
import sys
import textwrap
import uuid

import click
import pytest
from click.testing import CliRunner

from skylift.cli import cli
from tests.helpers import EXAMPLE_DIR, load_event

CONFIG = str(EXAMPLE_DIR / "skylift.toml")


def run(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def assert_one_line_error(result, *expected: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for text in expected:
        assert text in lines[0], lines[0]


def test_no_credentials_is_one_line(monkeypatch, tmp_path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("AWS_SECURITY_TOKEN", raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance metadata lookup
    result = run("-c", CONFIG, "models", "list")
    assert_one_line_error(result, "no usable AWS credentials", "--endpoint-url")


def test_retrain_on_a_missing_bucket_is_one_line(churn_config, monkeypatch):
    from moto import mock_aws

    monkeypatch.setenv("SKYLIFT_STORAGE__BUCKET", "skylift-nobody-made-this")
    with mock_aws():
        result = run("-c", CONFIG, "retrain")
    assert_one_line_error(result, "bucket skylift-nobody-made-this does not exist")


def test_train_returning_an_unfitted_estimator_names_the_entry_point(
    s3, tmp_path, churn_frame, monkeypatch
):
    package = f"unfitted_{uuid.uuid4().hex[:8]}"
    (tmp_path / package).mkdir()
    (tmp_path / package / "__init__.py").write_text(
        textwrap.dedent(
            """
            from sklearn.linear_model import LogisticRegression


            def train(frame):
                return LogisticRegression()  # forgot .fit(...)
            """
        )
    )
    config = tmp_path / "skylift.toml"
    config.write_text(
        textwrap.dedent(
            f"""
            [model]
            name = "churn"
            task = "classification"
            target = "churned"
            id_column = "customer_id"
            entry_point = "{package}:train"
            [storage]
            bucket = "skylift-churn-local"
            """
        )
    )
    data = tmp_path / "churn.csv"
    churn_frame.head(200).to_csv(data, index=False)
    monkeypatch.setattr(sys, "path", list(sys.path))  # source_dir goes on it; restored after
    result = run("train", "-c", str(config), "--data", str(data))
    assert_one_line_error(result, f"{package}:train returned an unfitted LogisticRegression")


def test_config_check_imports_the_entry_point(tmp_path, monkeypatch):
    config = tmp_path / "skylift.toml"
    config.write_text(
        '[model]\nname = "m"\ntask = "classification"\ntarget = "y"\n'
        'entry_point = "no_such_package_here.train:train"\n[storage]\nbucket = "bucket-b"\n'
    )
    monkeypatch.setattr(sys, "path", list(sys.path))  # source_dir goes on it; restored after
    result = run("config", "check", "-c", str(config))
    assert_one_line_error(result, "[model].entry_point", "no_such_package_here")
    good = run("config", "check", "-c", CONFIG)
    assert good.exit_code == 0, good.output
    assert "entry point churn_model.train:train imports" in good.output


def _leaf_commands(command: click.Command, path: tuple[str, ...] = ()):
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from _leaf_commands(sub, (*path, name))
    else:
        yield path, command


@pytest.mark.parametrize("path", [p for p, _ in _leaf_commands(cli)], ids=" ".join)
def test_config_option_is_accepted_after_every_subcommand(path):
    command = dict(_leaf_commands(cli))[path]
    options = {opt for param in command.params for opt in param.opts}
    assert {"-c", "--config", "--endpoint-url"} <= options
    result = run(*path, "--help")
    assert result.exit_code == 0 and "--config" in result.output


def test_config_after_the_subcommand_is_the_one_used(tmp_path):
    missing = tmp_path / "elsewhere.toml"
    result = run("-c", CONFIG, "config", "check", "-c", str(missing))
    assert_one_line_error(result, "elsewhere.toml: config file not found")


# ---- skylift invoke ---------------------------------------------------------------------------


@pytest.fixture
def champion(registry, churn_bundle, monkeypatch, isolated_logging):
    manifest = registry.register(churn_bundle)
    registry.promote(manifest.version)
    monkeypatch.setenv("SKYLIFT_API__CAPTURE_STREAM", "")
    for name in ("functions.score.app", "functions.batch.app"):
        sys.modules.pop(name, None)
    yield manifest
    for name in ("functions.score.app", "functions.batch.app"):
        sys.modules.pop(name, None)


def test_invoke_exits_1_on_an_http_error_reply(champion, monkeypatch):
    monkeypatch.setenv("SKYLIFT_CONFIG", CONFIG)  # invoke sets it too; restored after
    from tests.helpers import EVENTS_DIR

    bad = run("-c", CONFIG, "invoke", "score", "--event", str(EVENTS_DIR / "api_bad_types.json"))
    assert bad.exit_code == 1 and "status 400" in bad.output
    good = run("-c", CONFIG, "invoke", "score", "--event", str(EVENTS_DIR / "api_predict.json"))
    assert good.exit_code == 0 and "status 200" in good.output


def test_invoke_batch_takes_a_bare_s3_event(champion, s3, churn_config, churn_frame, tmp_path):
    key = "incoming/pasted/customers 2026-11.csv"
    body = churn_frame.head(20).drop(columns=["churned"]).to_csv(index=False).encode()
    s3.put_object(Bucket=churn_config.storage.bucket, Key=key, Body=body)
    sqs_event = load_event("sqs_s3_object_created.json")
    notification = json.loads(sqs_event["Records"][0]["body"])  # what S3 sends
    s3_object = notification["Records"][0]["s3"]["object"]
    s3_object["key"] = "incoming/pasted/customers+2026-11.csv"
    s3_object.pop("eTag")
    event_file = tmp_path / "s3_event.json"
    event_file.write_text(json.dumps(notification))

    result = run("-c", CONFIG, "invoke", "batch", "--event", str(event_file))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"batchItemFailures": []}
    manifest = json.loads(
        s3.get_object(
            Bucket=churn_config.storage.bucket,
            Key="predictions/pasted/customers 2026-11.csv.manifest.json",
        )["Body"].read()
    )
    assert manifest["rows_scored"] + manifest["rows_quarantined"] == 20

    neither = tmp_path / "other.json"
    neither.write_text(json.dumps({"detail-type": "Scheduled Event"}))
    refused = run("-c", CONFIG, "invoke", "batch", "--event", str(neither))
    assert_one_line_error(refused, "other.json", "SQS event", "S3 notification")
