"""The score function served on 127.0.0.1 as API Gateway (REST API, Lambda proxy) serves it.

Four parts, each testable alone (the shape of Chalice's ``local.py``):

* :class:`RouteMatcher` decides which API resource a request hits. The stack declares the
  topology's routes plus a ``/{proxy+}`` catch-all, so the function's own resolver answers
  unknown paths and wrong methods with its JSON 404/405.
* :class:`ApiKeyCheck` is the usage-plan key check: a missing or wrong ``x-api-key`` gets
  API Gateway's own ``403 {"message": "Forbidden"}`` and never reaches the function.
* :class:`ApiGatewayEventConverter` turns a real HTTP request into the REST proxy event (v1).
* :class:`LocalGateway` ties them to a handler and turns the proxy response back into HTTP;
  :class:`GatewayServer` serves it over a ``ThreadingHTTPServer``. Paths under
  ``/_skylift/`` are the control endpoint (``POST /_skylift/trigger/<name>``) that lets
  ``skylift local trigger`` reach a running ``skylift local up``.
"""

from __future__ import annotations

import base64
import hmac
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from skylift.topology import API_BINARY_MEDIA_TYPES

__all__ = [
    "CONTROL_PREFIX",
    "ApiGatewayEventConverter",
    "ApiKeyCheck",
    "GatewayReply",
    "GatewayServer",
    "LambdaContext",
    "LocalGateway",
    "RouteMatch",
    "RouteMatcher",
]

logger = logging.getLogger(__name__)

LOCAL_ACCOUNT = "123456789012"
CONTROL_PREFIX = "/_skylift/"
CONTROL_TOKEN_HEADER = "x-skylift-control-token"
# API Gateway answers these itself, before any integration runs.
FORBIDDEN = {"message": "Forbidden"}
MISSING_AUTH = {"message": "Missing Authentication Token"}


def is_binary_media_type(content_type: str, binary_media_types: tuple[str, ...]) -> bool:
    """Whether API Gateway treats ``content_type`` as binary: ``type/subtype`` against the
    API's binaryMediaTypes, where ``*`` stands for any type or subtype."""
    media_type = content_type.split(";", 1)[0].strip().lower() or "application/json"
    kind, _, subtype = media_type.partition("/")
    for pattern in binary_media_types:
        want_kind, _, want_subtype = pattern.lower().partition("/")
        if want_kind in ("*", kind) and want_subtype in ("*", subtype):
            return True
    return False


@dataclass
class LambdaContext:
    """The attributes of Lambda's context object that handlers and Powertools read."""

    function_name: str
    memory_limit_in_mb: int
    timeout_seconds: int
    region: str = "us-east-1"
    account: str = LOCAL_ACCOUNT
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    _started: float = field(default_factory=time.monotonic, repr=False)

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account}:function:{self.function_name}"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        return f"{datetime.now(UTC):%Y/%m/%d}/[$LATEST]{self.aws_request_id.replace('-', '')}"

    def get_remaining_time_in_millis(self) -> int:
        elapsed = time.monotonic() - self._started
        return max(0, int((self.timeout_seconds - elapsed) * 1000))


@dataclass(frozen=True)
class RouteMatch:
    resource: str  # the API resource path, e.g. "/predict" or "/{proxy+}"
    path_parameters: dict[str, str] | None


class RouteMatcher:
    """Matches a request path to the declared resources; the catch-all takes the rest."""

    PROXY = "/{proxy+}"

    def __init__(self, routes: Iterable[tuple[str, str]]) -> None:
        self.routes = tuple((method.upper(), path) for method, path in routes)
        self._paths = {path for _, path in self.routes}

    def match(self, method: str, path: str) -> RouteMatch | None:
        """The resource API Gateway picks, or None where it answers 403 itself.

        As on API Gateway, the most specific resource wins: a declared path takes its declared
        methods and, through the ANY method the stack adds beside them, every other method
        too (the function answers 405 with Allow); any other path below the root falls to
        ``/{proxy+}`` (ANY), where the function answers 404.
        """
        if path in self._paths:
            return RouteMatch(resource=path, path_parameters=None)
        if path in ("", "/"):  # {proxy+} needs at least one segment; the root has no method
            return None
        return RouteMatch(resource=self.PROXY, path_parameters={"proxy": path.lstrip("/")})

    def declared(self) -> list[tuple[str, str]]:
        """(method, resource path) as the API declares them, the catch-all included."""
        any_method = [("ANY", path) for path in dict.fromkeys(path for _, path in self.routes)]
        return [*self.routes, *any_method, ("ANY", self.PROXY)]


class ApiKeyCheck:
    """The usage-plan API key: requests must carry it in ``x-api-key``."""

    def __init__(self, api_key: str | None) -> None:
        self.api_key = api_key

    def allows(self, headers: Mapping[str, str]) -> bool:
        if self.api_key is None:  # auth = "iam": SigV4 is not emulated locally
            return True
        supplied = next((v for k, v in headers.items() if k.lower() == "x-api-key"), None)
        return supplied is not None and hmac.compare_digest(supplied, self.api_key)


@dataclass
class ApiGatewayEventConverter:
    """HTTP request -> API Gateway REST proxy event (payload format 1.0)."""

    stage: str = "prod"
    api_id: str = "skyliftlocal"
    region: str = "us-east-1"
    account: str = LOCAL_ACCOUNT

    def create_event(
        self,
        method: str,
        path: str,
        query: str,
        headers: Mapping[str, str],
        body: bytes,
        match: RouteMatch,
        source_ip: str = "127.0.0.1",
        api_key: str | None = None,
    ) -> dict[str, Any]:
        multi_headers: dict[str, list[str]] = {}
        for name, value in headers.items():
            multi_headers.setdefault(name, []).append(value)
        single_headers = {name: values[-1] for name, values in multi_headers.items()}
        multi_query = parse_qs(query, keep_blank_values=True) if query else {}
        single_query = {name: values[-1] for name, values in multi_query.items()}
        content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
        # As the stack's REST API (binaryMediaTypes): a binary type's body goes base64-encoded,
        # a text one as text (API Gateway would decode it as UTF-8).
        event_body: str | None = None
        encoded = False
        if body and is_binary_media_type(content_type, API_BINARY_MEDIA_TYPES):
            event_body, encoded = base64.b64encode(body).decode("ascii"), True
        elif body:
            event_body = body.decode("utf-8", errors="replace")
        now = datetime.now(UTC)
        request_id = str(uuid.uuid4())
        return {
            "resource": match.resource,
            "path": path,
            "httpMethod": method,
            "headers": single_headers or None,
            "multiValueHeaders": multi_headers or None,
            "queryStringParameters": single_query or None,
            "multiValueQueryStringParameters": multi_query or None,
            "pathParameters": match.path_parameters,
            "stageVariables": None,
            "requestContext": {
                "resourceId": "local",
                "resourcePath": match.resource,
                "httpMethod": method,
                "extendedRequestId": request_id,
                "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
                "path": f"/{self.stage}{path}",
                "accountId": self.account,
                "protocol": "HTTP/1.1",
                "stage": self.stage,
                "domainPrefix": "localhost",
                "requestTimeEpoch": int(now.timestamp() * 1000),
                "requestId": request_id,
                "identity": {
                    "cognitoIdentityPoolId": None,
                    "accountId": None,
                    "cognitoIdentityId": None,
                    "caller": None,
                    "sourceIp": source_ip,
                    "principalOrgId": None,
                    "accessKey": None,
                    "cognitoAuthenticationType": None,
                    "cognitoAuthenticationProvider": None,
                    "userArn": None,
                    "userAgent": single_headers.get("User-Agent")
                    or single_headers.get("user-agent"),
                    "user": None,
                    "apiKey": api_key,
                    "apiKeyId": "local-key" if api_key else None,
                },
                "domainName": "localhost",
                "apiId": self.api_id,
            },
            "body": event_body,
            "isBase64Encoded": encoded,
        }


@dataclass
class GatewayReply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    @classmethod
    def json(cls, status: int, payload: Any) -> GatewayReply:
        return cls(status, [("Content-Type", "application/json")], json.dumps(payload).encode())


Handler = Callable[[dict[str, Any], Any], Any]


class LocalGateway:
    """Request in, proxy event to the handler, proxy response back out as HTTP."""

    def __init__(
        self,
        invoke: Handler,
        matcher: RouteMatcher,
        api_key_check: ApiKeyCheck,
        converter: ApiGatewayEventConverter | None = None,
        control: Callable[[str, str], GatewayReply] | None = None,
        control_token: str | None = None,
    ) -> None:
        self.invoke = invoke
        self.matcher = matcher
        self.api_key_check = api_key_check
        self.converter = converter or ApiGatewayEventConverter()
        self.control = control
        self.control_token = control_token

    def handle(
        self,
        method: str,
        target: str,
        headers: Mapping[str, str],
        body: bytes,
        source_ip: str = "127.0.0.1",
    ) -> GatewayReply:
        parts = urlsplit(target)
        raw_path = unquote(parts.path) or "/"
        if raw_path.startswith(CONTROL_PREFIX):
            return self._control(method, raw_path, headers)
        stage_prefix = f"/{self.converter.stage}"
        if raw_path != stage_prefix and not raw_path.startswith(stage_prefix + "/"):
            return GatewayReply.json(403, MISSING_AUTH)  # what API Gateway says for no stage
        path = raw_path[len(stage_prefix) :] or "/"
        # API Gateway resolves the method first (no such method: 403 Missing Authentication
        # Token, key or not), then checks the key (missing or wrong: 403 Forbidden).
        match = self.matcher.match(method, path)
        if match is None:
            return GatewayReply.json(403, MISSING_AUTH)
        if not self.api_key_check.allows(headers):
            return GatewayReply.json(403, FORBIDDEN)
        event = self.converter.create_event(
            method, path, parts.query, headers, body, match, source_ip, self.api_key_check.api_key
        )
        try:
            response = self.invoke(event, None)
        except Exception:
            # An unhandled function error: API Gateway answers 502 with this body.
            logger.exception("score function raised")
            return GatewayReply.json(502, {"message": "Internal server error"})
        return self.proxy_response_to_http(response)

    @staticmethod
    def proxy_response_to_http(response: Any) -> GatewayReply:
        if not isinstance(response, dict) or "statusCode" not in response:
            logger.error("malformed Lambda proxy response: %r", response)
            return GatewayReply.json(502, {"message": "Internal server error"})
        headers: list[tuple[str, str]] = []
        seen: set[str] = set()
        for name, values in (response.get("multiValueHeaders") or {}).items():
            seen.add(name.lower())
            headers.extend((name, str(value)) for value in values)
        for name, value in (response.get("headers") or {}).items():
            if name.lower() not in seen:
                headers.append((name, str(value)))
        body = response.get("body") or ""
        data = base64.b64decode(body) if response.get("isBase64Encoded") else body.encode()
        return GatewayReply(int(response["statusCode"]), headers, data)

    def _control(self, method: str, path: str, headers: Mapping[str, str]) -> GatewayReply:
        token = next((v for k, v in headers.items() if k.lower() == CONTROL_TOKEN_HEADER), "")
        if self.control is None or not self.control_token:
            return GatewayReply.json(404, {"message": "no control endpoint"})
        if not hmac.compare_digest(token, self.control_token):
            return GatewayReply.json(403, FORBIDDEN)
        return self.control(method, path[len(CONTROL_PREFIX) :])


class _RequestHandler(BaseHTTPRequestHandler):
    gateway: LocalGateway  # set on the subclass GatewayServer builds
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: without TCP_NODELAY, Nagle's algorithm
    # meets the client's delayed ACK and every keep-alive reply waits ~40 ms.
    disable_nagle_algorithm = True

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        reply = self.gateway.handle(
            self.command, self.path, dict(self.headers.items()), body, self.client_address[0]
        )
        self.send_response(reply.status)
        for name, value in reply.headers:
            if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply.body)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = _serve

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s %s", self.address_string(), format % args)


class GatewayServer:
    """Serves a :class:`LocalGateway` on 127.0.0.1 (port 0 = a free port) in a thread."""

    def __init__(self, gateway: LocalGateway, host: str = "127.0.0.1", port: int = 0) -> None:
        handler = type("GatewayRequestHandler", (_RequestHandler,), {"gateway": gateway})
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self.httpd.serve_forever,
            kwargs={"poll_interval": 0.1},  # how soon shutdown() is noticed
            name="skylift-gateway",
            daemon=True,
        )

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():
            self.httpd.shutdown()
            self._thread.join(timeout=5)
        self.httpd.server_close()
