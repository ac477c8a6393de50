"""The unit tier runs with sockets switched off: it proves these tests need no network
(moto's in-process mock_aws still works)."""

from __future__ import annotations

import pytest
from pytest_socket import disable_socket, enable_socket


@pytest.fixture(autouse=True)
def _no_network():
    disable_socket(allow_unix_socket=True)
    yield
    enable_socket()
