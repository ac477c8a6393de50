"""Model lifecycle behind the API (refresh, rollback, failed and tampered reloads); the fuzz of
request events is in test_api_fuzz.py."""

from __future__ import annotations

from typing import Any

import pytest

from skylift.serving import ModelHolder, build_service
from tests.helpers import (
    RECORD,
    Clock,
    api_event,
    call,
    emf_lines,
    predict_event,
)

REFRESH = 30.0


@pytest.fixture
def api_config(churn_config):
    api = churn_config.api.model_copy(
        update={"model_refresh_seconds": REFRESH, "capture_stream": None, "max_records": 50}
    )
    return churn_config.model_copy(update={"api": api})


def artifact_key(config, version: int) -> str:
    return f"{config.storage.models_prefix}{config.model.name}/versions/{version}/model.joblib"


@pytest.fixture
def versions(registry, churn_bundle):
    """Versions 1 and 2 of the same model; 1 is champion."""
    first = registry.register(churn_bundle)
    second = registry.register(churn_bundle)
    registry.promote(first.version)
    return first.version, second.version


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def service(api_config, registry, versions, clock):
    holder = ModelHolder(registry, REFRESH, clock=clock)
    return build_service(api_config, holder, namespace="Skylift", service_name="skylift")


def served_version(service) -> int:
    status, body, _ = call(service, predict_event({"records": [RECORD]}))
    assert status == 200, body
    return int(body["model_version"])


def test_promotion_is_picked_up_after_the_refresh_interval(service, registry, versions, clock):
    first, second = versions
    assert served_version(service) == first
    registry.promote(second)
    clock.now += REFRESH - 1
    assert served_version(service) == first  # not checked again yet
    clock.now += 1
    assert served_version(service) == second


def test_rollback_is_picked_up(service, registry, versions, clock):
    first, second = versions
    assert served_version(service) == first
    registry.promote(second)
    clock.now += REFRESH
    assert served_version(service) == second
    registry.rollback()
    clock.now += REFRESH
    assert served_version(service) == first


def test_unchanged_alias_costs_one_head_request(service, registry, clock, monkeypatch):
    served_version(service)
    calls: list[str] = []
    for name in ("alias_etag", "resolve", "load"):
        original = getattr(registry, name)

        def spy(*args: Any, _name: str = name, _original: Any = original, **kwargs: Any) -> Any:
            calls.append(_name)
            return _original(*args, **kwargs)

        monkeypatch.setattr(registry, name, spy)
    clock.now += REFRESH
    served_version(service)
    served_version(service)
    assert calls == ["alias_etag"]


def test_tampered_bundle_is_never_served_and_the_failure_is_counted(
    service, registry, versions, clock, s3, api_config, capsys
):
    first, second = versions
    assert served_version(service) == first
    key = artifact_key(api_config, second)
    s3.put_object(Bucket=api_config.storage.bucket, Key=key, Body=b"not the model that was hashed")
    registry.promote(second)
    clock.now += REFRESH
    capsys.readouterr()
    assert served_version(service) == first  # the previous model keeps serving
    (line,) = emf_lines(capsys.readouterr().out)
    assert line["ModelReloadFailures"] == [1.0]
    assert "ModelReloadFailures" in [
        m["Name"] for m in line["_aws"]["CloudWatchMetrics"][0]["Metrics"]
    ]
    status, health, _ = call(service, api_event("GET", "/health", content_type=None))
    assert status == 200
    assert health["model_version"] == first
    assert "sha256" in health["last_reload_error"]


def test_tampered_champion_at_cold_start_gives_503(api_config, registry, churn_bundle, s3, clock):
    manifest = registry.register(churn_bundle)
    registry.promote(manifest.version)
    key = artifact_key(api_config, manifest.version)
    s3.put_object(Bucket=api_config.storage.bucket, Key=key, Body=b"evil pickle")
    service = build_service(api_config, ModelHolder(registry, REFRESH, clock=clock))
    status, body, _ = call(service, predict_event({"records": [RECORD]}))
    assert (status, body["error"]["code"]) == (503, "model_unavailable")
    assert "sha256" in body["error"]["message"]


def test_a_model_promoted_after_cold_start_is_served_once_checked(
    api_config, registry, churn_bundle, clock
):
    service = build_service(api_config, ModelHolder(registry, REFRESH, clock=clock))
    status, _, _ = call(service, predict_event({"records": [RECORD]}))
    assert status == 503
    manifest = registry.register(churn_bundle)
    registry.promote(manifest.version)
    clock.now += REFRESH
    assert served_version(service) == manifest.version


def test_failed_reload_when_s3_is_unreachable_keeps_serving(
    service, registry, versions, clock, monkeypatch
):
    first, _ = versions
    served_version(service)

    def unreachable(alias: str = "champion") -> str:
        raise ConnectionError("S3 endpoint unreachable")

    monkeypatch.setattr(registry, "alias_etag", unreachable)
    clock.now += REFRESH
    assert served_version(service) == first
    assert service.holder.status().reason.startswith("ConnectionError")


# ---- regression models: predictions without probabilities ------------------------------------


def test_regression_model_replies_without_probabilities(api_config, s3, clock):
    import pandas as pd
    from sklearn.linear_model import LinearRegression

    from skylift.bundle import ModelBundle
    from skylift.registry import ModelRegistry
    from skylift.schema import FeatureSchema

    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "y": [2.0, 4.0, 6.0, 8.0]})
    schema = FeatureSchema.infer(frame, target="y")
    model = LinearRegression().fit(frame[["x"]], frame["y"])
    bundle = ModelBundle.create(
        model, name="churn", task="regression", target="y", feature_schema=schema
    )
    registry = ModelRegistry.from_config(api_config, s3_client=s3)
    registry.promote(registry.register(bundle).version or 0)
    service = build_service(api_config, ModelHolder(registry, REFRESH, clock=clock))
    status, body, _ = call(service, predict_event({"records": [{"x": 5.0}, {"x": 1}]}))
    assert status == 200, body
    assert [p["prediction"] for p in body["predictions"]] == pytest.approx([10.0, 2.0])
    assert all("probabilities" not in p and "id" not in p for p in body["predictions"])


# ---- tracing switch ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("function_name", "disabled", "expected"),
    [(None, None, False), ("skylift-score", "true", False), ("skylift-score", "false", True)],
)
def test_tracing_only_inside_lambda_and_unless_disabled(
    monkeypatch, function_name, disabled, expected
):
    from skylift.serving import lambda_tracer, tracing_enabled

    for name, value in (
        ("AWS_LAMBDA_FUNCTION_NAME", function_name),
        ("POWERTOOLS_TRACE_DISABLED", disabled),
    ):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    assert tracing_enabled() is expected
    if not expected:
        assert lambda_tracer("skylift") is None  # the X-Ray SDK is not even imported


# ---- capture sink (no AWS) ---------------------------------------------------------------------


class RecordingFirehose:
    def __init__(self, fail_first: int = 0, raise_error: bool = False) -> None:
        self.calls: list[list[bytes]] = []
        self.fail_first = fail_first
        self.raise_error = raise_error

    def put_record_batch(self, DeliveryStreamName: str, Records: list[dict[str, bytes]]):
        if self.raise_error:
            raise ConnectionError("firehose unreachable")
        self.calls.append([r["Data"] for r in Records])
        failed = min(self.fail_first, len(Records))
        self.fail_first -= failed
        responses = [{"ErrorCode": "ServiceUnavailableException"}] * failed + [
            {"RecordId": "x"}
        ] * (len(Records) - failed)
        return {"FailedPutCount": failed, "RequestResponses": responses}


def test_capture_batches_lines_and_resends_refused_ones_once():
    from skylift.api_capture import FirehoseCapture

    firehose = RecordingFirehose(fail_first=2)
    sink = FirehoseCapture("s", 1.0, client_factory=lambda: firehose, linger_seconds=5)
    sink.submit([b"a\n", b"b\n", b"c\n"])
    sink.submit([b"d\n"])
    assert sink.flush(timeout=5)
    assert firehose.calls[0] == [b"a\n", b"b\n", b"c\n", b"d\n"]  # one call for both requests
    assert firehose.calls[1] == [b"a\n", b"b\n"]  # the refused records, once more
    assert sink.sent == 4 and sink.take_failures() == 0


def test_capture_counts_what_it_could_not_send():
    from skylift.api_capture import MAX_RECORD_BYTES, FirehoseCapture

    sink = FirehoseCapture(
        "s", 1.0, client_factory=lambda: RecordingFirehose(raise_error=True), linger_seconds=0
    )
    sink.submit([b"a\n", b"x" * (MAX_RECORD_BYTES + 1)])
    assert sink.flush(timeout=5)
    assert sink.take_failures() == 2
    assert sink.take_failures() == 0  # taken once


def test_capture_drops_when_the_queue_is_full():
    import threading

    from skylift.api_capture import FirehoseCapture

    sending, gate = threading.Event(), threading.Event()

    class Stuck(RecordingFirehose):
        def put_record_batch(self, **kwargs: Any):
            sending.set()
            gate.wait(5)
            return super().put_record_batch(**kwargs)

    sink = FirehoseCapture("s", 1.0, client_factory=Stuck, max_queued_lines=2, linger_seconds=0)
    try:
        sink.submit([b"1\n"])
        assert sending.wait(5)  # the worker holds line 1 in a call that does not return
        sink.submit([b"2\n", b"3\n", b"4\n"])  # room for two
    finally:
        gate.set()
    assert sink.flush(timeout=5)
    assert sink.take_failures() == 1
    assert sink.sent == 3
