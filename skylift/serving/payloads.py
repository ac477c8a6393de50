"""The two API Gateway proxy payloads the score function serves, told apart by their shape:
a REST API's (payload 1.0: ``httpMethod``, ``path``) and an HTTP API's (payload 2.0:
``version`` "2.0", ``rawPath``, ``requestContext.http``). Each is served by the Powertools
resolver made for it, over one route table; each gets replies in its own format. Anything
else (a direct invoke, an S3 or ALB event) is refused with a 400 that says what came.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

from skylift.api_errors import ApiError, ErrorCode

__all__ = ["HttpApiEvent", "HttpApiResolver", "PayloadFormat", "payload_format", "proxy_reply"]

_JSON = content_types.APPLICATION_JSON


class PayloadFormat(enum.Enum):
    REST = "1.0"  # API Gateway REST API (and an HTTP API set to payload 1.0)
    HTTP = "2.0"  # API Gateway HTTP API, payload format 2.0


class HttpApiEvent(APIGatewayProxyEventV2):
    @property
    def path(self) -> str:
        """rawPath without the stage when it carries one. Powertools cuts ``len(stage) + 1``
        characters whenever the stage is not ``$default``, but on a custom domain rawPath has
        no stage (``/predict`` would become ``ct``)."""
        stage = self.request_context.stage
        raw = self.raw_path
        if stage and stage != "$default" and (raw == f"/{stage}" or raw.startswith(f"/{stage}/")):
            return raw[len(stage) + 1 :] or "/"
        return raw


class HttpApiResolver(APIGatewayHttpResolver):
    """Powertools' HTTP API resolver, reading paths as :class:`HttpApiEvent` does."""

    def _to_proxy_event(self, event: dict) -> HttpApiEvent:
        return HttpApiEvent(event, self._json_body_deserializer)


def payload_format(event: Any) -> PayloadFormat:
    """Which proxy payload ``event`` is, or the 400 ``unsupported_event`` naming what is wrong.

    Only the fields the resolvers read are checked, with their types, so a malformed proxy
    event is a clear 400 too, not a KeyError deep in the resolver.
    """
    if not isinstance(event, Mapping):
        raise _unsupported(f"the event is a JSON {_json_kind(event)}, not an object")
    context = event.get("requestContext")
    if event.get("version") == "2.0" or "rawPath" in event:
        http = context.get("http") if isinstance(context, Mapping) else None
        _require(
            (isinstance(event.get("rawPath"), str), "rawPath (a string)"),
            (isinstance(http, Mapping), "requestContext.http (an object)"),
            (
                isinstance(http, Mapping) and isinstance(http.get("method"), str),
                "requestContext.http.method (a string)",
            ),
            (
                isinstance(http, Mapping) and isinstance(http.get("path"), str),
                "requestContext.http.path (a string)",
            ),
            (
                isinstance(context, Mapping) and isinstance(context.get("stage"), str),
                "requestContext.stage (a string)",
            ),
            (_string_map(event.get("headers")), "headers (an object of strings, or absent)"),
            (_optional(event.get("body"), str), "body (a string, or absent)"),
            (_optional(event.get("cookies"), list), "cookies (a list, or absent)"),
            (
                _string_map(event.get("queryStringParameters")),
                "queryStringParameters (an object of strings, or absent)",
            ),
            format_name="an HTTP API (payload 2.0) event",
        )
        return PayloadFormat.HTTP
    if "httpMethod" in event:
        _require(
            (isinstance(event.get("httpMethod"), str), "httpMethod (a string)"),
            (isinstance(event.get("path"), str), "path (a string)"),
            (_optional(context, Mapping), "requestContext (an object, or absent)"),
            (_string_map(event.get("headers")), "headers (an object of strings, or null)"),
            (
                _list_map(event.get("multiValueHeaders")),
                "multiValueHeaders (an object of string lists, or null)",
            ),
            (_optional(event.get("body"), str), "body (a string, or null)"),
            (
                _string_map(event.get("queryStringParameters")),
                "queryStringParameters (an object of strings, or null)",
            ),
            (
                _list_map(event.get("multiValueQueryStringParameters")),
                "multiValueQueryStringParameters (an object of string lists, or null)",
            ),
            format_name="a REST API (payload 1.0) event",
        )
        return PayloadFormat.REST
    keys = ", ".join(sorted(str(key) for key in event)[:8]) or "none"
    raise _unsupported(f"the event is not an API Gateway proxy event (top-level keys: {keys})")


def proxy_reply(response: Response, payload: PayloadFormat) -> dict[str, Any]:
    """The reply Powertools' resolver for ``payload`` would give, for a reply made outside it."""
    headers = {"Content-Type": response.content_type or _JSON}
    headers.update({k: v for k, v in response.headers.items() if isinstance(v, str)})
    reply: dict[str, Any] = {
        "statusCode": response.status_code,
        "body": response.body,
        "isBase64Encoded": False,
    }
    if payload is PayloadFormat.HTTP:
        return reply | {"headers": headers, "cookies": []}
    return reply | {"multiValueHeaders": {k: [v] for k, v in headers.items()}}


def _require(*checks: tuple[bool, str], format_name: str) -> None:
    missing = [what for ok, what in checks if not ok]
    if missing:
        raise _unsupported(
            f"the event looks like {format_name} but lacks or mistypes: {'; '.join(missing)}"
        )


def _unsupported(why: str) -> ApiError:
    return ApiError(
        ErrorCode.UNSUPPORTED_EVENT,
        f"{why}; the score function serves API Gateway REST API (payload 1.0) and HTTP API "
        "(payload 2.0) proxy events",
    )


def _optional(value: Any, kind: type | tuple[type, ...]) -> bool:
    return value is None or isinstance(value, kind)


def _string_map(value: Any) -> bool:
    return value is None or (
        isinstance(value, Mapping)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())
    )


def _list_map(value: Any) -> bool:
    return value is None or (
        isinstance(value, Mapping)
        and all(
            isinstance(k, str) and isinstance(v, list) and all(isinstance(i, str) for i in v)
            for k, v in value.items()
        )
    )


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    return "number" if isinstance(value, (int, float)) else type(value).__name__
