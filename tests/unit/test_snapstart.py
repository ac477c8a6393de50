"""SnapStart: which configs get it, what the runtime hooks do to a service, and the local stack
running them as Lambda does between publishing a version and the first restored invoke."""

from __future__ import annotations

import os

import pytest
import snapshot_restore_py

from skylift.api_capture import FirehoseCapture
from skylift.config import SkyliftConfig
from skylift.local.functions import LocalFunction
from skylift.serving import ModelHolder, build_service
from skylift.snapstart import (
    INIT_TYPE_ENV,
    ON_DEMAND_INIT,
    SNAPSTART_INIT,
    register_snapstart_hooks,
)
from tests.helpers import Clock, fake_package, spec_for


def with_settings(config: SkyliftConfig, api: dict | None = None, deploy: dict | None = None):
    data = config.model_dump(exclude={"config_path"})
    data["api"].update(api or {})
    data["deploy"].update(deploy or {})
    return SkyliftConfig.model_validate(data)


@pytest.mark.parametrize(
    ("api", "deploy", "expected"),
    [
        ({}, {"python_version": "3.12"}, True),
        ({}, {"python_version": "3.13"}, True),
        ({}, {"python_version": "3.11"}, False),
        ({}, {"packaging": "image"}, False),
        ({"provisioned_concurrency": 2}, {}, False),
        ({"snap_start": False}, {}, False),
        ({"snap_start": True}, {}, True),
    ],
)
def test_snap_start_defaults_to_on_where_lambda_allows_it(churn_config, api, deploy, expected):
    assert with_settings(churn_config, api, deploy).score_snap_start is expected


@pytest.mark.parametrize(
    ("deploy", "api", "reason"),
    [
        ({"python_version": "3.11"}, {}, "Python 3.12 and later"),
        ({"packaging": "image"}, {}, "not container images"),
        ({}, {"provisioned_concurrency": 1}, "provisioned_concurrency"),
    ],
)
def test_snap_start_asked_for_where_lambda_refuses_it_is_a_config_error(
    churn_config, deploy, api, reason
):
    with pytest.raises(ValueError, match=reason):
        with_settings(churn_config, {"snap_start": True, **api}, deploy)


REFRESH = 3600.0


@pytest.fixture
def two_versions(registry, churn_bundle):
    first = registry.register(churn_bundle).version
    second = registry.register(churn_bundle).version
    registry.promote(first)
    return first, second


def test_restore_picks_up_a_promotion_made_after_the_snapshot(churn_config, registry, two_versions):
    first, second = two_versions
    holder = ModelHolder(registry, REFRESH, clock=Clock())
    service = build_service(churn_config, holder, namespace="Skylift", service_name="skylift")
    service.before_snapshot()
    assert holder.scorer is not None and holder.scorer.version == first
    registry.promote(second)  # while the snapshot sits in Lambda's cache
    service.after_restore()  # well inside the refresh interval: checked anyway
    assert holder.scorer.version == second
    assert holder.take_reload_failures() == 0


def test_before_snapshot_loads_a_model_the_init_did_not_have(churn_config, registry, two_versions):
    holder = ModelHolder(registry, REFRESH, clock=Clock())  # nothing loaded yet
    service = build_service(churn_config, holder, namespace="Skylift", service_name="skylift")
    service.before_snapshot()
    assert holder.scorer is not None and holder.scorer.version == two_versions[0]


class RecordingClient:
    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True


def test_restored_copies_draw_different_capture_samples_and_reconnect():
    clients: list[RecordingClient] = []

    def factory() -> RecordingClient:
        clients.append(RecordingClient())
        return clients[-1]

    capture = FirehoseCapture("stream", 0.5, client_factory=factory)
    capture._client = factory()  # as after a first send
    snapshot_state = capture._rng.getstate()
    capture.after_restore()
    assert clients[0].closed and capture._client is None
    assert capture._rng.getstate() != snapshot_state


def test_hooks_register_only_for_a_snapstart_init(monkeypatch):
    before = len(snapshot_restore_py.get_before_snapshot())
    monkeypatch.setenv(INIT_TYPE_ENV, "on-demand")
    assert register_snapstart_hooks(lambda: None, lambda: None) is False
    assert len(snapshot_restore_py.get_before_snapshot()) == before


SNAPSTART_HANDLER = """
    from skylift.snapstart import register_snapstart_hooks

    CALLS = []
    REGISTERED = register_snapstart_hooks(
        lambda: CALLS.append("before_snapshot"), lambda: CALLS.append("after_restore")
    )

    def handler(event, context):
        return {"registered": REGISTERED, "calls": list(CALLS)}
"""


@pytest.mark.parametrize("snap_start", [True, False])
def test_local_stack_runs_the_hooks_as_lambda_does(tmp_path, monkeypatch, snap_start):
    monkeypatch.delenv(INIT_TYPE_ENV, raising=False)
    package = fake_package(tmp_path, monkeypatch, SNAPSTART_HANDLER)
    spec = spec_for(package)
    spec = type(spec)(**{**spec.__dict__, "snap_start": snap_start})
    function = LocalFunction(spec, {})
    try:
        first = function.invoke({})
        second = function.invoke({})
    finally:
        function.unload()
    if snap_start:
        assert first == {"registered": True, "calls": ["before_snapshot", "after_restore"]}
    else:
        assert first == {"registered": False, "calls": []}
    # The init type was the function's own (registered above), set only while its code ran.
    assert function.environment[INIT_TYPE_ENV] == (SNAPSTART_INIT if snap_start else ON_DEMAND_INIT)
    assert INIT_TYPE_ENV not in os.environ
    assert second == first  # once per environment, not per invocation
