"""boto3 clients configured the skylift way: standard retries, optional endpoint override.

An explicit ``endpoint_url`` (the CLI's ``--endpoint-url``) wins; otherwise boto3 itself
honours ``AWS_ENDPOINT_URL`` and ``AWS_ENDPOINT_URL_<SERVICE>``, which is how the local stack
and tests point everything at a moto server. Callers that live long (Lambda handlers) keep
the client they get at module scope; nothing is cached here, so tests can switch endpoints.
"""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config

__all__ = ["RETRY_CONFIG", "client"]

# "standard" mode retries throttling and 5xx with exponential backoff and jitter.
RETRY_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 5},
    connect_timeout=5,
    read_timeout=60,
)


def client(service: str, endpoint_url: str | None = None, region_name: str | None = None) -> Any:
    """A boto3 client for ``service`` with skylift's retry policy."""
    session = boto3.session.Session()
    return session.client(
        service,
        endpoint_url=endpoint_url,
        region_name=region_name or session.region_name or "us-east-1",
        config=RETRY_CONFIG,
    )
