"""The one place an exception becomes an API reply: skylift's errors, Powertools' routing and
validation errors and anything unexpected, each mapped onto the contract of
:mod:`skylift.api_errors` (a code, a message, per-field details; never a traceback)."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)

from skylift.api_errors import ApiError, Detail, ErrorCode
from skylift.model_holder import ModelUnavailableError
from skylift.topology import API_ROUTES

__all__ = [
    "ALLOWED_METHODS",
    "api_error_for",
    "error_response",
    "is_json_content_type",
    "unsupported_media_type",
]

logger = logging.getLogger(__name__)

_JSON = content_types.APPLICATION_JSON

# path -> methods, from the topology the REST API is built from: the 404 / 405 table.
ALLOWED_METHODS: Mapping[str, frozenset[str]] = {
    path: frozenset(route.method for route in API_ROUTES if route.path == path)
    for path in dict.fromkeys(route.path for route in API_ROUTES)
}


def error_response(error: ApiError) -> Response:
    if error.status >= 500:
        logger.error("%s: %s", error.code, error.message)
    return Response(
        error.status,
        _JSON,
        json.dumps(error.body(), separators=(",", ":")),
        headers=error.headers or None,
    )


def api_error_for(exc: Exception, event: Any) -> ApiError:
    """``event`` is the resolver's current event (read only for routing and media errors)."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, ModelUnavailableError):
        return ApiError(ErrorCode.MODEL_UNAVAILABLE, str(exc))
    if isinstance(exc, NotFoundError):
        return route_error(event.path, event.http_method.upper())
    if isinstance(exc, RequestUnsupportedContentType):
        return unsupported_media_type(event)
    if isinstance(exc, RequestValidationError):
        return validation_error(exc, event)
    logger.error("internal error: %s", exc, exc_info=exc)
    return ApiError(ErrorCode.INTERNAL_ERROR, "internal error; it has been logged")


def route_error(path: str, method: str) -> ApiError:
    allowed = ALLOWED_METHODS.get(path)
    if allowed:
        return ApiError(
            ErrorCode.METHOD_NOT_ALLOWED,
            f"{method} is not allowed on {path}; use {', '.join(sorted(allowed))}",
            headers={"Allow": ", ".join(sorted(allowed))},
        )
    return ApiError(
        ErrorCode.NOT_FOUND,
        f"no route {method} {path}; routes: "
        + ", ".join(f"{m} {p}" for p, ms in ALLOWED_METHODS.items() for m in sorted(ms)),
    )


def unsupported_media_type(event: Any) -> ApiError:
    given = event.headers.get("content-type", "")
    return ApiError(
        ErrorCode.UNSUPPORTED_MEDIA_TYPE,
        f"Content-Type {given!r} is not supported; send application/json",
    )


def is_json_content_type(event: Any) -> bool:
    """JSON, or no Content-Type at all (Powertools reads that as JSON too)."""
    given = event.headers.get("content-type", "").strip().lower()
    return not given or given.startswith("application/json")


def validation_error(exc: RequestValidationError, event: Any) -> ApiError:
    if not is_json_content_type(event):
        # Powertools parses form posts; this API speaks JSON only.
        return unsupported_media_type(event)
    errors = list(exc.errors())
    invalid = next((e for e in errors if e.get("type") == "json_invalid"), None)
    if invalid is not None:
        problem = str((invalid.get("ctx") or {}).get("error", "")) or "not JSON"
        loc = tuple(invalid.get("loc", ()))
        if len(loc) > 1 and isinstance(loc[1], int) and loc[1] > 0:
            problem = f"{problem} (at character {loc[1]})"
        return ApiError(
            ErrorCode.INVALID_JSON,
            f"the body is not valid JSON: {problem}",
            [Detail(None, "body", problem)],
        )
    if any(
        error.get("type") == "missing" and tuple(error.get("loc", ())) == ("body",)
        for error in errors
    ):
        return ApiError(
            ErrorCode.EMPTY_INPUT,
            'the body is empty; send {"records": [{"<feature>": <value>, ...}]}',
        )
    details = [_detail_from_pydantic(error) for error in errors]
    return ApiError(
        ErrorCode.VALIDATION_ERROR,
        "the request body does not have the expected shape: "
        + "; ".join(f"{d.field or 'body'}: {d.problem}" for d in details[:3]),
        details,
    )


def _detail_from_pydantic(error: dict[str, Any]) -> Detail:
    loc = [part for part in error.get("loc", ()) if part != "body"]
    record = next((part for part in loc if isinstance(part, int)), None)
    field = ".".join(str(part) for part in loc if not isinstance(part, int))
    return Detail(record, field, str(error.get("msg") or error.get("type") or "invalid"))
