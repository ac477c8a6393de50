"""The score function with a candidate: canary routing per id, the reply naming the version
that answered, per-version metrics and capture tags, shadow leaving replies alone, and a
candidate that cannot load or score leaving the champion to answer."""

from __future__ import annotations

import json
from typing import Any

import pytest

from skylift.api_capture import NullCapture
from skylift.candidate_holder import CandidateHolder
from skylift.rollout import (
    abort_candidate,
    routes_to_candidate,
    routing_key,
    start_candidate,
)
from skylift.serving import ModelHolder, build_service
from tests.helpers import RECORD, Clock, api_event, call, emf_lines, predict_event

REFRESH = 30.0


class ListCapture(NullCapture):
    """A capture sink that keeps the lines (every request sampled); the rest as NullCapture."""

    enabled = True

    def __init__(self) -> None:
        self.lines: list[dict[str, Any]] = []

    def sampled(self) -> bool:
        return True

    def submit(self, lines) -> None:
        self.lines += [json.loads(line) for line in lines]


@pytest.fixture
def api_config(churn_config):
    api = churn_config.api.model_copy(
        update={"model_refresh_seconds": REFRESH, "capture_stream": None, "max_records": 100}
    )
    return churn_config.model_copy(update={"api": api})


@pytest.fixture
def versions(registry, churn_bundle):
    first = registry.register(churn_bundle)
    second = registry.register(churn_bundle)
    registry.promote(first.version)
    return first.version, second.version


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def capture() -> ListCapture:
    return ListCapture()


@pytest.fixture
def service(api_config, registry, versions, clock, capture):
    holder = ModelHolder(registry, REFRESH, clock=clock)
    candidates = CandidateHolder(registry, REFRESH, clock=clock)
    return build_service(
        api_config,
        holder,
        capture,
        candidates=candidates,
        namespace="Skylift",
        service_name="skylift",
    )


def records(count: int, start: int = 0) -> list[dict[str, Any]]:
    return [{**RECORD, "customer_id": f"C{n}"} for n in range(start, start + count)]


def predict(service, payload) -> dict[str, Any]:
    status, body, _ = call(service, predict_event(payload))
    assert status == 200, body
    return body


def test_without_a_candidate_the_reply_keeps_its_shape(service, versions):
    body = predict(service, {"records": records(3)})
    assert body["model_version"] == versions[0]
    assert all("model_version" not in p for p in body["predictions"])


def test_canary_answers_its_ids_and_each_prediction_names_its_version(
    service, registry, versions, clock
):
    first, second = versions
    start_candidate(registry, second, "canary", percent=30)
    clock.now += REFRESH
    batch = records(100)
    body = predict(service, {"records": batch})
    expected = {
        r["customer_id"]: second
        if routes_to_candidate(routing_key(r["customer_id"]), 30)
        else first
        for r in batch
    }
    got = {p["id"]: p["model_version"] for p in body["predictions"]}
    assert got == expected and set(got.values()) == {first, second}
    assert body["model_version"] == first  # both answered: the champion's at the top
    # sticky: the same ids, alone or in another batch, get the same versions
    for start in (0, 37):
        again = predict(service, {"records": records(20, start)})
        assert {p["id"]: p["model_version"] for p in again["predictions"]} == {
            f"C{n}": expected[f"C{n}"] for n in range(start, start + 20)
        }
    # one record answered by the canary: its version is the reply's
    canary_id = next(i for i, v in expected.items() if v == second)
    alone = predict(service, {"records": [{**RECORD, "customer_id": canary_id}]})
    assert alone["model_version"] == second


def test_without_an_id_the_whole_request_goes_to_one_version(api_config, registry, versions, clock):
    start_candidate(registry, versions[1], "canary", percent=50)
    holder = ModelHolder(registry, REFRESH, clock=clock)
    service = build_service(
        api_config, holder, candidates=CandidateHolder(registry, REFRESH, clock=clock)
    )
    seen = set()
    for n in range(12):
        # the model's schema has an id column, but these records leave it out
        batch = [{k: v for k, v in RECORD.items() if k != "customer_id"} | {"age": 20.0 + n}] * 3
        body = predict(service, {"records": batch})
        answered = {p["model_version"] for p in body["predictions"]}
        assert len(answered) == 1 and body["model_version"] in answered
        assert predict(service, {"records": batch})["model_version"] == body["model_version"]
        seen |= answered
    assert seen == set(versions)


def test_shadow_never_alters_replies(service, registry, versions, clock, capture):
    batch = records(40)
    before = predict(service, {"records": batch})
    start_candidate(registry, versions[1], "shadow")
    clock.now += REFRESH
    after = predict(service, {"records": batch})
    assert after == before
    assert service.candidates.canary() is None  # a shadow is never loaded by the API
    assert {line["model_version"] for line in capture.lines} == {versions[0]}


def test_version_metrics_and_capture_tags(service, registry, versions, clock, capture, capsys):
    _first, second = versions
    start_candidate(registry, second, "canary", percent=50)
    clock.now += REFRESH
    capsys.readouterr()
    body = predict(service, {"records": records(30)})
    lines = emf_lines(capsys.readouterr().out)
    by_role = {line["role"]: line for line in lines if "role" in line}
    assert set(by_role) == {"champion", "candidate"}
    candidate = by_role["candidate"]
    assert candidate["VersionErrors"] == [0.0] and candidate["model_version"] == str(second)
    routed = sum(p["model_version"] == second for p in body["predictions"])
    assert candidate["VersionRecords"] == [float(routed)]
    assert 0.0 <= candidate["VersionPredictionMean"][0] <= 1.0
    dimension_sets = candidate["_aws"]["CloudWatchMetrics"][0]["Dimensions"]
    assert ["model", "role", "service"] in [sorted(d) for d in dimension_sets]
    tags = {(line["id"], line["role"], line["model_version"]) for line in capture.lines}
    assert tags == {
        (p["id"], "candidate" if p["model_version"] == second else "champion", p["model_version"])
        for p in body["predictions"]
    }
    assert all(line["scoring_ms"] >= 0 for line in capture.lines)


def test_failed_candidate_load_keeps_the_champion_serving_alone(
    service, registry, versions, clock, s3, api_config, capsys
):
    first, second = versions
    key = f"{api_config.storage.models_prefix}churn/versions/{second}/model.joblib"
    s3.put_object(Bucket=api_config.storage.bucket, Key=key, Body=b"not the hashed model")
    start_candidate(registry, second, "canary", percent=50)
    clock.now += REFRESH
    capsys.readouterr()
    body = predict(service, {"records": records(30)})
    assert body["model_version"] == first
    assert all("model_version" not in p for p in body["predictions"])
    (line,) = emf_lines(capsys.readouterr().out)
    assert line["CandidateLoadFailures"] == [1.0]
    status, health, _ = call(service, api_event("GET", "/health", content_type=None))
    assert status == 200 and health["candidate"]["loaded"] is False
    assert "sha256" in health["candidate"]["last_load_error"]


def test_a_canary_that_fails_to_score_is_answered_by_the_champion(
    service, registry, versions, clock, capture, capsys, monkeypatch
):
    first, second = versions
    start_candidate(registry, second, "canary", percent=50)
    clock.now += REFRESH
    canary = service.candidates.canary()
    assert canary is not None

    def broken(features):
        raise RuntimeError("candidate exploded")

    monkeypatch.setattr(canary.scorer, "score", broken)
    capsys.readouterr()
    body = predict(service, {"records": records(30)})
    assert {p["model_version"] for p in body["predictions"]} == {first}
    assert body["model_version"] == first
    by_role = {line["role"]: line for line in emf_lines(capsys.readouterr().out) if "role" in line}
    assert by_role["candidate"]["VersionErrors"] == [1.0]
    errors = [line for line in capture.lines if line.get("error")]
    assert errors and all(
        line["role"] == "candidate" and line["prediction"] is None for line in errors
    )


def test_an_aborted_canary_is_unloaded(service, registry, versions, clock):
    start_candidate(registry, versions[1], "canary", percent=50)
    clock.now += REFRESH
    assert service.candidates.canary() is not None
    abort_candidate(registry)
    clock.now += REFRESH
    body = predict(service, {"records": records(20)})
    assert service.candidates.canary() is None and body["model_version"] == versions[0]
    assert all("model_version" not in p for p in body["predictions"])
