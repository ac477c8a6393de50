"""The scoring API's error contract: one JSON shape, one status per code, strict JSON parsing.

Every non-2xx reply of the online API has the body::

    {"error": {"code": "<snake_case>", "message": "<for a human>",
               "details": [{"record": <int or null>, "field": "<name>", "problem": "<text>"}]}}

A user's mistake is always a 4xx with a specific code; only a fault of ours is a 5xx.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from skylift.errors import SkyliftError

__all__ = [
    "ERROR_STATUS",
    "ApiError",
    "Detail",
    "ErrorCode",
    "bounded_details",
    "clip",
    "error_body",
    "strict_json_loads",
]


class ErrorCode:
    """The error codes of the scoring API (stable: clients and alarms key on them)."""

    INVALID_JSON = "invalid_json"  # not parseable as strict JSON (NaN/Infinity literals too)
    INVALID_BODY = "invalid_body"  # body is not valid base64 / UTF-8
    EMPTY_INPUT = "empty_input"  # no body, or no records in it
    VALIDATION_ERROR = "validation_error"  # the envelope or a record does not fit the schema
    TOO_MANY_RECORDS = "too_many_records"  # more records than [api].max_records
    PAYLOAD_TOO_LARGE = "payload_too_large"  # body larger than [api].max_body_bytes
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"  # Content-Type is not application/json
    NOT_FOUND = "not_found"  # no such route
    METHOD_NOT_ALLOWED = "method_not_allowed"  # route exists, method does not
    MODEL_UNAVAILABLE = "model_unavailable"  # no champion could be loaded
    UNSUPPORTED_EVENT = "unsupported_event"  # not an API Gateway REST or HTTP API proxy event
    INTERNAL_ERROR = "internal_error"  # a bug of ours (never for a user's mistake)


ERROR_STATUS: dict[str, int] = {
    ErrorCode.INVALID_JSON: HTTPStatus.BAD_REQUEST,
    ErrorCode.INVALID_BODY: HTTPStatus.BAD_REQUEST,
    ErrorCode.EMPTY_INPUT: HTTPStatus.BAD_REQUEST,
    ErrorCode.VALIDATION_ERROR: HTTPStatus.BAD_REQUEST,
    ErrorCode.TOO_MANY_RECORDS: HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
    ErrorCode.PAYLOAD_TOO_LARGE: HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
    ErrorCode.UNSUPPORTED_MEDIA_TYPE: HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
    ErrorCode.NOT_FOUND: HTTPStatus.NOT_FOUND,
    ErrorCode.METHOD_NOT_ALLOWED: HTTPStatus.METHOD_NOT_ALLOWED,
    ErrorCode.MODEL_UNAVAILABLE: HTTPStatus.SERVICE_UNAVAILABLE,
    ErrorCode.UNSUPPORTED_EVENT: HTTPStatus.BAD_REQUEST,
    ErrorCode.INTERNAL_ERROR: HTTPStatus.INTERNAL_SERVER_ERROR,
}


@dataclass(frozen=True)
class Detail:
    """One problem: which record (0-based, None for the request as a whole), which field."""

    record: int | None
    field: str
    problem: str

    def as_dict(self) -> dict[str, Any]:
        return {"record": self.record, "field": self.field, "problem": self.problem}


@dataclass(eq=False)
class ApiError(SkyliftError):
    """An error reply: raised anywhere in a request, turned into JSON in one place."""

    code: str
    message: str
    details: list[Detail] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(self.message)

    @property
    def status(self) -> int:
        return int(ERROR_STATUS[self.code])

    def body(self) -> dict[str, Any]:
        return error_body(self.code, self.message, self.details)


# What a reply echoes of a request is bounded, so a reply stays within a small multiple of its
# request (ids, field names, unseen categories and paths can each be as long as the body).
MAX_DETAILS = 100  # a 1,000-record request with a bad column should not echo 1,000 lines
MAX_ECHO_CHARS = 120  # per echoed field name or problem text
MAX_MESSAGE_CHARS = 1_000


def clip(text: str, limit: int = MAX_ECHO_CHARS) -> str:
    """``text`` cut to ``limit`` characters, saying how much was left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text) - limit} more characters)"


def bounded_details(items: list[dict[str, Any]], limit: int = MAX_DETAILS) -> list[dict[str, Any]]:
    """At most ``limit`` {record, field, problem} items, texts clipped, then one that counts
    the rest (``"... and N more"``)."""
    out = [
        {
            "record": item.get("record"),
            "field": clip(str(item.get("field") or "")),
            "problem": clip(str(item.get("problem") or "")),
        }
        for item in items[:limit]
    ]
    if len(items) > limit:
        out.append({"record": None, "field": "", "problem": f"... and {len(items) - limit} more"})
    return out


def error_body(code: str, message: str, details: list[Detail] | None = None) -> dict[str, Any]:
    return {
        "error": {
            "code": code,
            "message": clip(message, MAX_MESSAGE_CHARS),
            "details": bounded_details([d.as_dict() for d in details or []]),
        }
    }


def _reject_constant(name: str) -> Any:
    # Python's json accepts NaN/Infinity/-Infinity; they are not JSON, and a model must not
    # see them as numbers. JSONDecodeError makes Powertools report "json_invalid".
    raise json.JSONDecodeError(f"{name} is not valid JSON", name, 0)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # JSON allows a key twice and json.loads keeps the last: a client's bug passes unseen.
    obj = dict(pairs)
    if len(obj) != len(pairs):
        keys = [key for key, _ in pairs]
        twice = next(key for key in keys if keys.count(key) > 1)
        raise json.JSONDecodeError(f"duplicate key {twice!r}", "", 0)
    return obj


def strict_json_loads(text: str | bytes) -> Any:
    """json.loads that refuses the NaN/Infinity extensions and keys given twice.

    Every way a body can fail to parse is a JSONDecodeError (a 400), including the two that
    json.loads reports otherwise: nesting deeper than the interpreter's recursion limit
    (RecursionError) and integers longer than Python's 4300-digit limit (ValueError).
    """
    try:
        return json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError:
        raise
    except RecursionError:
        raise json.JSONDecodeError("nested too deeply", str(text[:0]), 0) from None
    except ValueError as exc:
        raise json.JSONDecodeError(str(exc), str(text[:0]), 0) from None
