"""What the server's parts pass each other: a parsed ``Request``, a ``Response`` to send, and
the JSON helpers every answer is built with."""

from __future__ import annotations

import json
import os
import time
from datetime import datetime, timezone
from typing import Any, Literal, cast

import attrs

__all__ = [
    "Invalid",
    "Request",
    "Response",
    "canonical_json",
    "error",
    "json_response",
    "new_id",
    "now",
    "request_id",
]


@attrs.frozen
class Request:
    """A parsed HTTP request; ``path`` and ``query`` are raw (still percent-encoded)."""

    method: str
    path: str
    query: str = ""
    headers: dict[str, str] = attrs.field(factory=lambda: cast("dict[str, str]", {}))
    body: bytes = b""
    body_too_large: bool = False
    client: str | None = None


@attrs.frozen
class Response:
    """What to send; ``action`` asks the transport to reset or truncate instead."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes
    action: Literal["reset", "truncate"] | None = None


class Invalid(Exception):
    """A 400 ``invalid_request`` with the message naming the field."""


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
_CANONICAL = json.JSONEncoder(separators=(",", ":"), sort_keys=True)


def canonical_json(value: Any) -> str:
    """JSON with sorted keys: equal values give equal text."""
    return _CANONICAL.encode(value)


def request_id() -> tuple[str, str]:
    """The ``X-Request-Id`` header of one answer."""
    return ("X-Request-Id", "req_" + os.urandom(8).hex())


def json_response(
    status: int, payload: Any, headers: list[tuple[str, str]] | None = None
) -> Response:
    base = [("Content-Type", "application/json"), request_id()]
    return Response(status, base + (headers or []), _ENCODER.encode(payload).encode())


def error(
    status: int, code: str, message: str, headers: list[tuple[str, str]] | None = None
) -> Response:
    return json_response(status, {"error": {"code": code, "message": message}}, headers)


_second_cache: list[Any] = [-1, ""]


def now() -> str:
    """RFC 3339 UTC with microseconds and "Z" (the seconds part is cached: this is hot)."""
    stamp = time.time()
    second = int(stamp)
    if _second_cache[0] != second:
        text = datetime.fromtimestamp(second, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
        _second_cache[:] = [second, text]
    return f"{_second_cache[1]}.{int((stamp - second) * 1e6):06d}Z"


def new_id(prefix: str) -> str:
    return prefix + os.urandom(12).hex()
