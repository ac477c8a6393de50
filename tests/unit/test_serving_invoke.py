"""``skylift invoke score --event FILE`` runs the score handler in-process and prints its reply."""

from __future__ import annotations

import json
import sys

import pytest
from click.testing import CliRunner

from skylift.cli import cli
from tests.helpers import EVENTS_DIR, EXAMPLE_DIR

# Importing the handler configures Powertools' Logger; every test here gets logging restored.
pytestmark = pytest.mark.usefixtures("isolated_logging")


@pytest.fixture
def fresh_handler(monkeypatch):
    # invoke exports the config path for the handler module; monkeypatch restores it after.
    monkeypatch.setenv("SKYLIFT_CONFIG", str(EXAMPLE_DIR / "skylift.toml"))
    monkeypatch.setenv("SKYLIFT_API__CAPTURE_STREAM", "")
    sys.modules.pop("functions.score.app", None)
    yield
    sys.modules.pop("functions.score.app", None)


@pytest.fixture
def champion(registry, churn_bundle):
    manifest = registry.register(churn_bundle)
    registry.promote(manifest.version)
    return manifest


def run(*args: str):
    config = str(EXAMPLE_DIR / "skylift.toml")
    return CliRunner().invoke(cli, ["-c", config, "invoke", *args], catch_exceptions=False)


def test_invoke_score_prints_the_reply(fresh_handler, champion):
    result = run("score", "--event", str(EVENTS_DIR / "api_predict.json"))
    assert result.exit_code == 0, result.output
    assert "status 200" in result.output
    reply = json.loads(result.stdout[result.stdout.index("{") :])
    assert reply["body"]["model_version"] == champion.version
    assert [p["id"] for p in reply["body"]["predictions"]] == [
        "C070000000",
        "C070000001",
        "C070000002",
    ]


def test_invoke_shows_an_error_reply(fresh_handler, champion):
    result = run("score", "--event", str(EVENTS_DIR / "api_bad_types.json"))
    assert result.exit_code == 1, result.output  # an HTTP error reply fails the command
    assert "status 400" in result.output
    assert '"validation_error"' in result.output


def test_invoke_names_a_missing_or_broken_event_file(tmp_path, fresh_handler):
    result = run("score", "--event", str(tmp_path / "nope.json"))
    assert result.exit_code == 2
    assert "nope.json" in result.output
    broken = tmp_path / "broken.json"
    broken.write_text('{"httpMethod": ')
    result = run("score", "--event", str(broken))
    assert result.exit_code == 2
    assert "broken.json" in result.output and "not valid JSON" in result.output


def test_invoke_score_serves_an_http_api_event(fresh_handler, champion):
    result = run("score", "--event", str(EVENTS_DIR / "api_v2_predict.json"))
    assert result.exit_code == 0, result.output
    assert "status 200" in result.output
    reply = json.loads(result.stdout[result.stdout.index("{") :])
    assert reply["headers"]["Content-Type"] == "application/json"
    assert len(reply["body"]["predictions"]) == 3
