"""An embedded moto server on 127.0.0.1 (a free port), and the environment that points at it."""

from __future__ import annotations

import logging
import os
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from moto.server import ThreadedMotoServer

from skylift.local.environment import ENVIRON_LOCK

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
    layer = local.env
    if set_environ:
        _ENVIRON_LAYERS.push(layer)
    try:
        yield local
    finally:
        if set_environ:
            _ENVIRON_LAYERS.remove(layer)
        reset_moto(local.endpoint_url)
        server.stop()


class _EnvironLayers:
    """The servers' environments, newest on top: ``os.environ`` holds the newest live one, or
    what it held before any. Servers may stop in any order (a test's stack inside a module's,
    a thread's), and a stopped server's endpoint must never stay behind: restoring a saved
    copy per server would hand a later test the endpoint of one already gone."""

    def __init__(self) -> None:
        self._lock = ENVIRON_LOCK  # a running local function keeps its endpoint until it ends
        self._layers: list[dict[str, str]] = []
        self._before: dict[str, str | None] = {}

    def push(self, layer: dict[str, str]) -> None:
        with self._lock:
            for key in layer:
                self._before.setdefault(key, os.environ.get(key))
            self._layers.append(layer)
            os.environ.update(layer)

    def remove(self, layer: dict[str, str]) -> None:
        with self._lock:
            self._layers = [live for live in self._layers if live is not layer]
            if self._layers:
                os.environ.update(self._layers[-1])
                return
            for key, value in self._before.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            self._before = {}


_ENVIRON_LAYERS = _EnvironLayers()


def reset_moto(endpoint_url: str) -> None:
    """Empty every moto backend (moto's own reset API)."""
    request = urllib.request.Request(f"{endpoint_url}/moto-api/reset", method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:  # loopback only
        response.read()
