"""Fuzz of the score handler: whatever a client (or a misrouted invoke) sends, through a REST
API or an HTTP API (payload 2.0), the reply is never a 5xx, every error has the documented
shape and status, and a reply stays within a small multiple of its request.

Examples per run come from a hypothesis profile: ``ci`` (the default) runs 2,600 over the
three tests, ``dev`` fewer (``HYPOTHESIS_PROFILE=dev``). The handler runs in-process on the
session's small churn model, with S3 mocked.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skylift.api_errors import ERROR_STATUS
from skylift.serving import ModelHolder, build_service
from skylift.topology import API_ROUTES
from tests.helpers import (
    RECORD,
    api_event,
    assert_error_shape,
    call,
    create_signing_key,
    http_api_event,
)

settings.register_profile(
    "ci",
    max_examples=1_000,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
settings.register_profile("dev", parent=settings.get_profile("ci"), max_examples=100)
PROFILE = settings.get_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
MAX_RECORDS = 20
MAX_BODY = 16_384

# ---- fuzz: whatever the body, never a 5xx, always the error shape ------------------------------

FEATURES = [name for name in RECORD if name != "customer_id"]
NULLABLE = {"age", "region", "total_charges"}  # had gaps in the training data
NUMERIC = ["age", "tenure_months", "monthly_charges", "total_charges", "support_calls"]

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
not_a_number = st.none() | st.booleans() | st.text() | st.lists(json_scalars, max_size=2)


@st.composite
def broken_record(draw: st.DrawFn) -> dict[str, Any]:
    """A record made bad in at least one way the schema must catch."""
    record = dict(RECORD)
    how = draw(st.sampled_from(["wrong_numeric", "drop_required", "extra", "not_text"]))
    if how == "wrong_numeric":
        name = draw(st.sampled_from(NUMERIC))
        value = draw(not_a_number)
        if name in NULLABLE and (value is None or (isinstance(value, str) and not value.strip())):
            value = "forty"  # a nullable number takes null, and blank text as null
        record[name] = value
    elif how == "drop_required":
        del record[draw(st.sampled_from(["contract", "payment_method", "tenure_months"]))]
    elif how == "extra":
        record[draw(st.text(min_size=1).filter(lambda k: k not in RECORD))] = draw(json_values)
    else:
        record[draw(st.sampled_from(["contract", "region"]))] = draw(
            st.integers() | st.floats(allow_nan=False) | st.booleans() | st.lists(st.text())
        )
    return record


bad_bodies = st.one_of(
    # arbitrary text (almost never JSON, never a valid request)
    st.text(max_size=200),
    # arbitrary JSON that is not a valid envelope
    json_values.filter(
        lambda v: not (isinstance(v, dict) and set(v) & {"records", "dataframe_records"})
    ).map(json.dumps),
    # a valid envelope around records that are broken
    st.lists(broken_record(), min_size=1, max_size=5).map(lambda rs: json.dumps({"records": rs})),
    st.lists(broken_record(), min_size=1, max_size=3).map(
        lambda rs: json.dumps({"dataframe_records": rs})
    ),
    # records that are not objects
    st.lists(json_scalars, min_size=1, max_size=5).map(lambda rs: json.dumps({"records": rs})),
    # NaN / Infinity smuggled in as literals
    st.sampled_from(["NaN", "Infinity", "-Infinity"]).map(
        lambda c: json.dumps({"records": [dict(RECORD, age=12345.5)]}).replace("12345.5", c)
    ),
    # nesting deeper than the parser's recursion limit, integers too long to parse
    st.integers(1_000, 3_000).map(lambda depth: "[" * depth + "]" * depth),
    st.integers(4_400, 6_000).map(lambda digits: '{"records": [{"age": ' + "9" * digits + "}]}"),
    # dataframe_split with ragged rows or bad columns
    st.builds(
        lambda cols, rows: json.dumps({"dataframe_split": {"columns": cols, "data": rows}}),
        st.lists(st.sampled_from(FEATURES), min_size=1, max_size=4),
        st.lists(st.lists(json_scalars, max_size=5), min_size=1, max_size=3),
    ),
)


@pytest.fixture(scope="module")
def fuzz_service(churn_config, churn_bundle):
    """One service for all examples (a fixture per example would cost more than the fuzz)."""
    import boto3
    from moto import mock_aws

    from skylift.registry import ModelRegistry

    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=churn_config.storage.bucket)
        create_signing_key(churn_config)
        registry = ModelRegistry.from_config(churn_config, s3_client=s3)
        registry.promote(registry.register(churn_bundle).version)
        api = churn_config.api.model_copy(
            update={"capture_stream": None, "max_records": MAX_RECORDS, "max_body_bytes": MAX_BODY}
        )
        config = churn_config.model_copy(update={"api": api})
        service = build_service(config, ModelHolder(registry, 3600.0))
        yield service


@settings(PROFILE, max_examples=PROFILE.max_examples * 6 // 10)
@given(body=bad_bodies, base64_body=st.booleans())
def test_fuzzed_bad_bodies_get_a_4xx_with_the_error_shape(fuzz_service, body, base64_body):
    status, reply_body, _ = call(fuzz_service, api_event(body=body, base64_body=base64_body))
    assert 400 <= status < 500, reply_body
    assert_error_shape(reply_body)


# ---- whole events: methods, paths, headers, encodings, bodies; REST and HTTP API --------------

ROUTE_PATHS = sorted({route.path for route in API_ROUTES})
METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]
header_text = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=30)


@st.composite
def records(draw: st.DrawFn) -> list[Any]:
    """Records near valid ones: a few fields replaced by anything (fractions for integer
    features, long ids, unseen categories, wrong types), sometimes more than the limit."""
    out = []
    for number in range(draw(st.integers(1, MAX_RECORDS + 2))):
        record: dict[str, Any] = dict(RECORD, customer_id=f"C{number}")
        for name in draw(st.lists(st.sampled_from(sorted(RECORD)), max_size=3)):
            record[name] = draw(
                json_values
                | st.floats(0, 100)
                | st.text(min_size=200, max_size=400)
                | st.sampled_from(["weekly", "moon", "x" * 300])
            )
        out.append(record)
    return out


# Text edits that JSON encoders do not make: a lone surrogate escape, a key twice, a NaN
# literal, an array of envelopes, a cut.
EDITS = {
    "none": lambda text: text,
    "surrogate": lambda text: text.replace('"north"', '"\\ud800"', 1),
    "duplicate key": lambda text: text.replace(
        '{"customer_id"', '{"age": 1, "age": 2, "customer_id"', 1
    ),
    "NaN": lambda text: text.replace("41.0", "NaN", 1),
    "array of envelopes": lambda text: f"[{text}, {text}]",
    "cut": lambda text: text[: len(text) // 2],
}

envelopes = st.one_of(
    records().map(lambda rs: {"records": rs}),
    records().map(lambda rs: {"dataframe_records": rs}),
    records().map(
        lambda rs: {
            "dataframe_split": {
                "columns": sorted(RECORD),
                "data": [[r.get(k) for k in sorted(RECORD)] for r in rs],
            }
        }
    ),
    json_values,
)
bodies = st.one_of(
    st.builds(
        lambda envelope, edit: EDITS[edit](json.dumps(envelope)),
        envelopes,
        st.sampled_from(sorted(EDITS)),
    ).map(str.encode),
    bad_bodies.map(lambda text: text.encode("utf-8", "surrogatepass")),
    st.binary(max_size=300),
    st.just(json.dumps({"records": [dict(RECORD, region="Zürich")]}).encode("latin-1", "replace")),
    st.just(b""),
)


@st.composite
def requests(draw: st.DrawFn) -> tuple[dict[str, Any], bytes]:
    """A REST proxy event for an arbitrary request, and the body bytes the client sent."""
    method = draw(st.sampled_from(METHODS) | header_text.filter(str.isalpha))
    path = draw(st.sampled_from(ROUTE_PATHS) | st.text(max_size=40).map(lambda p: "/" + p))
    raw = draw(bodies)
    transport = draw(st.sampled_from(["text", "base64", "gzip", "bad gzip", "coding"]))
    content_type = draw(
        st.sampled_from(
            [
                None,
                "application/json",
                "APPLICATION/JSON; charset=UTF-8",
                "text/plain",
                "application/json; charset=iso-8859-1",
                "application/x-www-form-urlencoded",
            ]
        )
        | header_text
    )
    headers = draw(st.dictionaries(header_text.filter(bool), header_text, max_size=3))
    if transport == "text":
        body: str | None = (
            raw.decode("utf-8", "replace") if raw else draw(st.sampled_from([None, ""]))
        )
        encoded = False
    else:
        if transport == "gzip":
            raw = gzip.compress(raw)
        if transport in ("gzip", "bad gzip"):
            headers["Content-Encoding"] = "gzip"
        elif transport == "coding":
            headers["Content-Encoding"] = draw(
                st.sampled_from(["br", "deflate", "identity"]) | header_text
            )
        body, encoded = base64.b64encode(raw).decode(), True
    event = api_event(method, path, None, content_type=content_type)
    for name, value in headers.items():
        event["headers"][name] = value
        event["multiValueHeaders"][name] = [value]
    event["body"], event["isBase64Encoded"] = body, encoded
    return event, raw


def assert_documented_reply(reply: dict[str, Any], sent: bytes, path: str) -> None:
    status = reply["statusCode"]
    assert status < 500, reply["body"]
    body = json.loads(reply["body"])
    if status >= 400:
        assert_error_shape(body)
        assert ERROR_STATUS[body["error"]["code"]] == status, body
    if status >= 400 or path == "/predict":
        # Bounded echo: never more than a small multiple of what was sent.
        assert len(reply["body"]) <= 4 * len(sent) + 16_384, (len(reply["body"]), len(sent))


@settings(PROFILE)
@given(request=requests())
def test_fuzzed_rest_api_requests_get_documented_replies(fuzz_service, request):
    event, sent = request
    reply = fuzz_service.handle(event, None)
    assert "multiValueHeaders" in reply
    assert_documented_reply(reply, sent, event["path"])


@settings(PROFILE)
@given(request=requests(), stage=st.sampled_from(["$default", "prod"]))
def test_fuzzed_http_api_requests_get_documented_replies(fuzz_service, request, stage):
    event, sent = request
    reply = fuzz_service.handle(http_api_event(event, stage=stage), None)
    assert "cookies" in reply and "multiValueHeaders" not in reply
    assert_documented_reply(reply, sent, event["path"])
