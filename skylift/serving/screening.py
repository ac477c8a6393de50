"""Checks on what a client sent, before the model sees it: the body's size and encoding, the
media type (case-insensitive, as RFC 9110 says), the envelope being one JSON object, and
strings being Unicode text (JSON can escape lone surrogates, which no encoder accepts)."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from skylift.api_errors import ApiError, Detail, ErrorCode, strict_json_loads

__all__ = ["non_unicode_values", "normalize_media_type", "parse_envelope", "screen_body"]

_CONTENT_TYPE = "content-type"


def screen_body(event: dict[str, Any], max_body_bytes: int) -> ApiError | None:
    """The error for a body the API must refuse before parsing it, or None."""
    body = event.get("body")
    if not body:
        return None
    if event.get("isBase64Encoded"):
        if len(body) * 3 // 4 > max_body_bytes + 3:
            return _too_large(len(body) * 3 // 4, max_body_bytes)
        try:
            raw = base64.b64decode(body, validate=True)
            raw.decode("utf-8")
        except (binascii.Error, ValueError):
            return ApiError(
                ErrorCode.INVALID_BODY,
                "the body is flagged base64 but is not valid base64-encoded UTF-8 text",
            )
        size = len(raw)
    elif len(body) > max_body_bytes:
        size = len(body)
    elif len(body) * 4 <= max_body_bytes:
        return None  # even all 4-byte characters would fit: skip encoding
    else:
        size = len(body.encode("utf-8", "surrogatepass"))
    return _too_large(size, max_body_bytes) if size > max_body_bytes else None


def _too_large(size: int, limit: int) -> ApiError:
    return ApiError(
        ErrorCode.PAYLOAD_TOO_LARGE,
        f"request body is {size} bytes, the limit is {limit} "
        "([api].max_body_bytes); split the records over several requests",
    )


def normalize_media_type(event: dict[str, Any]) -> None:
    """Lower-case the Content-Type's media type in place ("APPLICATION/JSON" is JSON too)."""
    for headers in (event.get("headers"), event.get("multiValueHeaders")):
        if not isinstance(headers, dict):
            continue
        for name, value in headers.items():
            if name.lower() != _CONTENT_TYPE:
                continue
            if isinstance(value, str):
                headers[name] = _lower_media_type(value)
            elif isinstance(value, list):
                headers[name] = [_lower_media_type(v) if isinstance(v, str) else v for v in value]


def _lower_media_type(value: str) -> str:
    media_type, separator, parameters = value.partition(";")
    return media_type.strip().lower() + separator + parameters


def parse_envelope(text: str | bytes) -> Any:
    """The body as JSON (strictly), which must be one object: an array of envelopes would
    otherwise be read as its first."""
    value = strict_json_loads(text)
    if not isinstance(value, dict):
        kind = "an array" if isinstance(value, list) else f"a {type(value).__name__}"
        raise ApiError(
            ErrorCode.VALIDATION_ERROR,
            f'the body must be one JSON object ({{"records": [...]}}), not {kind}',
            [Detail(None, "body", "expected one JSON object")],
        )
    return value


def non_unicode_values(records: list[Any]) -> list[Detail]:
    """Record fields (names or values) that are not Unicode text: lone surrogates."""
    problems = []
    for number, record in enumerate(records):
        if not isinstance(record, dict):
            continue
        for name, value in record.items():
            for text in (name, value):
                if isinstance(text, str) and not text.isascii() and not _is_unicode(text):
                    problems.append(Detail(number, _printable(name), "not valid Unicode text"))
                    break
    return problems


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _printable(name: str) -> str:
    return name if _is_unicode(name) else name.encode("utf-8", "backslashreplace").decode()
