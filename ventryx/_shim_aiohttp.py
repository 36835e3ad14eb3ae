"""The aiohttp shim: every call of a ``transport="aiohttp"`` client, on ``aiohttp.ClientSession``.

httpx's connection pool slows down as concurrency rises (DESIGN.md section 3); aiohttp's does
not. The shim is a transport and nothing more: the pipeline builds the ``httpx.Request`` (URL,
headers, idempotency key, body bytes, timeout) exactly as for httpx, this module sends it with
aiohttp, and answers with an ``httpx.Response``, so that status mapping, decoding, raw
responses, retries and debug logging are the pipeline's, shared with the httpx path. aiohttp's
failures are raised as the httpx exceptions of the same kind (``httpx.ConnectError``,
``httpx.ReadTimeout``...), which the pipeline maps to the SDK's errors in its one place.

asyncio only (aiohttp does not run on trio): the session is made on the first request, in the
running loop; on any other loop the request fails with a ``ConfigurationError``. Imported only
by a client that chose aiohttp, so ``import ventryx`` never loads it.
"""

from __future__ import annotations

import asyncio
import io
from typing import Any

import aiohttp  # the client checks that it is installed before importing this module
import httpx

from ventryx._errors import ConfigurationError
from ventryx._ssl import VerifyTypes, ssl_context

__all__ = ["AiohttpShim", "require_asyncio"]

# What aiohttp decodes itself (and so what may be advertised), whatever httpx would advertise.
_ACCEPT_ENCODING = "gzip, deflate"
# Response headers that no longer describe the body once aiohttp has decoded it.
_DECODED = frozenset({b"content-encoding", b"content-length"})
_HTTP_11 = {"http_version": b"HTTP/1.1"}
_CACHE_SIZE = 64
_LARGE_BODY = 1 << 20  # aiohttp's TOO_LARGE_BYTES_BODY


def require_asyncio() -> None:
    """``ConfigurationError`` unless this runs in an asyncio event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        raise ConfigurationError(
            "transport='aiohttp' needs asyncio (aiohttp does not run on trio); "
            "use transport='httpx', which works on both"
        ) from None


class AiohttpShim:
    """One ``aiohttp.ClientSession`` (made on first use) behind the shim protocol."""

    def __init__(self, *, base_url: str, limits: httpx.Limits, verify: VerifyTypes = True) -> None:
        self.headers = httpx.Headers({"accept-encoding": _ACCEPT_ENCODING})
        self.params = httpx.QueryParams()
        self._limits = limits
        self._verify: VerifyTypes | None = verify if base_url.startswith("https:") else None
        self._session: aiohttp.ClientSession | None = None
        self._closed = False
        self._timeouts: dict[tuple[float | None, ...], aiohttp.ClientTimeout] = {}
        self._urls: dict[str, Any] = {}

    @property
    def is_closed(self) -> bool:
        return self._closed

    def _open(self) -> aiohttp.ClientSession:
        if self._closed:
            raise RuntimeError("Cannot send a request, as the client has been closed.")
        require_asyncio()
        limits = self._limits
        connector = aiohttp.TCPConnector(
            limit=limits.max_connections or 0,
            limit_per_host=0,
            keepalive_timeout=limits.keepalive_expiry or 0,
            # The shared context for https (SSL_CERT_FILE / SSL_CERT_DIR respected); for a
            # plain-HTTP base URL none is needed.
            ssl=True if self._verify is None else ssl_context(self._verify),
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            auto_decompress=True,
            # The pipeline's headers are complete: aiohttp adds only Host and Content-Length.
            skip_auto_headers=("Accept", "Accept-Encoding", "User-Agent", "Content-Type"),
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        # aiohttp resends a GET/PUT/DELETE once, unseen, when a reused connection turns out
        # closed; the pipeline's retries (counted, logged, with backoff) are the only ones.
        self._session._retry_connection = False  # pyright: ignore[reportPrivateUsage]
        return self._session

    async def send(self, request: httpx.Request) -> httpx.Response:
        session = self._session or self._open()
        try:
            async with session.request(
                request.method,
                self._url(request.url),
                data=_body(request.content),
                headers=request.headers.multi_items(),
                allow_redirects=False,
                timeout=self._timeout(request),
            ) as answer:
                body = await answer.read()
                status, raw_headers, reason = answer.status, answer.raw_headers, answer.reason
        except aiohttp.ClientError as exc:
            raise _as_httpx_error(exc, request) from exc
        except (asyncio.TimeoutError, TimeoutError) as exc:  # the total timeout
            raise httpx.ReadTimeout(str(exc) or "timed out", request=request) from exc
        if any(name.lower() == b"content-encoding" for name, _ in raw_headers):
            raw_headers = tuple((k, v) for k, v in raw_headers if k.lower() not in _DECODED)
        extensions: dict[str, Any] = _HTTP_11
        if reason:
            extensions = {**_HTTP_11, "reason_phrase": reason.encode("latin-1", "replace")}
        return httpx.Response(
            status, headers=raw_headers, content=body, request=request, extensions=extensions
        )

    def _url(self, url: httpx.URL) -> Any:
        """The ``yarl.URL`` of ``url``, already encoded by httpx (fixed paths are cached)."""
        text = str(url)
        parsed = self._urls.get(text)
        if parsed is None:
            import yarl  # noqa: PLC0415 - aiohttp's own dependency, loaded with it

            parsed = yarl.URL(text, encoded=True)
            if len(self._urls) < _CACHE_SIZE:
                self._urls[text] = parsed
        return parsed

    def _timeout(self, request: httpx.Request) -> aiohttp.ClientTimeout:
        """httpx's four timeouts as aiohttp's (as httpx-aiohttp maps them); there is no write one.

        aiohttp's ``connect`` covers waiting for a pooled connection (httpx's ``pool``),
        ``sock_connect`` the TCP and TLS handshake, ``sock_read`` every read.
        """
        spec: dict[str, float | None] = request.extensions.get("timeout", {})
        key = (spec.get("pool"), spec.get("connect"), spec.get("read"))
        timeout = self._timeouts.get(key)
        if timeout is None:
            timeout = aiohttp.ClientTimeout(
                total=None, connect=key[0], sock_connect=key[1], sock_read=key[2]
            )
            if len(self._timeouts) < _CACHE_SIZE:
                self._timeouts[key] = timeout
        return timeout

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def aclose(self) -> None:
        self._closed = True
        session, self._session = self._session, None
        if session is not None:
            await session.close()


def _body(content: bytes) -> bytes | io.BytesIO | None:
    # aiohttp warns (ResourceWarning) about a large body given as bytes; a file it streams.
    if len(content) >= _LARGE_BODY:
        return io.BytesIO(content)
    return content or None


def _as_httpx_error(exc: aiohttp.ClientError, request: httpx.Request) -> httpx.TransportError:
    """The httpx exception of the same kind as an aiohttp failure (what the pipeline maps)."""
    detail = str(exc) or type(exc).__name__
    kind: type[httpx.TransportError]
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        kind = httpx.ConnectTimeout
    elif isinstance(exc, aiohttp.ServerTimeoutError):
        kind = httpx.ReadTimeout
    elif isinstance(exc, aiohttp.ClientConnectorError):
        kind = httpx.ConnectError
    elif isinstance(
        # ClientResponseError: a malformed status line or head
        exc,
        (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError, aiohttp.ClientResponseError),
    ):
        kind = httpx.RemoteProtocolError
    elif isinstance(exc, aiohttp.InvalidURL):
        kind = httpx.UnsupportedProtocol
    else:  # ClientOSError and the rest of ClientConnectionError: the socket failed
        kind = httpx.ReadError
    return kind(detail, request=request)
