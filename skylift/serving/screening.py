"""Transport-level checks on a proxy event, before anything parses its body: size limits and
base64 that decodes to UTF-8 text."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from skylift.api_errors import ApiError, ErrorCode

__all__ = ["screen_body"]


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
