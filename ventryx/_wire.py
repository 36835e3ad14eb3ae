"""The request and the answer of one attempt, as both transports see them (issue 19).

The pipeline builds an ``Outgoing`` and a shim answers with an ``httpx.Response``; the httpx
shims hand the request to httpx, the aiohttp shim answers with an ``Incoming``. Both are httpx
objects to everything above the shims (the errors, ``RawResponse``, logging, tests), built
without the parsing httpx's constructors do on every call: the URL comes parsed (cached per
path), the body is already bytes, and the headers become an ``httpx.Headers`` only when
something reads them. On the aiohttp path nothing does on a successful call, so the header
list the pipeline made goes to aiohttp as it is, and aiohttp's answer headers stay aiohttp's.
The constructors set exactly the attributes httpx's own do (httpx 0.28).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import httpx

__all__ = ["Incoming", "Outgoing"]

_EMPTY = httpx.ByteStream(b"")


class Outgoing(httpx.Request):
    """An ``httpx.Request`` whose headers are a list of ``(name, value)`` pairs until read.

    ``text`` is ``str(url)``; the URL is not to be replaced (httpx never does).

    ``pairs`` are complete, as httpx would send them: ``Host`` first, then the given ones,
    ``Content-Length`` as httpx adds it. ``stream`` carries ``content`` (``_OneChunk``).
    """

    def __init__(
        self,
        method: str,
        url: httpx.URL,
        text: str,
        pairs: list[tuple[str, str]],
        *,
        content: bytes,
        stream: httpx.SyncByteStream | httpx.AsyncByteStream | None,
        extensions: dict[str, Any],
    ) -> None:
        # Not httpx's __init__: it would parse the URL and the headers again.
        self.method = method
        self.url = url
        self.text = text  # str(url), which httpx builds anew each time
        self._pairs: list[tuple[str, str]] | None = pairs
        self._headers: httpx.Headers | None = None
        self.extensions = extensions
        self.stream = _EMPTY if stream is None else stream
        self._content = content

    @property
    def headers(self) -> httpx.Headers:  # pyright: ignore[reportIncompatibleVariableOverride]
        headers = self._headers
        if headers is None:
            headers = self._headers = httpx.Headers(self._pairs)
            self._pairs = None  # from now on the Headers are the truth (they may be changed)
        return headers

    @headers.setter
    def headers(self, value: httpx.Headers) -> None:
        self._headers = httpx.Headers(value)
        self._pairs = None

    def built_pairs(self) -> list[tuple[str, str]] | None:
        """The headers exactly as the pipeline built them; ``None`` once they were read as
        ``httpx.Headers`` (and so may have been changed)."""
        return self._pairs

    def header_pairs(self) -> Sequence[tuple[str, str]]:
        """The headers as ``(name, value)`` strings, as they are sent."""
        if self._pairs is not None:
            return self._pairs
        return self.headers.multi_items()


class Incoming(httpx.Response):
    """An answer read by another library, whose headers become ``httpx.Headers`` when read.

    ``raw_headers`` are the answer's as bytes pairs (the shim reads the few it needs from the
    library's own mapping).
    """

    def __init__(
        self,
        status_code: int,
        raw_headers: Sequence[tuple[bytes, bytes]],
        request: httpx.Request,
        extensions: dict[str, Any],
        stream: httpx.AsyncByteStream,
    ) -> None:
        # Not httpx's __init__, which would copy and parse every header on every answer.
        self.status_code = status_code
        self._raw_headers: Sequence[tuple[bytes, bytes]] | None = raw_headers
        self._headers: httpx.Headers | None = None
        self._request = request
        self.next_request = None
        self.extensions = extensions
        self.history = []
        self.is_closed = False
        self.is_stream_consumed = False
        self.default_encoding = "utf-8"
        self.stream = stream
        self._num_bytes_downloaded = 0

    @property
    def headers(self) -> httpx.Headers:  # pyright: ignore[reportIncompatibleVariableOverride]
        headers = self._headers
        if headers is None:
            headers = self._headers = httpx.Headers(self._raw_headers)
            self._raw_headers = None
        return headers

    @headers.setter
    def headers(self, value: httpx.Headers | Mapping[str, str]) -> None:
        self._headers = httpx.Headers(value)
        self._raw_headers = None
