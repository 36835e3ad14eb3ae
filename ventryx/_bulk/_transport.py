"""The optional fast transport for bulk emission: aiohttp, natively (asyncio only).

httpx's own pool slows down as concurrency rises (DESIGN.md section 3). Going through httpx
over aiohttp (``httpx-aiohttp``) fixes the pool but still builds an ``httpx.Response``, reads
it through httpx's streams and extracts cookies for every event; measured at concurrency 64
that layer cost more than the whole raw aiohttp round trip. So the requests are still built by
``Pipeline.build_request`` (same URL, headers, idempotency key, body bytes and timeout), sent
with ``aiohttp.ClientSession`` directly, and an ``httpx.Response`` is built only when an answer
is not a readable 2xx, to map it to the SDK's exceptions through the pipeline's own code.
Imported only when asked for, so ``import ventryx`` never loads aiohttp.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import TYPE_CHECKING, Any

import httpx

from ventryx._converter import ConversionError, structure
from ventryx._errors import (
    APIConnectionError,
    APIResponseValidationError,
    APITimeoutError,
    ConfigurationError,
)
from ventryx._logging import logger
from ventryx._options import ClientOptions
from ventryx._pipeline import (
    Pipeline,
    Response,
    check_idempotency_key,
    encode_body,
    error_from_response,
    timeout_extension,
)
from ventryx._shim import AsyncShim
from ventryx.models import Event, RawResponse

if TYPE_CHECKING:
    import aiohttp

__all__ = ["AiohttpSender"]

# What aiohttp itself decodes, whatever optional codecs httpx would advertise.
_ACCEPT_ENCODING = "gzip, deflate"
# Response headers that no longer describe the body once aiohttp has decoded it.
_DECODED = frozenset({b"content-encoding", b"content-length"})


class _Unused(httpx.AsyncBaseTransport):
    """The transport of the client that only builds requests; nothing is sent through it."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        raise RuntimeError("the bulk aiohttp pipeline sends through aiohttp, not httpx")


class AiohttpSender:
    """Builds requests with a pipeline, sends them with one aiohttp session; ``aclose`` after."""

    def __init__(self, options: ClientOptions, concurrency: int) -> None:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            raise ConfigurationError(
                "transport='aiohttp' needs asyncio (aiohttp does not run on trio); "
                "use the default transport, which works on both"
            ) from None
        try:
            import aiohttp  # noqa: PLC0415 - optional extra, lazily
        except ImportError:
            raise ConfigurationError(
                "transport='aiohttp' needs the aiohttp extra: pip install 'ventryx[aiohttp]'"
            ) from None
        # A client for ``build_request`` only: httpx's default headers, no pool, no TLS setup.
        client = httpx.AsyncClient(transport=_Unused(), timeout=options.timeout)
        self.pipeline = Pipeline(AsyncShim(client, owned=True), options)
        timeout = timeout_extension(options.timeout)
        limits = httpx.Limits(max_connections=max(concurrency, 1))
        ssl: Any = True
        if str(options.base_url).startswith("https:"):
            ssl = httpx.create_ssl_context()  # the same trust store as the default transport
        connector = aiohttp.TCPConnector(
            limit=max(concurrency, 1), keepalive_timeout=limits.keepalive_expiry, ssl=ssl
        )
        self._session: aiohttp.ClientSession = aiohttp.ClientSession(
            connector=connector,
            # As httpx-aiohttp maps httpx's timeout; requests all use the client's timeout.
            timeout=aiohttp.ClientTimeout(
                total=None,
                sock_connect=timeout.get("connect"),
                sock_read=timeout.get("read"),
                connect=timeout.get("pool"),
            ),
            auto_decompress=True,
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
        )
        self._timeout_errors: tuple[type[BaseException], ...] = (
            asyncio.TimeoutError,
            aiohttp.ServerTimeoutError,
        )
        self._client_error: type[BaseException] = aiohttp.ClientError
        self._template: httpx.Request | None = None
        self._url = ""
        self._path = ""
        self._base_headers: dict[str, str] = {}

    async def aclose(self) -> None:
        await self._session.close()
        await self.pipeline.shim.aclose()

    def prepare(self, body: dict[str, Any], key: str) -> _Prepared:
        """The body bytes and headers ``build_request`` gives this event, without its cost.

        Only the body and the key vary between the events of a run, so the request of the
        first is the template of the rest; the full ``httpx.Request`` of an event is built
        (by ``build_request`` itself) only when an answer needs mapping to an exception.
        """
        template = self._template
        if template is None:
            template = self.pipeline.build_request(
                "POST", "/events", body=body, idempotency_key=key
            )
            self._template = template
            self._url = str(template.url)
            self._path = template.url.path
            # aiohttp frames each body itself: the template's length is not the next event's.
            self._base_headers = {
                name: value
                for name, value in template.headers.items()
                if name not in ("content-length", "transfer-encoding")
            }
            self._base_headers["accept-encoding"] = _ACCEPT_ENCODING
        check_idempotency_key(key)
        return _Prepared(body, key, encode_body(body))

    def request_of(self, prepared: _Prepared) -> httpx.Request:
        """The ``httpx.Request`` the pipeline builds for this event (for errors)."""
        return self.pipeline.build_request(
            "POST", "/events", body=prepared.body, idempotency_key=prepared.key
        )

    async def send(self, prepared: _Prepared, attempt: int) -> str:
        """One attempt: the id of the event created, or the SDK's exception for the answer."""
        headers = self._base_headers.copy()
        headers["idempotency-key"] = prepared.key
        started = time.perf_counter()
        try:
            async with self._session.post(
                self._url,
                data=prepared.content,
                headers=headers,
                allow_redirects=False,
            ) as answer:
                status = answer.status
                body = await answer.read()
                raw_headers = answer.raw_headers
                reason = answer.reason
        except self._timeout_errors as exc:
            raise APITimeoutError(
                f"Request timed out ({type(exc).__name__}).", request=self.request_of(prepared)
            ) from exc
        except self._client_error as exc:
            detail = str(exc) or type(exc).__name__
            raise APIConnectionError(
                f"Connection error: {detail}", request=self.request_of(prepared)
            ) from exc
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "POST %s -> %s (request id %s, attempt %d, %.1f ms)",
                self._path,
                status,
                _header(raw_headers, b"x-request-id"),
                attempt,
                (time.perf_counter() - started) * 1000,
            )
        document: Any = _UNREADABLE
        if 200 <= status < 300:
            with contextlib.suppress(ValueError, RecursionError):
                document = json.loads(body)
            if isinstance(document, dict) and "data" in document:
                try:
                    event = structure(document["data"], Event, path="data")
                except ConversionError:
                    pass
                else:
                    return event.id
        # Not a readable 2xx: the pipeline's own code names the error, from an httpx.Response.
        response = _http_response(self.request_of(prepared), status, raw_headers, reason, body)
        if status < 200 or status >= 300:
            raise error_from_response(response)
        if document is _UNREADABLE:
            raise APIResponseValidationError(
                f"HTTP {status} with a body that is not JSON",
                response=response,
                body=response.text,
            )
        raw = RawResponse(http_response=response, attempts=attempt)
        return self.pipeline.decode(Event, Response(document, raw)).id


_UNREADABLE = object()


class _Prepared:
    """One event's body, key and encoded body, as all its attempts send them."""

    __slots__ = ("body", "content", "key")

    def __init__(self, body: dict[str, Any], key: str, content: bytes) -> None:
        self.body = body
        self.key = key
        self.content = content


def _header(raw_headers: Any, name: bytes) -> str | None:
    for key, value in raw_headers:
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


def _http_response(
    request: httpx.Request,
    status: int,
    raw_headers: tuple[tuple[bytes, bytes], ...],
    reason: str | None,
    body: bytes,
) -> httpx.Response:
    extensions: dict[str, Any] = {"http_version": b"HTTP/1.1"}
    if reason:
        extensions["reason_phrase"] = reason.encode()
    headers = [(k, v) for k, v in raw_headers if k.lower() not in _DECODED]
    return httpx.Response(
        status, headers=headers, content=body, request=request, extensions=extensions
    )
