"""Deadlines and size caps for one attempt: the machinery behind ``Shim.send``.

httpx's timeouts are per read: a peer that sends one byte per interval never trips them. The
shims therefore get an absolute ``deadline`` (``time.monotonic()`` seconds) for the attempt
and a cap on the decoded bytes of its answer:

- ``AsyncShim`` runs the whole attempt (connect, headers, body) in an anyio cancel scope
  that expires at the deadline, which works for any ``httpx.AsyncClient``, injected or not.
- ``BlockingShim`` cannot cancel a blocking read, so every read, write, connect and TLS
  handshake of the sockets under the client is clamped to the time left (``DeadlineBackend``,
  a wrapper of httpcore's network backend, reading the deadline from a context variable the
  shim sets around the send, installed by ``ventryx/_sockets.py``). The request's own timeouts
  (pool wait included) are clamped too, and the deadline is checked between body chunks.

The body is read raw and decoded here (gzip, deflate, identity), with the output of each
decompression step limited to what is left of the cap, so a gzip bomb costs at most the cap.
"""

from __future__ import annotations

import contextvars
import time
import zlib
from collections.abc import Mapping

import httpx

from ventryx._errors import ResponseTooLargeError

__all__ = [
    "ACCEPT_ENCODING",
    "MIN_WAIT",
    "BodyCollector",
    "DeadlineExceeded",
    "clamp_timeouts",
    "current_deadline",
    "remaining",
    "set_content",
]

# What the collector decodes itself; asked for explicitly so that no other coding arrives.
ACCEPT_ENCODING = "gzip, deflate"

current_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "ventryx_deadline", default=None
)

_ORIGINAL = "ventryx.timeout"
# A socket timeout of 0 would mean "non-blocking" (an OSError, not a timeout): never below this.
MIN_WAIT = 0.001


class DeadlineExceeded(httpx.TimeoutException):
    """The attempt's absolute deadline passed (the pipeline maps it to ``APITimeoutError``)."""


def remaining(deadline: float | None) -> float | None:
    """Seconds left until ``deadline`` (``None``: no deadline); may be <= 0."""
    return None if deadline is None else deadline - time.monotonic()


def clamp_timeouts(request: httpx.Request, deadline: float | None) -> None:
    """Lower every phase timeout of ``request`` to the time left (a fresh dict: it is shared)."""
    left = remaining(deadline)
    if left is None:
        return
    left = max(left, MIN_WAIT)
    # The timeouts the request was built with, kept aside: every attempt clamps from them.
    original = request.extensions.get(_ORIGINAL)
    if original is None:
        original = dict(request.extensions.get("timeout") or {})
    clamped: dict[str, float | None] = {}
    for phase in ("connect", "read", "write", "pool"):
        value = original.get(phase)
        clamped[phase] = left if value is None else min(left, value)
    request.extensions = {**request.extensions, "timeout": clamped, _ORIGINAL: original}


class _Stage:
    """One zlib decoding step whose output never exceeds what is left of the cap."""

    __slots__ = ("_deflate", "_obj", "_started")

    def __init__(self, coding: str) -> None:
        self._deflate = coding == "deflate"
        # gzip: the gzip header; deflate: a zlib stream, or (as some servers send) raw deflate.
        self._obj = zlib.decompressobj(zlib.MAX_WBITS | 16 if not self._deflate else zlib.MAX_WBITS)
        self._started = False

    def decode(self, data: bytes, budget: int) -> bytes:
        try:
            out = self._obj.decompress(data, budget + 1)
        except zlib.error:
            if not (self._deflate and not self._started):
                raise
            self._obj = zlib.decompressobj(-zlib.MAX_WBITS)
            out = self._obj.decompress(data, budget + 1)
        self._started = True
        return out

    def flush(self) -> bytes:
        return self._obj.flush() if not self._obj.eof else b""


class BodyCollector:
    """Reads one answer's body: raw chunks in, decoded bytes counted against ``max_bytes``."""

    def __init__(
        self,
        response: httpx.Response,
        max_bytes: int,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """``headers``: the response's, as a case-insensitive mapping (by default its own)."""
        self.response = response
        self.max_bytes = max_bytes
        self.size = 0
        self._raw = 0
        self._parts: list[bytes] = []
        if headers is None:
            headers = response.headers
        self._stages: list[_Stage] = []
        coding = headers.get("content-encoding")
        if coding:
            codings = [c.strip().lower() for c in coding.split(",") if c.strip()]
            # Applied in the order listed, so decoded in reverse; unknown codings pass
            # through (as httpx does: the body then fails to parse and says so).
            self._stages = [
                _Stage(c) for c in reversed(codings) if c in ("gzip", "x-gzip", "deflate")
            ]
        declared = headers.get("content-length", "")
        if declared.isdigit() and len(declared) < 20 and int(declared) > max_bytes:
            self._too_large(f"it declares Content-Length {int(declared)}")

    def _too_large(self, why: str) -> None:
        raise ResponseTooLargeError(
            f"Response too large: over max_response_bytes={self.max_bytes} ({why}); "
            "raise max_response_bytes= on the client if such answers are expected",
            request=self.response.request,
            limit=self.max_bytes,
            status_code=self.response.status_code,
        )

    def feed(self, raw: bytes) -> None:
        self._raw += len(raw)
        if self._raw > self.max_bytes:
            self._too_large(f"more than {self.max_bytes} bytes on the wire")
        self._add(self._decode(raw))

    def _decode(self, data: bytes) -> bytes:
        try:
            for stage in self._stages:
                data = stage.decode(data, self.max_bytes - self.size)
        except zlib.error as exc:
            raise httpx.DecodingError(
                f"invalid {self._coding()} body: {exc}", request=self.response.request
            ) from None
        return data

    def _coding(self) -> str:
        coding: str = self.response.headers.get("content-encoding", "identity")
        return coding

    def _add(self, data: bytes) -> None:
        if data:
            self.size += len(data)
            if self.size > self.max_bytes:
                self._too_large("decoded")
            self._parts.append(data)

    def whole(self, content: bytes) -> httpx.Response:
        """The response as it is, for a body some transport read already (checked for size)."""
        if len(content) > self.max_bytes:
            self._too_large("decoded")
        return self.response

    def finish(self) -> bytes:
        data = b""
        try:
            for stage in self._stages:
                # What a step flushes still goes through the steps after it.
                if data:
                    data = stage.decode(data, self.max_bytes - self.size)
                data += stage.flush()
        except zlib.error as exc:
            raise httpx.DecodingError(
                f"invalid {self._coding()} body: {exc}", request=self.response.request
            ) from None
        self._add(data)
        return b"".join(self._parts)


def set_content(response: httpx.Response, content: bytes) -> None:
    """Give a streamed (and closed) response its decoded body, as ``response.read()`` would."""
    setattr(response, "_content", content)  # noqa: B010 - httpx's own slot for a read body
