"""An embedded moto server on 127.0.0.1 (a free port), and the environment that points at it."""

from __future__ import annotations

import logging
import os
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from moto.server import ThreadedMotoServer

__all__ = ["LocalAws", "local_aws"]

LOCAL_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@dataclass
class LocalAws:
    server: ThreadedMotoServer
    endpoint_url: str

    @property
    def env(self) -> dict[str, str]:
        return {**LOCAL_CREDENTIALS, "AWS_ENDPOINT_URL": self.endpoint_url}


@contextmanager
def local_aws(port: int = 0, set_environ: bool = True) -> Iterator[LocalAws]:
    """Run a moto server for the duration; with ``set_environ``, boto3 talks to it."""
    # werkzeug logs every request at INFO; the local stack prints its own progress.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    host, bound = server.get_host_and_port()
    local = LocalAws(server=server, endpoint_url=f"http://{host}:{bound}")
    # moto keeps its backends per process, not per server: a stack started after another in
    # the same process would inherit its buckets and in-flight messages. Start from nothing.
    reset_moto(local.endpoint_url)
    saved = {key: os.environ.get(key) for key in local.env}
    if set_environ:
        os.environ.update(local.env)
    try:
        yield local
    finally:
        if set_environ:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        reset_moto(local.endpoint_url)
        server.stop()


def reset_moto(endpoint_url: str) -> None:
    """Empty every moto backend (moto's own reset API)."""
    request = urllib.request.Request(f"{endpoint_url}/moto-api/reset", method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:  # loopback only
        response.read()
