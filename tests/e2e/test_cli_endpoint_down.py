"""The CLI against an AWS endpoint that is down: one line and exit 2, no traceback (a real
refused connection on loopback, so this lives in the tier that may open sockets)."""

from __future__ import annotations

import socket

import pytest
from botocore.config import Config

from tests.unit.test_cli_errors import CONFIG, assert_one_line_error, run

pytestmark = pytest.mark.e2e


@pytest.fixture
def one_attempt(monkeypatch):
    """No retries: a refused connection fails at once instead of after the backoff."""
    import skylift.aws

    monkeypatch.setattr(skylift.aws, "RETRY_CONFIG", Config(retries={"max_attempts": 1}))


def test_an_endpoint_that_is_down_is_one_line(one_attempt):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = run("-c", CONFIG, "--endpoint-url", f"http://127.0.0.1:{port}", "models", "list")
    assert_one_line_error(result, f"cannot connect to http://127.0.0.1:{port}", "is it up?")
