"""The local API gateway's parts: route matching, the API key check, request -> proxy event,
proxy response -> HTTP, and the Lambda context stand-in (no sockets: LocalGateway.handle)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from skylift.local.gateway import (
    ApiGatewayEventConverter,
    ApiKeyCheck,
    GatewayReply,
    LambdaContext,
    LocalGateway,
    RouteMatcher,
    is_binary_media_type,
)

ROUTES = [("POST", "/predict"), ("GET", "/health")]


class RecordingHandler:
    def __init__(self, response: Any = None) -> None:
        self.events: list[dict[str, Any]] = []
        self.response = response or {
            "statusCode": 200,
            "headers": {"Content-Type": "application/json"},
            "body": json.dumps({"ok": True}),
            "isBase64Encoded": False,
        }

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        self.events.append(event)
        if isinstance(self.response, Exception):
            raise self.response
        return self.response


def make_gateway(handler: RecordingHandler, key: str | None = "secret", **kwargs: Any):
    return LocalGateway(handler, RouteMatcher(ROUTES), ApiKeyCheck(key), **kwargs)


def test_declared_route_matches_its_resource():
    match = RouteMatcher(ROUTES).match("POST", "/predict")
    assert match is not None
    assert match.resource == "/predict"
    assert match.path_parameters is None


def test_another_method_on_a_declared_resource_reaches_the_function():
    # API Gateway picks the most specific resource (/predict); its ANY method takes the GET.
    match = RouteMatcher(ROUTES).match("GET", "/predict")
    assert match is not None and match.resource == "/predict"
    assert ("ANY", "/predict") in RouteMatcher(ROUTES).declared()


def test_root_has_no_method():
    assert RouteMatcher(ROUTES).match("GET", "/") is None


def test_unknown_path_goes_to_the_catch_all_proxy():
    match = RouteMatcher(ROUTES).match("DELETE", "/nothing/here")
    assert match is not None
    assert match.resource == "/{proxy+}"
    assert match.path_parameters == {"proxy": "nothing/here"}
    assert ("ANY", "/{proxy+}") in RouteMatcher(ROUTES).declared()


@pytest.mark.parametrize(
    ("headers", "allowed"),
    [
        ({"x-api-key": "secret"}, True),
        ({"X-Api-Key": "secret"}, True),
        ({"x-api-key": "wrong"}, False),
        ({}, False),
    ],
)
def test_api_key_check(headers, allowed):
    assert ApiKeyCheck("secret").allows(headers) is allowed


def test_iam_auth_has_no_key_check():
    assert ApiKeyCheck(None).allows({})


def test_request_becomes_a_rest_proxy_event():
    converter = ApiGatewayEventConverter(stage="prod")
    event = converter.create_event(
        "POST",
        "/predict",
        "a=1&a=2&b=x",
        {"Content-Type": "application/json", "x-api-key": "secret"},
        b'{"records": []}',
        RouteMatcher(ROUTES).match("POST", "/predict"),
        api_key="secret",
    )
    assert event["resource"] == "/predict"
    assert event["path"] == "/predict"
    assert event["httpMethod"] == "POST"
    # binaryMediaTypes "*/*", as the stack's REST API: every body as sent, base64-encoded
    assert base64.b64decode(event["body"]) == b'{"records": []}'
    assert event["isBase64Encoded"] is True
    assert event["queryStringParameters"] == {"a": "2", "b": "x"}
    assert event["multiValueQueryStringParameters"] == {"a": ["1", "2"], "b": ["x"]}
    assert event["headers"]["Content-Type"] == "application/json"
    assert event["multiValueHeaders"]["x-api-key"] == ["secret"]
    context = event["requestContext"]
    assert context["stage"] == "prod"
    assert context["path"] == "/prod/predict"
    assert context["resourcePath"] == "/predict"
    assert context["identity"]["sourceIp"] == "127.0.0.1"
    assert context["identity"]["apiKey"] == "secret"
    assert context["requestId"]


def test_binary_body_is_base64_encoded():
    event = ApiGatewayEventConverter().create_event(
        "POST",
        "/predict",
        "",
        {"Content-Type": "application/octet-stream"},
        b"\x00\xffPAR1",
        RouteMatcher(ROUTES).match("POST", "/predict"),
    )
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == b"\x00\xffPAR1"


def test_empty_request_has_null_body_and_parameters():
    event = ApiGatewayEventConverter().create_event(
        "GET", "/health", "", {}, b"", RouteMatcher(ROUTES).match("GET", "/health")
    )
    assert event["body"] is None
    assert event["queryStringParameters"] is None
    assert event["headers"] is None


def test_missing_api_key_is_forbidden_before_the_function_runs():
    handler = RecordingHandler()
    reply = make_gateway(handler).handle("GET", "/prod/health", {}, b"")
    assert reply.status == 403
    assert json.loads(reply.body) == {"message": "Forbidden"}
    assert handler.events == []


def test_wrong_api_key_is_forbidden():
    reply = make_gateway(RecordingHandler()).handle(
        "GET", "/prod/health", {"x-api-key": "nope"}, b""
    )
    assert reply.status == 403


def test_path_outside_the_stage_is_not_routed():
    handler = RecordingHandler()
    reply = make_gateway(handler).handle("GET", "/health", {"x-api-key": "secret"}, b"")
    assert reply.status == 403
    assert handler.events == []


def test_gateway_passes_stage_relative_path_and_returns_the_proxy_reply():
    handler = RecordingHandler(
        {
            "statusCode": 418,
            "headers": {"X-One": "1"},
            "multiValueHeaders": {"Set-Cookie": ["a=1", "b=2"]},
            "body": '{"teapot": true}',
            "isBase64Encoded": False,
        }
    )
    reply = make_gateway(handler).handle(
        "GET", "/prod/health?verbose=1", {"x-api-key": "secret"}, b""
    )
    assert handler.events[0]["path"] == "/health"
    assert handler.events[0]["queryStringParameters"] == {"verbose": "1"}
    assert reply.status == 418
    assert ("Set-Cookie", "a=1") in reply.headers and ("Set-Cookie", "b=2") in reply.headers
    assert ("X-One", "1") in reply.headers
    assert json.loads(reply.body) == {"teapot": True}


def test_base64_proxy_response_is_decoded():
    reply = LocalGateway.proxy_response_to_http(
        {"statusCode": 200, "body": base64.b64encode(b"\x01\x02").decode(), "isBase64Encoded": True}
    )
    assert reply.body == b"\x01\x02"


def test_wrong_method_reaches_the_function_and_the_root_gets_api_gateways_403():
    handler = RecordingHandler()
    gateway = make_gateway(handler)
    gateway.handle("GET", "/prod/predict", {"x-api-key": "secret"}, b"")
    assert [event["resource"] for event in handler.events] == ["/predict"]
    reply = gateway.handle("GET", "/prod/", {"x-api-key": "secret"}, b"")
    assert reply.status == 403
    assert json.loads(reply.body) == {"message": "Missing Authentication Token"}
    assert len(handler.events) == 1


def test_function_error_becomes_502_like_api_gateway():
    reply = make_gateway(RecordingHandler(RuntimeError("boom"))).handle(
        "GET", "/prod/health", {"x-api-key": "secret"}, b""
    )
    assert reply.status == 502
    assert json.loads(reply.body) == {"message": "Internal server error"}


def test_malformed_proxy_response_becomes_502():
    reply = make_gateway(RecordingHandler({"body": "no status"})).handle(
        "GET", "/prod/health", {"x-api-key": "secret"}, b""
    )
    assert reply.status == 502


def test_control_endpoint_needs_its_token():
    calls: list[tuple[str, str]] = []

    def control(method: str, path: str) -> GatewayReply:
        calls.append((method, path))
        return GatewayReply.json(200, {"ran": path})

    gateway = make_gateway(RecordingHandler(), control=control, control_token="tok")
    denied = gateway.handle("POST", "/_skylift/trigger/monitor", {}, b"")
    assert denied.status == 403 and calls == []
    allowed = gateway.handle(
        "POST", "/_skylift/trigger/monitor", {"x-skylift-control-token": "tok"}, b""
    )
    assert allowed.status == 200
    assert calls == [("POST", "trigger/monitor")]


def test_lambda_context_has_what_handlers_read():
    """What Powertools reads from Lambda's context (its logger's context model, the batch
    processor's remaining time), each with Lambda's value, and a request id per invocation."""
    import uuid

    from aws_lambda_powertools.logging.lambda_context import build_lambda_context_model

    context = LambdaContext(function_name="score", memory_limit_in_mb=1024, timeout_seconds=15)
    model = build_lambda_context_model(context)
    assert model.function_name == "score"
    assert model.function_memory_size == 1024
    assert model.function_arn == "arn:aws:lambda:us-east-1:123456789012:function:score"
    assert str(uuid.UUID(model.function_request_id)) == model.function_request_id
    assert context.log_group_name == "/aws/lambda/score"
    assert context.aws_request_id.replace("-", "") in context.log_stream_name
    next_invocation = LambdaContext(function_name="score", memory_limit_in_mb=1, timeout_seconds=1)
    assert next_invocation.aws_request_id != context.aws_request_id
    assert 14_000 < context.get_remaining_time_in_millis() <= 15_000
    context._started -= 14.5  # 14.5 s into the invocation
    assert 0 < context.get_remaining_time_in_millis() <= 500
    context._started -= 1  # past the timeout: never negative
    assert context.get_remaining_time_in_millis() == 0


@pytest.mark.parametrize(
    ("content_type", "patterns", "binary"),
    [
        ("application/json", ("*/*",), True),
        ("APPLICATION/JSON; charset=utf-8", ("application/json",), True),
        ("application/json", ("image/*",), False),
        ("image/png", ("image/*",), True),
        ("", ("application/json",), True),  # no Content-Type: API Gateway assumes JSON
        ("text/csv", (), False),
    ],
)
def test_binary_media_types_match_as_api_gateways_do(content_type, patterns, binary):
    assert is_binary_media_type(content_type, patterns) is binary


def test_a_gzip_body_reaches_the_function_as_sent():
    """Before: JSON-typed bodies went as text, so gzip bytes (Content-Type application/json,
    Content-Encoding gzip) were mangled, as the stack's REST API without binaryMediaTypes did."""
    import gzip

    body = gzip.compress(b'{"records": []}')
    event = ApiGatewayEventConverter().create_event(
        "POST",
        "/predict",
        "",
        {"Content-Type": "application/json", "Content-Encoding": "gzip"},
        body,
        RouteMatcher(ROUTES).match("POST", "/predict"),
    )
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == body
