"""The aiohttp shim: every call of a ``transport="aiohttp"`` client, on ``aiohttp.ClientSession``.

httpx's connection pool slows down as concurrency rises (DESIGN.md section 3); aiohttp's does
not. The shim is a transport and nothing more: the pipeline builds the ``httpx.Request`` (URL,
headers, idempotency key, body bytes, timeout) exactly as for httpx, this module sends it with
aiohttp, and answers with an ``httpx.Response``, so that status mapping, decoding, raw
responses, retries and debug logging are the pipeline's, shared with the httpx path. It keeps
``Shim.send``'s contract as the httpx shims do: the body read raw and decoded by
``BodyCollector`` within ``max_bytes``, the ``deadline`` as aiohttp's ``total`` timeout of the
attempt, and aiohttp's failures raised as the httpx exceptions of the same kind
(``httpx.ConnectError``, ``httpx.ReadTimeout``, ``DeadlineExceeded``...), which the pipeline
maps to the SDK's errors in its one place.

asyncio only (aiohttp does not run on trio): the session is made on the first request, in the
running loop; on any other loop the request fails with a ``ConfigurationError``. Imported only
by a client that chose aiohttp, so ``import ventryx`` never loads it.
"""

from __future__ import annotations

import asyncio
import io
import math
import weakref
from collections.abc import AsyncIterator
from typing import Any, cast

import aiohttp  # the client checks that it is installed before importing this module
import httpx
from multidict import CIMultiDict

from ventryx._deadline import (
    ACCEPT_ENCODING,
    BodyCollector,
    DeadlineExceeded,
    remaining,
    set_content,
)
from ventryx._errors import ConfigurationError
from ventryx._ssl import VerifyTypes, ssl_context
from ventryx._wire import Incoming, Outgoing

__all__ = ["AiohttpShim", "require_asyncio"]

_HTTP_11 = {"http_version": b"HTTP/1.1"}
_CACHE_SIZE = 64
_NO_TIMEOUTS: dict[str, float | None] = {}  # only read
_REASONS: dict[str, dict[str, Any]] = {}  # a reason phrase -> the extensions of its answers
_LARGE_BODY = 1 << 20  # aiohttp's TOO_LARGE_BYTES_BODY
_NEVER = math.inf  # a ceil_threshold that no timeout reaches
_UNSET = aiohttp.ClientTimeout()  # what no request's timeout is
# What aiohttp adds to a request that lacks them (not Host and Content-Length: those it
# computes as httpx does), and the methods it gives a default Content-Type.
_AUTO_HEADERS = ("Accept", "Accept-Encoding", "User-Agent", "Content-Type")
_DEFAULT_CONTENT_TYPE = frozenset({"POST", "PUT", "PATCH"})
_STR = frozenset({str})


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
        self.headers = httpx.Headers({"accept-encoding": ACCEPT_ENCODING})
        self.params = httpx.QueryParams()
        self._limits = limits
        self._verify: VerifyTypes | None = verify if base_url.startswith("https:") else None
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._timeouts: dict[tuple[float | None, ...], aiohttp.ClientTimeout] = {}
        self._urls: dict[str, Any] = {}
        self._spec: object = None
        self._spec_key: tuple[float | None, ...] = ()
        self._last_total: tuple[int, object, aiohttp.ClientTimeout] = (-1, None, _UNSET)

    @property
    def is_closed(self) -> bool:
        return self._closed

    def _session_here(self) -> aiohttp.ClientSession:
        """The session of the running loop: made on first use, and again on a new loop.

        A session's connections belong to the loop that opened them; after a second
        ``asyncio.run()`` the old one is dropped (kept referenced, its loop is gone).
        """
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            require_asyncio()
            raise
        session = self._session
        if session is not None and self._loop is loop:
            return session
        if session is not None:
            _ABANDONED.append(session)
            del _ABANDONED[:-8]
        self._loop = loop
        return self._open()

    def _open(self) -> aiohttp.ClientSession:
        if self._closed:
            raise RuntimeError("Cannot send a request, as the client has been closed.")
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
            auto_decompress=False,  # BodyCollector decodes, within the size cap
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        _given_as_is(self._session)
        # aiohttp resends a GET/PUT/DELETE once, unseen, when a reused connection turns out
        # closed; the pipeline's retries (counted, logged, with backoff) are the only ones.
        self._session._retry_connection = False  # pyright: ignore[reportPrivateUsage]
        return self._session

    async def send(
        self, request: httpx.Request, *, deadline: float | None, max_bytes: int
    ) -> httpx.Response:
        session = self._session_here()
        left = remaining(deadline)
        if left is not None and left <= 0:
            raise DeadlineExceeded("deadline passed before sending", request=request)
        sent, complete = _plain(request)
        try:
            async with session.request(
                request.method,
                self._url(request),
                data=_body(request.content),
                headers=sent,
                # aiohttp adds only Host and Content-Length to the pipeline's headers: where
                # some may be missing, it is told not to add its own (which costs it a sorted
                # copy of the list on every request, so only then).
                skip_auto_headers=None if complete else _AUTO_HEADERS,
                allow_redirects=False,
                timeout=self._timeout(request, left),
            ) as answer:
                response = Incoming(
                    answer.status,
                    answer.raw_headers,
                    request,
                    _extensions(answer.reason),
                    _NOT_STREAMED,  # the body is set below: nothing for httpx to read
                )
                headers = answer.headers
                length = answer.content_length
                if length is not None and length <= max_bytes and "content-encoding" not in headers:
                    # aiohttp reads no more than declared: within the cap, nothing to decode.
                    content = await answer.read()
                else:  # raw bytes in, decoded and counted against the cap as they arrive
                    body = BodyCollector(response, max_bytes, headers)
                    async for chunk in answer.content.iter_any():
                        body.feed(chunk)
                    content = body.finish()
        except aiohttp.ClientError as exc:
            raise _as_httpx_error(exc, request, deadline) from exc
        except (asyncio.TimeoutError, TimeoutError) as exc:  # the total: the deadline
            raise DeadlineExceeded("deadline passed", request=request) from exc
        set_content(response, content)
        return response

    def _url(self, request: httpx.Request) -> Any:
        """The ``yarl.URL`` of the request's, already encoded by httpx (fixed ones cached)."""
        text = request.text if isinstance(request, Outgoing) else str(request.url)
        parsed = self._urls.get(text)
        if parsed is None:
            import yarl  # noqa: PLC0415 - aiohttp's own dependency, loaded with it

            parsed = yarl.URL(text, encoded=True)
            if len(self._urls) < _CACHE_SIZE:
                self._urls[text] = parsed
        return parsed

    def _timeout(self, request: httpx.Request, left: float | None) -> aiohttp.ClientTimeout:
        """httpx's timeouts as aiohttp's (as httpx-aiohttp maps them), the deadline as ``total``.

        aiohttp's ``connect`` covers waiting for a pooled connection (httpx's ``pool``),
        ``sock_connect`` the TCP and TLS handshake, ``sock_read`` every read; there is no write
        timeout. ``total`` bounds the whole attempt, body included: a peer trickling bytes
        cannot hold it past the deadline.
        """
        spec: dict[str, float | None] = request.extensions.get("timeout", _NO_TIMEOUTS)
        if spec is self._spec:  # the client's own (the same dict for all its calls)
            key = self._spec_key
        else:
            key = (spec.get("pool"), spec.get("connect"), spec.get("read"))
            self._spec, self._spec_key = spec, key
        if left is not None:
            # The total in whole milliseconds, rounded down: an attempt whose deadline was set
            # just before (now + its timeout, the usual case) finds the one it had last time.
            millis = int(left * 1000)
            last = self._last_total
            if last[0] == millis and last[1] is spec:
                return last[2]
            total = millis / 1000 if millis > 0 else left  # never 0: to aiohttp, no total
            # A phase bound no shorter than what is left can never fire before the total
            # (which starts first): left out, it costs no timer (a pooled connection's wait
            # and every read would each set and cancel one). The total is not rounded up to a
            # whole second, as aiohttp does for one over ceil_threshold: it ends at the deadline.
            pool, read = key[0], key[2]
            timeout = aiohttp.ClientTimeout(
                total=total,
                connect=None if pool is None or pool >= total else pool,
                sock_connect=key[1],
                sock_read=None if read is None or read >= total else read,
                ceil_threshold=_NEVER,
            )
            if millis > 0:
                self._last_total = (millis, spec, timeout)
            return timeout
        phases = self._timeouts.get(key)
        if phases is None:
            phases = aiohttp.ClientTimeout(
                total=None, connect=key[0], sock_connect=key[1], sock_read=key[2]
            )
            if len(self._timeouts) < _CACHE_SIZE:
                self._timeouts[key] = phases
        return phases

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def aclose(self) -> None:
        self._closed = True
        session, self._session = self._session, None
        if session is not None:
            await session.close()


class _NotStreamed(httpx.AsyncByteStream):
    """The stream of a response whose body ``set_content`` gives it (never iterated)."""

    def __aiter__(self) -> AsyncIterator[bytes]:
        raise RuntimeError("the body of an aiohttp answer is read by the shim")


_NOT_STREAMED = _NotStreamed()
_ABANDONED: list[aiohttp.ClientSession] = []


def _plain(request: httpx.Request) -> tuple[CIMultiDict[str], bool]:
    """The request's headers for aiohttp, every value a plain ``str``, and whether they
    surely hold every header aiohttp would otherwise add (``_AUTO_HEADERS``).

    aiohttp writes a ``str`` subclass through ``str()``: the pipeline's ``Secret`` would go
    out as ``[redacted]``. Headers as the pipeline built them (``Outgoing.built_pairs``) have
    Accept, Accept-Encoding and User-Agent always, and Content-Type with a body; aiohttp adds
    Content-Type to a POST, PUT or PATCH without one.
    """
    if not isinstance(request, Outgoing):
        return CIMultiDict(request.headers.multi_items()), False
    built = request.built_pairs()
    pairs = request.header_pairs() if built is None else built
    headers: CIMultiDict[str] = CIMultiDict(pairs)
    auth = headers.get("authorization")
    if auth is not None and type(auth) is not str:  # the pipeline's Secret
        headers["authorization"] = str.__str__(auth)
    if not _STR.issuperset(map(type, headers.values())):  # any other str subclass
        headers = CIMultiDict([(n, v if type(v) is str else str.__str__(v)) for n, v in pairs])
    complete = built is not None and (
        bool(request.content) or request.method not in _DEFAULT_CONTENT_TYPE
    )
    return headers, complete


def _given_as_is(session: aiohttp.ClientSession) -> None:
    """Let ``session`` take the shim's headers as they are (it has no default headers).

    ``ClientSession._prepare_headers`` merges a request's headers into a copy of the session's
    defaults, one by one in Python; for the ``CIMultiDict`` the shim builds over a session
    without defaults that merge is the same dict, so it is handed on. Anything else (proxy
    headers) goes through aiohttp's own. Should aiohttp stop calling that method, its own merge
    runs, with the same result. The session is held weakly (no cycle through its own
    ``__dict__``), and set without ``ClientSession.__setattr__``, which warns in debug mode.
    """
    merge = type(session)._prepare_headers  # pyright: ignore[reportPrivateUsage]
    owner = weakref.ref(session)

    def prepare(headers: Any) -> CIMultiDict[str]:
        if type(headers) is CIMultiDict:
            return cast("CIMultiDict[str]", headers)
        alive = owner()
        if alive is None:  # pragma: no cover - only the session itself calls this
            raise RuntimeError("the aiohttp session is gone")
        return merge(alive, headers)

    object.__setattr__(session, "_prepare_headers", prepare)


def _body(content: bytes) -> bytes | io.BytesIO | None:
    # aiohttp warns (ResourceWarning) about a large body given as bytes; a file it streams.
    if len(content) >= _LARGE_BODY:
        return io.BytesIO(content)
    return content or None


def _extensions(reason: str | None) -> dict[str, Any]:
    if not reason:
        return _HTTP_11
    extensions = _REASONS.get(reason)
    if extensions is None:
        extensions = {**_HTTP_11, "reason_phrase": reason.encode("latin-1", "replace")}
        if len(_REASONS) < _CACHE_SIZE:
            _REASONS[reason] = extensions
    return extensions


def _as_httpx_error(
    exc: aiohttp.ClientError, request: httpx.Request, deadline: float | None
) -> httpx.TransportError:
    """The httpx exception of the same kind as an aiohttp failure (what the pipeline maps)."""
    detail = str(exc) or type(exc).__name__
    kind: type[httpx.TransportError]
    left = remaining(deadline)
    if isinstance(exc, TimeoutError) and left is not None and left <= 0:
        kind = DeadlineExceeded
    elif isinstance(exc, aiohttp.ConnectionTimeoutError):
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
