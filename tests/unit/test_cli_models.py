"""The CLI end to end on mocked S3: train, models list|describe|promote|rollback, errors."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from skylift.cli import cli


@pytest.fixture
def run(s3, churn_config):
    runner = CliRunner()
    config = str(churn_config.config_path)

    def invoke(*args: str):
        return runner.invoke(cli, ["--config", config, *args], catch_exceptions=False)

    return invoke


@pytest.fixture
def data_file(tmp_path, churn_frame):
    path = tmp_path / "churn.csv"
    churn_frame.to_csv(path, index=False)
    return str(path)


def test_train_registers_and_prints_metrics(run, data_file):
    result = run("train", "--data", data_file, "--promote")
    assert result.exit_code == 0, result.output
    assert "registered churn version 1" in result.output
    assert "promoted it to champion" in result.output
    assert "roc_auc" in result.output


def test_models_list_describe_promote_rollback(run, data_file):
    assert run("train", "--data", data_file, "--promote").exit_code == 0
    assert run("train", "--data", data_file).exit_code == 0
    listing = run("models", "list")
    assert listing.exit_code == 0 and "champion" in listing.output and "roc_auc" in listing.output
    described = run("models", "describe")
    assert "churn version 1" in described.output and "feature contract" in described.output
    as_json = run("models", "describe", "2", "--json")
    assert '"version": 2' in as_json.output
    promoted = run("models", "promote", "2")
    assert "1 -> 2" in promoted.output
    rolled = run("models", "rollback")
    assert "2 -> 1" in rolled.output


def test_user_errors_are_messages_not_tracebacks(run, tmp_path):
    missing = run("models", "promote", "5")
    assert missing.exit_code == 2 and "no version 5" in missing.output
    assert "Traceback" not in missing.output
    no_file = run("train", "--data", str(tmp_path / "nope.csv"))
    assert no_file.exit_code == 2 and "nope.csv" in no_file.output


def test_bad_config_names_file_and_field(tmp_path):
    config = tmp_path / "skylift.toml"
    config.write_text('[model]\nname = "m"\ntask = "classification"\n[storage]\nbucket = "b-b-b"\n')
    result = CliRunner().invoke(cli, ["--config", str(config), "models", "list"])
    assert result.exit_code == 2
    assert str(config) in result.output and "[model].target is required" in result.output


def _row(output: str, check: str) -> str:
    """The first line of a check's row in the verify table."""
    return next(line for line in output.splitlines() if line.lstrip("│ ").startswith(check))


def test_models_verify_passes_a_signed_version_and_describe_names_the_signer(
    run, data_file, churn_config
):
    assert run("train", "--data", data_file, "--promote").exit_code == 0
    result = run("models", "verify")
    assert result.exit_code == 0, result.output
    for check in ("signature", "sha256", "runtime"):
        assert "passed" in _row(result.output, check), result.output
    described = run("models", "describe", "1")
    assert "arn:aws:sts::123456789012:user/moto" in described.output
    assert "ECDSA_SHA_256" in described.output


def test_models_verify_fails_the_attack_and_says_which_check(
    run, data_file, s3, churn_config, tmp_path
):
    from tests.helpers import tamper_champion

    assert run("train", "--data", data_file, "--promote").exit_code == 0
    marker = tmp_path / "pwned"
    tamper_champion(s3, churn_config, 1, marker)
    result = run("models", "verify", "champion")
    assert result.exit_code == 1, result.output
    assert "failed" in _row(result.output, "signature")
    assert "passed" in _row(result.output, "sha256")  # the attacker fixed the hash up
    assert not marker.exists()  # verify never unpickles


def test_rollout_commands(run, data_file):
    for promote in ("--promote", "--no-promote", "--no-promote"):
        assert run("train", "--data", data_file, promote).exit_code == 0
    canary = run("models", "canary", "2", "--percent", "10")
    assert canary.exit_code == 0 and "canary answering 10% of the traffic" in canary.output
    listing = run("models", "list")
    assert "champion" in listing.output and "candidate (canary 10%)" in listing.output
    monitored = run("monitor")
    assert monitored.exit_code == 0, monitored.output
    assert "rollout: candidate v2 (canary) vs champion v1: hold" in monitored.output
    assert "min_requests" in monitored.output  # nothing captured: it waits
    shadow = run("models", "shadow", "3")
    assert shadow.exit_code == 0 and "version 3 in shadow" in shadow.output
    assert "candidate (shadow)" in run("models", "list").output
    aborted = run("models", "abort-candidate")
    assert aborted.exit_code == 0 and "version 3 aborted" in aborted.output
    assert "candidate" not in run("models", "list").output
    run("models", "canary", "2", "--percent", "25")
    promoted = run("models", "promote-candidate")
    assert promoted.exit_code == 0 and "1 -> 2" in promoted.output


def test_rollout_mistakes_are_one_line_errors(run, data_file):
    run("train", "--data", data_file, "--promote")
    run("train", "--data", data_file)
    for args, message in [
        (("models", "canary", "2", "--percent", "0"), "between 0 and 100"),
        (("models", "canary", "2", "--percent", "100"), "between 0 and 100"),
        (("models", "canary", "9", "--percent", "10"), "no version 9"),
        (("models", "shadow", "9"), "no version 9"),
        (("models", "promote-candidate"), "no active candidate"),
        (("models", "abort-candidate"), "no active candidate"),
    ]:
        result = run(*args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output and "Traceback" not in result.output
        assert len(result.output.strip().splitlines()) == 1, result.output
