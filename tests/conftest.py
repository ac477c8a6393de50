"""Shared fixtures: fake credentials, the churn example's config, a trained bundle, mocked S3.

Tiers: tests/unit (mock_aws, no sockets), tests/integration (mock_aws, several modules),
tests/infrastructure (CDK synth), tests/e2e (ThreadedMotoServer on 127.0.0.1, real HTTP).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from tests.helpers import EXAMPLE_DIR, create_signing_key

# Never let a test reach real AWS: fake credentials and a fixed region for every test.
os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SECURITY_TOKEN": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_NAMESPACE": "skylift-tests",
        "POWERTOOLS_SERVICE_NAME": "skylift",
    }
)
os.environ.pop("AWS_ENDPOINT_URL", None)
os.environ.pop("AWS_PROFILE", None)
os.environ.pop("SKYLIFT_CONFIG", None)
if str(EXAMPLE_DIR) not in sys.path:
    sys.path.insert(0, str(EXAMPLE_DIR))  # the example's churn_model package (pickled pipeline)


def _endpoints() -> dict[str, str]:
    """The endpoints the process holds between local functions' runs (a local stack's function
    still running on one of its threads has its own set meanwhile)."""
    from skylift.local.environment import ENVIRON_LOCK

    with ENVIRON_LOCK:
        return {key: value for key, value in os.environ.items() if key.startswith("AWS_ENDPOINT")}


@pytest.fixture(autouse=True)
def no_leaked_endpoint() -> Iterator[None]:
    """A test (or what it starts) must leave the AWS endpoints as it found them: a stopped
    server's endpoint left in ``os.environ`` sends every later mocked test in the worker to a
    dead port. Wider fixtures (a module's stack) are set up before and torn down after this."""
    before = _endpoints()
    yield
    after = _endpoints()
    if after != before:
        for key in after.keys() - before.keys():
            os.environ.pop(key, None)
        os.environ.update(before)
        pytest.fail(f"the test left the AWS endpoints changed: {before} -> {after}")


@pytest.fixture(scope="session")
def churn_config():
    from skylift.config import load_config

    return load_config(EXAMPLE_DIR / "skylift.toml")


@pytest.fixture(scope="session")
def churn_frame():
    from churn_model.data import generate_churn

    return generate_churn(3000, seed=1)


@pytest.fixture(scope="session")
def churn_bundle(churn_config, churn_frame):
    """A bundle trained once per session on 3,000 churn rows (not yet registered)."""
    from skylift.bundle import TrainingDataRef
    from skylift.training import train_candidate

    result = train_candidate(
        churn_config, churn_frame, TrainingDataRef(uri="memory://churn", sha256="0" * 64, rows=3000)
    )
    return result.bundle


@pytest.fixture(scope="session")
def churn_onnx_bundle(churn_config, churn_frame):
    """The example's portable variant (exports to ONNX, verified), trained once per session."""
    from churn_model.train import train_portable

    from skylift.bundle import TrainingDataRef
    from skylift.training import train_candidate

    result = train_candidate(
        churn_config,
        churn_frame,
        TrainingDataRef(uri="memory://churn", sha256="0" * 64, rows=3000),
        train_fn=train_portable,
    )
    assert result.bundle.onnx is not None, result.bundle.manifest.exports
    return result.bundle


@pytest.fixture
def s3(churn_config) -> Iterator[Any]:
    """A mocked S3 client with the example's bucket (and its signing key in KMS) created."""
    import boto3
    from moto import mock_aws

    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=churn_config.storage.bucket)
        create_signing_key(churn_config)
        yield client


@pytest.fixture
def registry(s3, churn_config):
    from skylift.registry import ModelRegistry

    return ModelRegistry.from_config(churn_config, s3_client=s3)


@pytest.fixture
def atomic_s3_puts() -> Iterator[None]:
    """Make moto's conditional PutObject atomic, and its reads safe beside it, as S3's are.

    moto checks If-Match / If-None-Match and then stores the object in two steps without a
    lock, so two threads can both pass the check; S3 does not allow that. And a GetObject
    racing an overwrite can read the replaced object's closed buffer ("I/O operation on closed
    file"). Serialising moto's put_object and get_object restores S3's semantics without
    touching the code under test (which still has to send the right conditions for only one
    writer to win).
    """
    import threading

    from moto.s3.responses import S3Response

    originals = {name: getattr(S3Response, name) for name in ("put_object", "get_object")}
    lock = threading.RLock()

    def serialised(original: Any) -> Any:
        def call(self: Any) -> Any:
            with lock:
                return original(self)

        return call

    for name, original in originals.items():
        setattr(S3Response, name, serialised(original))
    try:
        yield
    finally:
        for name, original in originals.items():
            setattr(S3Response, name, original)


@pytest.fixture
def isolated_logging():
    """Undo what importing the handler does to logging.

    Powertools' Logger(service="skylift") configures the stdlib logger "skylift" (the parent
    of skylift.*): a JSON handler on the stream of this test and marker attributes it checks
    when the next Logger is created. Later tests must get the logging they started with.
    """
    import logging

    def skylift_loggers() -> dict[str, logging.Logger]:
        manager = logging.root.manager
        return {
            name: found
            for name, found in manager.loggerDict.items()
            if name.split(".")[0] == "skylift" and isinstance(found, logging.Logger)
        }

    saved = {
        name: (dict(found.__dict__), found.handlers[:], found.filters[:])
        for name, found in skylift_loggers().items()
    }
    yield
    for name, found in skylift_loggers().items():
        if name in saved:
            attributes, handlers, filters = saved[name]
            found.__dict__.clear()
            found.__dict__.update(attributes)
            found.handlers, found.filters = handlers, filters
        else:
            for name_ in [a for a in found.__dict__ if a == "init" or a.startswith("powertools_")]:
                found.__dict__.pop(name_)
            found.handlers, found.filters, found.propagate = [], [], True
        found.setLevel(found.level)  # clears logging's level cache
