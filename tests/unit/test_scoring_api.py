"""The online scoring API: routes, the error contract, limits, metrics, the sample events."""

from __future__ import annotations

import base64
import copy
import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from skylift.serving import ModelHolder, build_service
from skylift.topology import API_ROUTES
from tests.helpers import (
    EVENTS_DIR,
    RECORD,
    Clock,
    FakeContext,
    api_event,
    assert_error_shape,
    call,
    emf_lines,
    header,
    http_api_event,
    load_event,
    predict_event,
)

MAX_RECORDS = 20
MAX_BODY = 8192


@pytest.fixture(params=["sklearn", "onnx"])
def runtime(request) -> str:
    """[deploy].runtime: the whole suite runs against the pickle and against model.onnx."""
    return str(request.param)


@pytest.fixture
def served_bundle(runtime, request):
    """What the runtime can serve: the example (does not convert), or its portable variant."""
    return request.getfixturevalue("churn_bundle" if runtime == "sklearn" else "churn_onnx_bundle")


@pytest.fixture
def api_config(churn_config, runtime):
    api = churn_config.api.model_copy(
        update={
            "max_records": MAX_RECORDS,
            "max_body_bytes": MAX_BODY,
            "model_refresh_seconds": 30.0,
            "capture_stream": None,
        }
    )
    deploy = churn_config.deploy.model_copy(update={"runtime": runtime})
    return churn_config.model_copy(update={"api": api, "deploy": deploy})


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def champion(registry, served_bundle):
    manifest = registry.register(served_bundle)
    registry.promote(manifest.version)
    return manifest


@pytest.fixture
def service(api_config, registry, champion, clock, runtime):
    holder = ModelHolder(
        registry, api_config.api.model_refresh_seconds, clock=clock, runtime=runtime
    )
    return build_service(api_config, holder, namespace="Skylift", service_name="skylift")


# ---- happy paths ------------------------------------------------------------------------------


def test_predict_returns_model_version_ids_predictions_and_probabilities(service, champion):
    second = dict(RECORD, customer_id="C2", contract="two-year", support_calls=0)
    status, body, reply = call(service, predict_event({"records": [RECORD, second]}))
    assert status == 200, body
    assert header(reply, "Content-Type") == "application/json"
    assert reply["headers"]["Content-Type"] == reply["multiValueHeaders"]["Content-Type"][-1]
    assert body["model"] == "churn"
    assert body["model_version"] == champion.version
    assert [p["id"] for p in body["predictions"]] == ["C1", "C2"]
    for prediction in body["predictions"]:
        assert prediction["prediction"] in (0, 1)
        assert set(prediction["probabilities"]) == {"0", "1"}
        assert sum(prediction["probabilities"].values()) == pytest.approx(1.0)
    assert body["warnings"] == []


def test_predict_scores_like_the_pipeline(service, served_bundle):
    import pandas as pd

    status, body, _ = call(service, predict_event({"records": [RECORD]}))
    features = pd.DataFrame([{k: v for k, v in RECORD.items() if k != "customer_id"}])
    expected = served_bundle.model.predict_proba(features)[0]
    assert status == 200
    assert body["predictions"][0]["probabilities"]["1"] == pytest.approx(expected[1])


def test_mlflow_formats_give_the_same_predictions(service):
    records_reply = call(service, predict_event({"records": [RECORD]}))[1]
    columns = list(RECORD)
    split = {"dataframe_split": {"columns": columns, "data": [[RECORD[c] for c in columns]]}}
    for payload in ({"dataframe_records": [RECORD]}, split):
        status, body, _ = call(service, predict_event(payload))
        assert status == 200, body
        assert body["predictions"] == records_reply["predictions"]


def test_base64_body_is_decoded(service):
    event = api_event(body=json.dumps({"records": [RECORD]}), base64_body=True)
    status, body, _ = call(service, event)
    assert status == 200, body
    assert body["predictions"][0]["id"] == "C1"


def test_nullable_feature_may_be_null_and_unusual_values_are_warned(service, served_bundle):
    # the portable (onnx) variant does not read region: an unseen category of a column it reads
    names = served_bundle.manifest.feature_schema.names
    category = "region" if "region" in names else "contract"
    record = dict(RECORD, age=None, tenure_months=10_000, **{category: "atlantis"})
    status, body, _ = call(service, predict_event({"records": [record]}))
    assert status == 200, body
    problems = {(w["record"], w["field"]) for w in body["warnings"]}
    assert (0, category) in problems
    assert (0, "tenure_months") in problems


def test_health_and_model_describe_the_champion(service, champion):
    status, health, _ = call(service, api_event("GET", "/health", content_type=None))
    assert status == 200
    assert health["status"] == "ok"
    assert health["model_version"] == champion.version
    status, model, _ = call(service, api_event("GET", "/model", content_type=None))
    assert status == 200
    assert model["version"] == champion.version
    assert {"feature_schema", "metrics", "created_at", "name"} <= set(model)
    assert "baseline" not in model and "training_data" not in model


def test_openapi_document_describes_the_routes(service):
    status, document, _ = call(service, api_event("GET", "/openapi.json", content_type=None))
    assert status == 200
    assert document["openapi"].startswith("3.")
    assert {"/predict", "/health", "/model"} <= set(document["paths"])
    predict = document["paths"]["/predict"]["post"]
    assert "requestBody" in predict
    assert {"200", "400", "413", "415", "503"} <= set(predict["responses"])
    scheme = document["components"]["securitySchemes"]["apiKey"]
    assert (scheme["type"], scheme["in"], scheme["name"]) == ("apiKey", "header", "x-api-key")


# ---- bad input: every one a specific 4xx with the error shape --------------------------------


def _replace(**fields: Any) -> dict[str, Any]:
    return {"records": [dict(RECORD, **fields)]}


def _without(name: str) -> dict[str, Any]:
    record = dict(RECORD)
    del record[name]
    return {"records": [record]}


def _encoded_event(raw: bytes, **headers: str) -> dict[str, Any]:
    """A POST whose body bytes API Gateway passed base64-encoded, with extra headers."""
    event = api_event(body=base64.b64encode(raw).decode()) | {"isBase64Encoded": True}
    for name, value in headers.items():
        name = name.replace("_", "-")
        event["headers"][name] = value
        event["multiValueHeaders"][name] = [value]
    return event


_BODY = json.dumps({"records": [RECORD]}).encode()
_LATIN1_BODY = json.dumps({"records": [dict(RECORD, region="Zürich")]}, ensure_ascii=False)

BAD_INPUTS: list[tuple[str, dict[str, Any], int, str, tuple[int | None, str] | None]] = [
    (
        "wrong type: text for a number",
        predict_event(_replace(age="forty")),
        400,
        "validation_error",
        (0, "age"),
    ),
    (
        "wrong type: bool for a number",
        predict_event(_replace(monthly_charges=True)),
        400,
        "validation_error",
        (0, "monthly_charges"),
    ),
    (
        "wrong type: number for a category",
        predict_event(_replace(contract=2)),
        400,
        "validation_error",
        (0, "contract"),
    ),
    (
        "wrong type: list for a number",
        predict_event(_replace(age=[1])),
        400,
        "validation_error",
        (0, "age"),
    ),
    (
        "missing required feature",
        predict_event(_without("contract")),
        400,
        "validation_error",
        (0, "contract"),
    ),
    (
        "null for a required feature",
        predict_event(_replace(contract=None)),
        400,
        "validation_error",
        (0, "contract"),
    ),
    ("extra field", predict_event(_replace(colour="red")), 400, "validation_error", (0, "colour")),
    (
        "fraction for an integer feature",
        predict_event(_replace(tenure_months=12.5)),
        400,
        "validation_error",
        (0, "tenure_months"),
    ),
    (
        "id too long to echo",
        predict_event(_replace(customer_id="C" * 257)),
        400,
        "validation_error",
        (0, "customer_id"),
    ),
    ("NaN literal", api_event(body='{"records": [{"age": NaN}]}'), 400, "invalid_json", None),
    (
        "Infinity literal",
        api_event(body='{"records": [{"age": -Infinity}]}'),
        400,
        "invalid_json",
        None,
    ),
    (
        "1e999 overflows to inf",
        api_event(body=json.dumps(_replace(age=12345.678)).replace("12345.678", "1e999")),
        400,
        "validation_error",
        (0, "age"),
    ),
    ("nested too deeply", api_event(body="[" * 5000), 400, "invalid_json", None),
    (
        "integer too long to parse",
        api_event(body='{"records": [{"age": ' + "1" * 5000 + "}]}"),
        400,
        "invalid_json",
        None,
    ),
    ("empty records", predict_event({"records": []}), 400, "empty_input", None),
    (
        "empty dataframe_split",
        predict_event({"dataframe_split": {"columns": [], "data": []}}),
        400,
        "empty_input",
        None,
    ),
    ("empty body", api_event(body=""), 400, "empty_input", None),
    ("no body", api_event(body=None), 400, "empty_input", None),
    ("empty object", predict_event({}), 400, "validation_error", None),
    (
        "two formats",
        predict_event({"records": [RECORD], "dataframe_records": [RECORD]}),
        400,
        "validation_error",
        None,
    ),
    ("unknown envelope key", predict_event({"instances": [RECORD]}), 400, "validation_error", None),
    ("records not a list", predict_event({"records": RECORD}), 400, "validation_error", None),
    (
        "record not an object",
        predict_event({"records": [RECORD, 7]}),
        400,
        "validation_error",
        (1, ""),
    ),
    ("body is a list", predict_event([RECORD]), 400, "validation_error", None),
    (
        "split row too short",
        predict_event({"dataframe_split": {"columns": ["a", "b"], "data": [[1]]}}),
        400,
        "validation_error",
        (0, "dataframe_split.data"),
    ),
    ("not JSON", api_event(body="records=1"), 400, "invalid_json", None),
    ("truncated JSON", api_event(body='{"records": [{"age": 1}'), 400, "invalid_json", None),
    (
        "bad base64",
        api_event(body="%%%not base64%%%", base64_body=False) | {"isBase64Encoded": True},
        400,
        "invalid_body",
        None,
    ),
    (
        "base64 of non-UTF-8",
        api_event(body=base64.b64encode(b"\xff\xfe\xfa").decode()) | {"isBase64Encoded": True},
        400,
        "invalid_body",
        None,
    ),
    (
        "gzip that is not gzip",
        _encoded_event(_BODY, Content_Encoding="gzip"),
        400,
        "invalid_body",
        None,
    ),
    (
        "truncated gzip",
        _encoded_event(gzip.compress(_BODY)[:-12], Content_Encoding="gzip"),
        400,
        "invalid_body",
        None,
    ),
    (
        "gzip sent as text",
        _encoded_event(_BODY, Content_Encoding="gzip")
        | {"body": _BODY.decode()}
        | {"isBase64Encoded": False},
        400,
        "invalid_body",
        None,
    ),
    (
        "gzip bomb",
        _encoded_event(gzip.compress(b" " * (MAX_BODY * 50) + _BODY), Content_Encoding="gzip"),
        413,
        "payload_too_large",
        None,
    ),
    (
        "brotli",
        _encoded_event(_BODY, Content_Encoding="br"),
        415,
        "unsupported_media_type",
        None,
    ),
    (
        "latin-1 body",
        _encoded_event(_LATIN1_BODY.encode("latin-1")),
        400,
        "invalid_body",
        (None, "body"),
    ),
    (
        "latin-1 charset",
        api_event(body=_LATIN1_BODY, content_type="application/json; charset=ISO-8859-1"),
        415,
        "unsupported_media_type",
        None,
    ),
    (
        "too many records",
        predict_event({"records": [RECORD] * (MAX_RECORDS + 1)}),
        413,
        "too_many_records",
        None,
    ),
    (
        "huge body",
        api_event(body=json.dumps({"records": [RECORD], "pad": "x" * MAX_BODY})),
        413,
        "payload_too_large",
        None,
    ),
    (
        "huge base64 body",
        api_event(body=json.dumps({"records": [RECORD] * 60}), base64_body=True),
        413,
        "payload_too_large",
        None,
    ),
    (
        "huge multibyte body",
        api_event(
            body=json.dumps({"records": [dict(RECORD, region="é" * 4500)]}, ensure_ascii=False)
        ),
        413,
        "payload_too_large",
        None,
    ),
    (
        "text/plain",
        api_event(body=json.dumps({"records": [RECORD]}), content_type="text/plain"),
        415,
        "unsupported_media_type",
        None,
    ),
    (
        "form post",
        api_event(body="records=1", content_type="application/x-www-form-urlencoded"),
        415,
        "unsupported_media_type",
        None,
    ),
    (
        "multipart",
        api_event(body="--x\r\n\r\n--x--", content_type="multipart/form-data; boundary=x"),
        415,
        "unsupported_media_type",
        None,
    ),
    (
        "xml",
        api_event(body="<records/>", content_type="application/xml"),
        415,
        "unsupported_media_type",
        None,
    ),
    ("unknown route", api_event("GET", "/score", content_type=None), 404, "not_found", None),
    ("unknown nested route", api_event("POST", "/predict/now"), 404, "not_found", None),
    (
        "GET /predict",
        api_event("GET", "/predict", content_type=None),
        405,
        "method_not_allowed",
        None,
    ),
    ("POST /health", api_event("POST", "/health", body="{}"), 405, "method_not_allowed", None),
    (
        "DELETE /model",
        api_event("DELETE", "/model", content_type=None),
        405,
        "method_not_allowed",
        None,
    ),
]


@pytest.mark.filterwarnings("ignore:Received multipart/form-data without base64:UserWarning")
@pytest.mark.parametrize(
    ("event", "status", "code", "detail"),
    [pytest.param(e, s, c, d, id=name) for name, e, s, c, d in BAD_INPUTS],
)
def test_bad_input_gets_its_status_and_code(service, event, status, code, detail):
    got_status, body, reply = call(service, copy.deepcopy(event))
    assert (got_status, body["error"]["code"]) == (status, code), body
    assert_error_shape(body)
    if detail is not None:
        assert detail in {(d["record"], d["field"]) for d in body["error"]["details"]}, body
    if status == 405:
        assert header(reply, "Allow")


def test_validation_errors_name_every_bad_record_and_field(service):
    records = [RECORD, dict(RECORD, age="x"), dict(RECORD, contract=1, colour="red")]
    status, body, _ = call(service, predict_event({"records": records}))
    assert status == 400
    details = {(d["record"], d["field"]) for d in body["error"]["details"]}
    assert details == {(1, "age"), (2, "contract"), (2, "colour")}
    assert "2 of 3" in body["error"]["message"]


def test_limits_come_from_the_config(service):
    status, _, _ = call(service, predict_event({"records": [RECORD] * MAX_RECORDS}))
    assert status == 200


# ---- no model, bad model ---------------------------------------------------------------------


def test_no_champion_gives_503_on_predict_health_and_model(
    api_config, registry, churn_bundle, clock
):
    registry.register(churn_bundle)  # registered, never promoted
    holder = ModelHolder(registry, 30.0, clock=clock)
    service = build_service(api_config, holder)
    for event in (
        predict_event({"records": [RECORD]}),
        api_event("GET", "/health", content_type=None),
        api_event("GET", "/model", content_type=None),
    ):
        status, body, _ = call(service, event)
        assert (status, body["error"]["code"]) == (503, "model_unavailable")
        assert "champion" in body["error"]["message"]
    # bad input is still the caller's fault, model or not
    status, body, _ = call(service, predict_event({"records": []}))
    assert (status, body["error"]["code"]) == (400, "empty_input")


def test_missing_bucket_gives_503_not_a_crash(api_config, s3, clock):
    from skylift.registry import ModelRegistry

    registry = ModelRegistry("no-such-bucket-here", "churn", s3_client=s3)
    service = build_service(api_config, ModelHolder(registry, 30.0, clock=clock))
    status, body, _ = call(service, predict_event({"records": [RECORD]}))
    assert (status, body["error"]["code"]) == (503, "model_unavailable")
    assert "no-such-bucket-here" in body["error"]["message"]


def test_create_service_without_config_answers_503(monkeypatch, tmp_path):
    from skylift.serving import create_service

    monkeypatch.delenv("SKYLIFT_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    service = create_service()
    status, body, _ = call(service, predict_event({"records": [RECORD]}))
    assert (status, body["error"]["code"]) == (503, "model_unavailable")
    assert "config" in body["error"]["message"]


def test_internal_error_is_a_500_with_the_error_shape(service, monkeypatch):
    def broken(validation):
        raise RuntimeError("boom")

    scorer = service.holder.current()
    monkeypatch.setattr(scorer, "score_records", broken)
    status, body, _ = call(service, predict_event({"records": [RECORD]}))
    assert (status, body["error"]["code"]) == (500, "internal_error")
    assert "boom" not in body["error"]["message"]  # no internals leak to callers


# ---- metrics (the contract with the alarms and dashboard) ------------------------------------


def test_metrics_contract(service, capsys, champion):
    capsys.readouterr()
    call(service, predict_event({"records": [RECORD, RECORD]}))
    call(service, predict_event({"records": [dict(RECORD, age="x")]}))
    lines = emf_lines(capsys.readouterr().out)
    assert len(lines) == 2
    ok, bad = lines
    for line in lines:
        (directive,) = line["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == "Skylift"
        assert ["model", "service"] in [sorted(d) for d in directive["Dimensions"]]
        assert all("model" in dims for dims in directive["Dimensions"])
        units = {m["Name"]: m["Unit"] for m in directive["Metrics"]}
        assert units["Latency"] == "Milliseconds"
        assert {"Requests", "RecordsScored", "Latency", "ClientErrors", "ServerErrors"} <= set(
            units
        )
        assert line["model"] == "churn" and line["service"] == "skylift"
        assert line["model_version"] == str(champion.version)
    assert (ok["Requests"], ok["RecordsScored"], ok["ClientErrors"]) == ([1.0], [2.0], [0.0])
    assert (bad["RecordsScored"], bad["ClientErrors"], bad["ServerErrors"]) == ([0.0], [1.0], [0.0])
    assert bad["error_code"] == "validation_error"
    assert ["error_code", "model", "service"] in [
        sorted(d) for d in bad["_aws"]["CloudWatchMetrics"][0]["Dimensions"]
    ]


# ---- the handler module and the sample events ------------------------------------------------

EVENT_STATUS = {
    "api_predict.json": 200,
    "api_predict_base64.json": 200,
    "api_predict_dataframe_records.json": 200,
    "api_predict_dataframe_split.json": 200,
    "api_health.json": 200,
    "api_model.json": 200,
    "api_openapi.json": 200,
    "api_bad_types.json": 400,
    "api_bad_json.json": 400,
    "api_empty_records.json": 400,
    "api_wrong_content_type.json": 415,
    "api_unknown_route.json": 404,
    "api_wrong_method.json": 405,
    "api_v2_predict.json": 200,
    "api_v2_predict_stage.json": 200,
    "api_v2_predict_gzip.json": 200,
    "api_v2_health.json": 200,
    "api_v2_bad_json.json": 400,
    "api_v2_unknown_route.json": 404,
    "api_v2_wrong_method.json": 405,
}


def test_every_api_sample_event_is_listed():
    assert {p.name for p in Path(EVENTS_DIR).glob("api_*.json")} == set(EVENT_STATUS)


@pytest.fixture
def handler_module(monkeypatch, champion, churn_config, isolated_logging, runtime):
    """functions.score.app imported fresh, as Lambda would at cold start."""
    import importlib
    import sys

    monkeypatch.setenv("SKYLIFT_CONFIG", str(churn_config.config_path))
    monkeypatch.setenv("SKYLIFT_API__CAPTURE_STREAM", "")
    monkeypatch.setenv("SKYLIFT_API__CAPTURE_SAMPLE_RATE", "0")
    monkeypatch.setenv("SKYLIFT_DEPLOY__RUNTIME", runtime)
    sys.modules.pop("functions.score.app", None)
    module = importlib.import_module("functions.score.app")
    yield module
    sys.modules.pop("functions.score.app", None)


@pytest.mark.parametrize("name", sorted(EVENT_STATUS))
def test_sample_events_round_trip_through_the_handler(handler_module, name):
    reply = handler_module.handler(load_event(name), FakeContext())
    assert reply["statusCode"] == EVENT_STATUS[name], reply["body"]
    body = json.loads(reply["body"])
    if reply["statusCode"] >= 400:
        assert_error_shape(body)
    elif name.startswith("api_predict"):
        assert body["model"] == "churn" and body["predictions"]


def test_handler_accepts_a_minimal_context(handler_module):
    reply = handler_module.handler(load_event("api_health.json"), object())
    assert reply["statusCode"] == 200
    reply = handler_module.handler(load_event("api_health.json"), None)
    assert reply["statusCode"] == 200


@pytest.mark.parametrize("route", API_ROUTES, ids=lambda r: f"{r.method} {r.path}")
def test_the_resolver_serves_exactly_the_topology_routes(service, route):
    """The REST API is built from the topology's routes, the function's 404/405 table too:
    each route is served, and any other method on it is a 405 naming the topology's."""
    body = json.dumps({"records": [RECORD]}) if route.method == "POST" else None
    status, payload, _ = call(service, api_event(route.method, route.path, body))
    assert status == 200, payload
    other = "DELETE"
    status, payload, reply = call(service, api_event(other, route.path, None))
    assert (status, payload["error"]["code"]) == (405, "method_not_allowed")
    allowed = sorted(r.method for r in API_ROUTES if r.path == route.path)
    assert header(reply, "Allow") == ", ".join(allowed)


def test_a_top_level_array_of_envelopes_is_a_400_not_a_partial_answer(service):
    body = json.dumps([{"records": [RECORD]}, {"records": [RECORD, RECORD]}])
    status, payload, _ = call(service, api_event(body=body))
    assert status == 400
    assert payload["error"]["code"] == "validation_error"
    assert "one JSON object" in payload["error"]["message"]


def test_duplicate_keys_are_a_400_naming_the_key(service):
    body = '{"records": [{"customer_id": "C1", "age": 41, "age": 42}]}'
    status, payload, _ = call(service, api_event(body=body))
    assert status == 400
    assert payload["error"]["code"] == "invalid_json"
    assert "duplicate key 'age'" in payload["error"]["message"]


@pytest.mark.parametrize("encoding", ["text", "base64", "gzip"])
def test_strings_that_are_not_unicode_are_a_400_naming_record_and_field(service, encoding):
    second = dict(RECORD, customer_id="C2")
    body = json.dumps({"records": [RECORD, second]}).replace('"month-to-month"', '"\\uD800"', 2)
    if encoding == "text":
        event = api_event(body=body)
    else:  # the surrogate check must read the decoded body, not what arrived
        raw = body.encode() if encoding == "base64" else gzip.compress(body.encode())
        event = api_event(body="")
        event["body"], event["isBase64Encoded"] = base64.b64encode(raw).decode(), True
        if encoding == "gzip":
            event["headers"]["Content-Encoding"] = "gzip"
            event["multiValueHeaders"]["Content-Encoding"] = ["gzip"]
    status, payload, _ = call(service, event)
    assert status == 400, payload
    assert payload["error"]["code"] == "validation_error"
    assert [(d["record"], d["field"]) for d in payload["error"]["details"]] == [
        (0, "contract"),
        (1, "contract"),
    ]


@pytest.mark.parametrize("content_type", ["APPLICATION/JSON", "Application/Json; Charset=UTF-8"])
def test_media_types_are_case_insensitive(service, content_type):
    event = predict_event({"records": [RECORD]})
    event["headers"]["Content-Type"] = content_type
    event["multiValueHeaders"]["Content-Type"] = [content_type]
    status, payload, _ = call(service, event)
    assert status == 200, payload


@pytest.mark.parametrize("coding", ["gzip", "GZIP", "x-gzip", "identity, gzip"])
def test_a_gzip_body_is_decoded(service, coding):
    status, payload, _ = call(
        service, _encoded_event(gzip.compress(_BODY), Content_Encoding=coding)
    )
    assert status == 200, payload
    assert len(payload["predictions"]) == 1


@pytest.mark.parametrize(
    ("event", "says"),
    [
        pytest.param(
            _encoded_event(_BODY, Content_Encoding="gzip"), "not valid gzip", id="bad-gzip"
        ),
        pytest.param(
            _encoded_event(gzip.compress(b" " * MAX_BODY * 50), Content_Encoding="gzip"),
            f"decompresses to more than {MAX_BODY} bytes",
            id="gzip-bomb",
        ),
        pytest.param(
            _encoded_event(_BODY, Content_Encoding="br"), "Content-Encoding 'br'", id="br"
        ),
        pytest.param(
            _encoded_event(_LATIN1_BODY.encode("latin-1")),
            "byte 0xfc at offset",
            id="latin-1",
        ),
        pytest.param(_encoded_event(b'{"records": [\xff]}'), "is not UTF-8", id="bad-utf8"),
        pytest.param(
            api_event(body="{}", content_type="application/json; charset=latin-1"),
            "charset 'latin-1' is not supported",
            id="charset",
        ),
    ],
)
def test_each_encoding_problem_has_its_own_message(service, event, says):
    """Before: all of these said "the body is flagged base64 ..." (or were parsed as JSON)."""
    _, payload, _ = call(service, copy.deepcopy(event))
    message = payload["error"]["message"]
    assert says in message, message
    assert "flagged base64" not in message


def test_a_latin_1_body_is_named_as_such(service):
    _, payload, _ = call(service, _encoded_event(_LATIN1_BODY.encode("latin-1")))
    assert "Latin-1" in payload["error"]["message"]


# ---- HTTP API (payload 2.0) events: the same routes, errors and replies ----------------------

HAPPY_EVENTS = [
    ("predict", predict_event({"records": [RECORD]})),
    ("predict base64", api_event(body=json.dumps({"records": [RECORD]}), base64_body=True)),
    ("predict gzip", _encoded_event(gzip.compress(_BODY), Content_Encoding="gzip")),
    ("health", api_event("GET", "/health", content_type=None)),
    ("model", api_event("GET", "/model", content_type=None)),
    ("openapi", api_event("GET", "/openapi.json", content_type=None)),
]


@pytest.mark.filterwarnings("ignore:Received multipart/form-data without base64:UserWarning")
@pytest.mark.parametrize(
    ("rest", "stage"),
    [
        pytest.param(e, stage, id=f"{name} ({stage})")
        for number, (name, e) in enumerate(HAPPY_EVENTS + [(name, e) for name, e, *_ in BAD_INPUTS])
        # Both stage forms for the happy paths, alternating for the rest (fewer cases).
        for stage in (
            ("$default", "prod")
            if number < len(HAPPY_EVENTS)
            else ("$default", "prod")[number % 2 : number % 2 + 1]
        )
    ],
)
def test_http_api_events_get_the_replies_rest_events_get(service, rest, stage):
    """Before: every HTTP API event was a 500 (KeyError: 'httpMethod')."""
    rest_status, rest_body, rest_reply = call(service, copy.deepcopy(rest))
    status, body, reply = call(service, http_api_event(copy.deepcopy(rest), stage=stage))
    assert status == rest_status, body
    if status >= 400:
        assert_error_shape(body)
        assert body == rest_body
    else:
        assert body.keys() == rest_body.keys()
    # The HTTP API reply format: plain headers and cookies, no multiValueHeaders.
    assert "multiValueHeaders" not in reply and isinstance(reply["cookies"], list)
    assert reply["headers"]["Content-Type"] == "application/json"
    assert header(reply, "Allow") == header(rest_reply, "Allow")


def test_an_http_api_on_a_custom_domain_has_no_stage_in_its_path(service):
    event = http_api_event(predict_event({"records": [RECORD]}))
    event["requestContext"]["stage"] = "prod"  # mapped on a custom domain: rawPath is /predict
    status, body, _ = call(service, event)
    assert status == 200, body
    event = http_api_event(api_event("PUT", "/model", content_type=None))
    event["requestContext"]["stage"] = "prod"
    status, body, reply = call(service, event)
    assert (status, body["error"]["code"], header(reply, "Allow")) == (
        405,
        "method_not_allowed",
        "GET",
    )


UNRECOGNISED_EVENTS = [
    ("empty object", {}),
    ("array", [{"httpMethod": "POST"}]),
    ("string", "hello"),
    ("null", None),
    ("S3 notification via SQS", load_event("sqs_s3_object_created.json")),
    ("EventBridge schedule", load_event("eventbridge_monitor_schedule.json")),
    ("REST without path", {k: v for k, v in api_event().items() if k != "path"}),
    ("REST with a number for headers", api_event() | {"headers": 7}),
    ("REST with a list body", api_event() | {"body": ["x"]}),
    ("v2 without requestContext", {"version": "2.0", "rawPath": "/predict"}),
    (
        "v2 without stage",
        http_api_event(predict_event({"records": [RECORD]}))
        | {"requestContext": {"http": {"method": "POST", "path": "/predict"}}},
    ),
    ("v2 with a non-string header", http_api_event(api_event()) | {"headers": {"a": 1}}),
    (
        "ALB",
        {"requestContext": {"elb": {"targetGroupArn": "arn:x"}}, "httpMethod": None, "path": "/"},
    ),
]


@pytest.mark.parametrize("event", [pytest.param(e, id=name) for name, e in UNRECOGNISED_EVENTS])
def test_an_event_that_is_no_api_gateway_request_gets_a_clear_400(service, event, caplog):
    status, body, _ = call(service, copy.deepcopy(event))
    assert (status, body["error"]["code"]) == (400, "unsupported_event"), body
    assert_error_shape(body)
    assert "REST API (payload 1.0) and HTTP API (payload 2.0)" in body["error"]["message"]
    assert any(r.levelname == "ERROR" and "unsupported_event" in r.message for r in caplog.records)


def test_the_handler_answers_any_json_it_is_invoked_with(handler_module):
    for event in ([1, 2], "ping", None, {"detail-type": "Scheduled Event"}):
        reply = handler_module.handler(event, FakeContext())
        assert reply["statusCode"] == 400
        assert json.loads(reply["body"])["error"]["code"] == "unsupported_event"


# ---- what a reply echoes is bounded ----------------------------------------------------------


def test_warnings_are_capped_with_a_count_of_the_rest(service):
    unusual = dict(
        RECORD,
        contract="weekly",
        internet_service="carrier-pigeon",
        payment_method="barter",
        region="moon",
        age=999.0,
        monthly_charges=99999.0,
        total_charges=999999.0,
        support_calls=999,
    )
    # One record first: how many of its fields the served model's schema flags (the portable
    # variant reads fewer columns than the pickle).
    status, body, _ = call(service, predict_event({"records": [unusual]}))
    per_record = len(body["warnings"])
    assert status == 200 and per_record >= 6, body
    records = [dict(unusual, customer_id=f"C{n}") for n in range(MAX_RECORDS)]
    status, body, _ = call(service, predict_event({"records": records}))
    assert status == 200, body
    warnings = body["warnings"]
    assert len(warnings) == 101  # 100 shown, then the count of the rest
    rest = int(warnings[-1]["problem"].split()[2])
    assert warnings[-1] == {"record": None, "field": "", "problem": f"... and {rest} more"}
    assert rest == MAX_RECORDS * per_record - 100


def test_a_long_unseen_category_is_clipped_in_its_warning(service):
    # payment_method: a column both runtimes' models read (the portable variant drops region)
    event = predict_event({"records": [dict(RECORD, payment_method="z" * 5000)]})
    status, body, reply = call(service, event)
    assert status == 200, body
    (warning,) = body["warnings"]
    assert warning["field"] == "payment_method"
    assert warning["problem"].endswith("more characters)") and len(warning["problem"]) < 200
    assert len(reply["body"]) < len(event["body"])  # before: the reply echoed all 5,000


def test_error_details_clip_echoed_names_and_the_message(service):
    long_name = "x" * 5000
    event = predict_event({"records": [dict(RECORD, **{long_name: 1})]})
    status, body, reply = call(service, event)
    assert status == 400
    (detail,) = body["error"]["details"]
    assert detail["field"].startswith("xxx") and detail["field"].endswith("more characters)")
    assert len(reply["body"]) < len(event["body"]) / 4
    event = api_event(body="{}", content_type="text/" + "p" * 5000)
    status, body, reply = call(service, event)
    assert status == 415 and len(body["error"]["message"]) < 1100


# ---- threading -------------------------------------------------------------------------------


def test_scoring_runs_with_the_thread_limit_the_function_environment_sets(
    api_config, registry, champion, clock, monkeypatch
):
    """The local stack's functions share a process whose native libraries were loaded before
    the function's environment was set: the service applies OMP_NUM_THREADS itself."""
    from threadpoolctl import threadpool_info

    from skylift.scoring import Scorer

    seen: list[set[int]] = []
    original = Scorer.score

    def spy(self, frame):
        seen.append({lib["num_threads"] for lib in threadpool_info()})
        return original(self, frame)

    monkeypatch.setattr(Scorer, "score", spy)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    holder = ModelHolder(registry, api_config.api.model_refresh_seconds, clock=clock)
    service = build_service(api_config, holder, namespace="Skylift", service_name="skylift")
    before = [(lib["filepath"], lib["num_threads"]) for lib in threadpool_info()]
    status, body, _ = call(service, predict_event({"records": [RECORD]}))
    assert status == 200, body
    assert seen[-1] == {1}
    assert [(lib["filepath"], lib["num_threads"]) for lib in threadpool_info()] == before
