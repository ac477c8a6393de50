"""Checks on what a client sent, before the model sees it: the body's size, base64, gzip
Content-Encoding, charset and UTF-8; the media type (case-insensitive, as RFC 9110 says); the
envelope being one JSON object; strings being Unicode text (JSON can escape lone surrogates,
which no encoder accepts)."""

from __future__ import annotations

import base64
import binascii
import re
import zlib
from typing import Any

from skylift.api_errors import ApiError, Detail, ErrorCode, strict_json_loads

__all__ = [
    "may_hold_surrogates",
    "non_unicode_values",
    "normalize_media_type",
    "parse_envelope",
    "screen_body",
]

_CONTENT_TYPE = "content-type"


def screen_body(event: dict[str, Any], max_body_bytes: int) -> ApiError | None:
    """The error for a body the API must refuse before parsing it, or None.

    A body that came base64-encoded or gzip-compressed is replaced in ``event`` by its text,
    so the resolver parses plain JSON: each way of failing (bad base64, bad gzip, too large
    once decompressed, not UTF-8) gets its own message here.
    """
    coding = _content_coding(event)
    if isinstance(coding, ApiError):
        return coding
    charset = _charset(event)
    if charset is not None and charset not in _UTF8_CHARSETS:
        return ApiError(
            ErrorCode.UNSUPPORTED_MEDIA_TYPE,
            f"charset {charset!r} is not supported; JSON is UTF-8 (RFC 8259): "
            "send the body as UTF-8 text",
        )
    body = event.get("body")
    if not body:
        return None
    if not isinstance(body, str):
        return ApiError(ErrorCode.INVALID_BODY, "the event's body is not a string")
    if event.get("isBase64Encoded"):
        if coding is None and len(body) * 3 // 4 > max_body_bytes + 3:
            return _too_large(len(body) * 3 // 4, max_body_bytes)
        try:
            raw = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            return ApiError(
                ErrorCode.INVALID_BODY,
                "the body is flagged base64 (isBase64Encoded) but is not valid base64",
            )
    elif coding == "gzip":
        # gzip bytes are binary: API Gateway hands them over only base64-encoded (an HTTP API
        # does; a REST API needs binaryMediaTypes), never as text.
        return ApiError(
            ErrorCode.INVALID_BODY,
            "the body is marked Content-Encoding: gzip but arrived as text, not base64-encoded "
            "binary; the API must pass it as binary (a REST API's binaryMediaTypes)",
        )
    elif len(body) > max_body_bytes:
        return _too_large(len(body), max_body_bytes)
    elif len(body) * 4 <= max_body_bytes:
        return None  # even all 4-byte characters would fit: skip encoding
    else:
        size = len(body.encode("utf-8", "surrogatepass"))
        return _too_large(size, max_body_bytes) if size > max_body_bytes else None
    if coding == "gzip":
        inflated = _gunzip(raw, max_body_bytes)
        if isinstance(inflated, ApiError):
            return inflated
        raw = inflated
    if len(raw) > max_body_bytes:
        return _too_large(len(raw), max_body_bytes)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return _not_utf8(raw, exc)
    event["body"] = text
    event["isBase64Encoded"] = False
    return None


_UTF8_CHARSETS = frozenset({"utf-8", "utf8", "us-ascii", "ascii"})
_IDENTITY = "identity"
_GZIP = frozenset({"gzip", "x-gzip"})


def _header(event: dict[str, Any], wanted: str) -> str | None:
    """A request header's value, whatever its case (REST events carry both header maps)."""
    for name, value in (event.get("headers") or {}).items():
        if isinstance(name, str) and name.lower() == wanted and isinstance(value, str):
            return value
    for name, values in (event.get("multiValueHeaders") or {}).items():
        if isinstance(name, str) and name.lower() == wanted and isinstance(values, list):
            texts = [v for v in values if isinstance(v, str)]
            if texts:
                return ", ".join(texts)
    return None


def _content_coding(event: dict[str, Any]) -> str | ApiError | None:
    """``"gzip"``, None for no coding (or identity), or the 415 for any other coding."""
    value = _header(event, "content-encoding")
    if value is None:
        return None
    codings = [c.strip().lower() for c in value.split(",") if c.strip()]
    codings = [c for c in codings if c != _IDENTITY]
    if not codings:
        return None
    if len(codings) == 1 and codings[0] in _GZIP:
        return "gzip"
    return ApiError(
        ErrorCode.UNSUPPORTED_MEDIA_TYPE,
        f"Content-Encoding {_shown(value)!r} is not supported; send the body uncompressed "
        "or with Content-Encoding: gzip",
    )


def _charset(event: dict[str, Any]) -> str | None:
    value = _header(event, "content-type")
    if value is None:
        return None
    for parameter in value.split(";")[1:]:
        name, _, given = parameter.partition("=")
        if name.strip().lower() == "charset":
            return _shown(given.strip().strip('"').lower())
    return None


def _gunzip(data: bytes, limit: int) -> bytes | ApiError:
    """Decompress at most ``limit`` + 1 bytes: a small gzip bomb stays small here."""
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)  # gzip header and trailer
    try:
        out = inflater.decompress(data, limit + 1)
        if len(out) > limit:
            return ApiError(
                ErrorCode.PAYLOAD_TOO_LARGE,
                f"the gzip body decompresses to more than {limit} bytes, the limit "
                "([api].max_body_bytes); split the records over several requests",
            )
        if not inflater.eof:
            raise zlib.error("the gzip stream is truncated")
    except zlib.error as exc:
        return ApiError(
            ErrorCode.INVALID_BODY,
            f"the body is marked Content-Encoding: gzip but is not valid gzip data ({exc})",
        )
    if inflater.unused_data.strip(b"\0"):
        return ApiError(
            ErrorCode.INVALID_BODY, "the gzip body has data after the end of its gzip stream"
        )
    return out


def _not_utf8(raw: bytes, exc: UnicodeDecodeError) -> ApiError:
    byte = raw[exc.start]
    problem = f"byte 0x{byte:02x} at offset {exc.start} is not UTF-8"
    following = raw[exc.start + 1 : exc.start + 2]
    if byte >= 0xA0 and not (following and 0x80 <= following[0] <= 0xBF):
        # A lone high byte where UTF-8 needs a continuation: "é" as Latin-1 is 0xe9 alone.
        shown = bytes([byte]).decode("latin-1")
        problem += f" (it looks like Latin-1/Windows-1252 text: {shown!r})"
    return ApiError(
        ErrorCode.INVALID_BODY,
        f"the body is not UTF-8 text: {problem}; JSON must be UTF-8 (RFC 8259)",
        [Detail(None, "body", problem)],
    )


def _shown(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


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


# A JSON text can only carry a lone surrogate as an escape (\uD800-\uDFFF): valid UTF-8 cannot.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def may_hold_surrogates(body: str | None) -> bool:
    """Whether the records parsed from ``body`` can hold a lone surrogate (else the per-field
    scan of :func:`non_unicode_values` is skipped: it costs more than the rest of parsing)."""
    if body is None:
        return True
    if body.isascii():
        return _SURROGATE_ESCAPE.search(body) is not None
    return not _is_unicode(body) or _SURROGATE_ESCAPE.search(body) is not None


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
