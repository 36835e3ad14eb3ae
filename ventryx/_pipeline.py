"""The request pipeline: build the request, retry it, map statuses to exceptions, decode models.

It awaits nothing but its shim, so under ``BlockingShim`` every coroutine here completes in a
single step (see ``ventryx_sync``).
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
import traceback
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, cast, overload
from urllib.parse import urlencode

import httpx

from ventryx._deadline import ACCEPT_ENCODING, DeadlineExceeded
from ventryx._errors import (
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    ClientClosedError,
    InvalidInputError,
    RateLimitError,
    status_error_class,
)
from ventryx._logging import escape_control, logger
from ventryx._options import (
    USER_AGENT,
    CallOptions,
    ClientOptions,
    RequestOptions,
    redact_userinfo,
)
from ventryx._retry import is_retryable, parse_retry_after
from ventryx._shim import BlockingShim, Shim
from ventryx._types import as_object
from ventryx._wire import Outgoing

if TYPE_CHECKING:
    import tenacity

    from ventryx._bulk._redis_gate import RedisRateGate
    from ventryx.models import RawResponse

__all__ = ["Pipeline", "Response", "encode_body", "error_from_response"]

_M = TypeVar("_M")
# What json.dumps(body, separators=(",", ":"), ensure_ascii=False, allow_nan=False) uses, made
# once: json.dumps builds a new encoder on every call that passes options.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _unencodable(value: object) -> object:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


# And the C function that encoder makes on each call, made once (where there is one), without
# the record of the objects being encoded that catches a cycle (one shared function could not
# keep it safely across threads). A body that could contain itself never reaches it: the key
# check before stops _MAX_DEPTH levels down, and such a body goes to _ENCODER, which checks.
_MAKE_ENCODER: Any = getattr(json.encoder, "c_make_encoder", None)
_ENCODE: Callable[[object, int], Sequence[str]] | None = (
    None
    if _MAKE_ENCODER is None
    else _MAKE_ENCODER(
        None, _unencodable, json.encoder.encode_basestring, None, ":", ",", False, False, False
    )
)
_DECODER = json.JSONDecoder()
_SCAN: Callable[[str, int], tuple[Any, int]] = getattr(_DECODER, "scan_once")  # noqa: B009 - not in the stubs
_IDEMPOTENT_BODY_METHODS = frozenset({"POST", "PATCH", "DELETE"})
_EMPTY_LENGTH_METHODS = frozenset({"POST", "PUT", "PATCH"})  # httpx sends Content-Length: 0


class Response:
    """A successful answer: its decoded JSON document and the HTTP side of it."""

    __slots__ = ("document", "raw")

    def __init__(self, document: Any, raw: RawResponse) -> None:
        self.document = document
        self.raw = raw


_URL_CACHE_SIZE = 64
_NO_QUERY: Mapping[str, Any] = {}


def new_idempotency_key() -> str:
    """A random key (128 bits) for one logical call."""
    return f"vx-{os.urandom(16).hex()}"


def _query_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _query_key(path: str, query: Mapping[str, object]) -> tuple[object, ...]:
    # The types too: True == 1 == 1.0, but they are written "true", "1" and "1.0".
    return (path, tuple(query.items()), tuple(map(type, query.values())))


def check_idempotency_key(key: object) -> str:
    if not isinstance(key, str) or not key or len(key) > 255:
        raise InvalidInputError(
            "idempotency_key", "must be a non-empty string of at most 255 characters"
        )
    if not key.isascii() or not key.isprintable():
        raise InvalidInputError("idempotency_key", "must be printable ASCII")
    return key


class Secret(str):
    """A header value printed as ``[redacted]`` (``repr``, ``str``, f-strings), sent as is.

    The merged headers of a request are a plain dict while it is built and sent; with the key
    held in one of these, a traceback's captured locals (``pytest -l``, rich, Sentry) show
    ``'[redacted]'`` instead.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return "'[redacted]'"

    def __str__(self) -> str:
        return "[redacted]"

    def __format__(self, spec: str) -> str:
        return "[redacted]"


_MAX_DEPTH = 200
_LEAVES = frozenset({str, int, float, bool, type(None)})  # nothing nested: no key to check
_STR = frozenset({str})


def _non_string_key(value: object, depth: int = 0) -> list[str] | None:
    """Where a dict nested in ``value`` has a key that is not a string (JSON would coerce it).

    ``None`` when there is none (no path is built on the way: that is the common case); else the
    offending key's description, then the steps to it, innermost first. ``_TooDeep`` past
    ``_MAX_DEPTH`` levels, where a value may contain itself.
    """
    if depth > _MAX_DEPTH:
        raise _TooDeep
    pairs: Iterable[tuple[object, object]]
    if isinstance(value, dict):
        mapping = cast("dict[object, object]", value)
        # The usual event data, flat with string keys, told in C: no loop.
        if _STR.issuperset(map(type, mapping)) and _LEAVES.issuperset(map(type, mapping.values())):
            return None
        pairs = mapping.items()
    elif isinstance(value, (list, tuple)):
        pairs = enumerate(cast("list[object]", value))
    else:
        return None
    keyed = isinstance(value, dict)
    for key, item in pairs:
        if keyed and not isinstance(key, str):
            return [f" has the key {key!r} ({type(key).__name__}), not a string"]
        if type(item) in _LEAVES:
            continue
        found = _non_string_key(item, depth + 1)
        if found:
            found.append(f"[{key!r}]")  # a list's index: [0]
            return found
    return None


class _TooDeep(Exception):
    """A body nested deeper than the key check goes: encoded with the cycle check."""


def encode_body(body: Mapping[str, Any]) -> bytes:
    checked = True
    for name, value in body.items():
        if type(value) in _LEAVES:
            continue
        try:
            found = _non_string_key(value)
        except _TooDeep:
            checked = False  # json.dumps reports a cycle, or the depth, itself
            continue
        if found:
            problem = name + "".join(reversed(found))
            # json.dumps would turn 1 and "1" into the same key: refuse instead of guessing.
            raise InvalidInputError(name, f"{problem}: JSON object keys must be strings")
    try:
        if _ENCODE is not None and checked:
            return "".join(_ENCODE(body, 0)).encode()
        return _ENCODER.encode(body).encode()
    except (TypeError, ValueError, RecursionError) as exc:
        # Name the top-level field that failed, not just the whole body.
        for name, value in body.items():
            try:
                json.dumps(value, ensure_ascii=False, allow_nan=False).encode()
            except (TypeError, ValueError, RecursionError) as inner:
                raise InvalidInputError(name, f"is not JSON-serialisable: {_why(inner)}") from None
        raise InvalidInputError("body", f"is not JSON-serialisable: {_why(exc)}") from None


def _why(exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return "nested too deeply (or it contains itself)"
    return str(exc)


def error_from_response(response: httpx.Response) -> APIStatusError:
    code: str | None = None
    body: Any
    message: str
    try:
        body = response.json()
    except (ValueError, RecursionError):  # RecursionError: JSON nested too deeply to decode
        body = response.text
        snippet = " ".join(body.split())[:200]
        ctype = response.headers.get("content-type", "unknown type")
        message = f"non-JSON error body ({ctype}): {snippet}" if snippet else "empty error body"
        if 300 <= response.status_code < 400:
            location = response.headers.get("location")
            where = f"to {redact_userinfo(location)[:500]!r}" if location else "without a Location"
            message = (
                f"redirect {where}, not followed: check base_url "
                f"(the request went to {_shown_url(response.request.url)})"
            )
    else:
        envelope = as_object(body)
        error = as_object(envelope.get("error")) if envelope is not None else None
        if error is not None:
            raw_code = error.get("code")
            code = raw_code if isinstance(raw_code, str) else None
            raw_message = error.get("message")
            message = raw_message if isinstance(raw_message, str) else response.reason_phrase
        else:
            message = f"error body without an 'error' object: {str(body)[:200]}"
    if response.status_code == 404:
        message += _route_hint(response.request)
    retry_after = parse_retry_after(response.headers)
    cls = status_error_class(response.status_code, code)
    return cls(response=response, code=code, message=message, body=body, retry_after=retry_after)


def _shown_url(url: httpx.URL) -> str:
    return escape_control(str(url.copy_with(query=None)))[:500]


def _route_hint(request: httpx.Request) -> str:
    """For a 404 on a path outside ``/v1``: the likely cause, a base URL without ``/v1``."""
    url = request.url
    if "/v1/" in f"{url.path}/":
        return ""
    root = f"{url.scheme}://{url.netloc.decode('ascii', 'replace')}"
    return (
        f" ({request.method} {_shown_url(url)} is outside /v1: is /v1 missing from base_url? "
        f"e.g. base_url={root + '/v1'!r})"
    )


def _host_port(request: httpx.Request) -> str:
    url = request.url
    port = url.port or (443 if url.scheme == "https" else 80)
    host = f"[{url.host}]" if ":" in url.host else url.host
    return f"{host}:{port}"


def _cleared(exc: BaseException) -> BaseException:
    """``exc`` with the locals of its (finished) frames cleared, down its cause chain.

    httpx's and httpcore's frames hold the request's headers (the key) as bytes; the SDK's
    exception keeps the original as ``__cause__`` for its type and message, not its locals.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if current.__traceback__ is not None:
            traceback.clear_frames(current.__traceback__)
        current = current.__cause__ or current.__context__
    return exc


class _OneChunk(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A request body as one chunk, iterated by plain iterators rather than generators.

    httpx's own body stream is an async generator; an attempt cancelled at its deadline while
    the body is being written leaves it suspended, and trio warns when it is collected.
    """

    __slots__ = ("_content",)

    def __init__(self, content: bytes) -> None:
        self._content = content

    def __iter__(self) -> Iterator[bytes]:
        return iter((self._content,))

    def __aiter__(self) -> AsyncIterator[bytes]:
        return _AsyncOnce(self._content)


class _AsyncOnce:
    __slots__ = ("_content",)

    def __init__(self, content: bytes | None) -> None:
        self._content = content

    def __aiter__(self) -> _AsyncOnce:
        return self

    async def __anext__(self) -> bytes:
        content, self._content = self._content, None
        if content is None:
            raise StopAsyncIteration
        return content


class Pipeline:
    """Sends requests for the resources of one client (and its ``with_options`` copies)."""

    def __init__(self, shim: Shim, options: ClientOptions) -> None:
        self.shim = shim
        self.options = options
        # Lower-case names: they are merged over httpx's (lower-case) client headers by key.
        self._headers = {
            "authorization": Secret(f"Bearer {options.api_key}"),
            "user-agent": USER_AGENT,
            "accept": "application/json",
            "accept-encoding": ACCEPT_ENCODING,
            **{name.lower(): value for name, value in options.default_headers.items()},
        }
        auth = self._headers["authorization"]
        if not isinstance(auth, Secret):  # str(Secret) is "[redacted]": never wrap twice
            self._headers["authorization"] = Secret(auth)
        self.defaults = CallOptions(options, {})  # the options of a call that passes none
        self._urls: dict[object, tuple[httpx.URL, str, str]] = {}
        self._merged_from: list[tuple[bytes, bytes, bytes]] | None = None
        self._merged: dict[str, str] = {}

    def with_options(self, options: ClientOptions) -> Pipeline:
        return Pipeline(self.shim, options)

    def call_options(self, options: RequestOptions) -> CallOptions:
        """A call's ``**options``, checked once (``TypeError`` for an unknown keyword)."""
        return CallOptions(self.options, options) if options else self.defaults

    @overload
    async def request(
        self,
        method: str,
        path: str,
        call: CallOptions,
        *,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
        model: None = None,
    ) -> Response: ...

    @overload
    async def request(
        self,
        method: str,
        path: str,
        call: CallOptions,
        *,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
        model: type[_M],
    ) -> _M: ...

    async def request(
        self,
        method: str,
        path: str,
        call: CallOptions,
        *,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
        model: type[_M] | None = None,
    ) -> Response | _M:
        """Send one logical call, with retries; return its decoded JSON, or its ``data`` as a
        ``model``, or raise."""
        started = time.monotonic()
        if self.shim.is_closed:
            raise ClientClosedError(
                "this client is closed (close()/aclose() or the end of its with block); "
                "make a new client"
            )
        call_timeout = self.options.call_timeout
        call_deadline = None if call_timeout is None else started + call_timeout
        per_attempt = call.attempt_total
        request = self.build_request(
            method, path, call, body=body, params=params, idempotency_key=idempotency_key
        )
        retries = call.max_retries
        attempts = 0
        gate = self.options.rate_gate
        limited = False  # the last attempt got a 429: with a shared gate, wait for a turn
        # The first attempt runs outside tenacity: most calls succeed, and they should not pay
        # for the retry machinery (nor, without a rate gate, for the closure of the retries).
        # A retryable failure hands over to tenacity for the rest.
        try:
            if gate is None:  # _attempt's steps, here: one coroutine less on every call
                sent = time.perf_counter()
                try:
                    answer = await self.shim.send(
                        request,
                        deadline=_attempt_deadline(per_attempt, call_deadline),
                        max_bytes=self.options.max_response_bytes,
                    )
                except _NO_ANSWER as exc:
                    raise _transport_error(exc, request, sent) from _cleared(exc)
                response = self._answer(request, answer, 1, sent)
            else:
                response = await self._gated_attempt(
                    request, 1, per_attempt, call_deadline, gate, limited=False
                )
        except (APIConnectionError, APIStatusError) as exc:
            if retries == 0 or not is_retryable(exc, self.options.retry_policy):
                raise
            first_failure = exc
            attempts = 1
            limited = gate is not None and isinstance(exc, RateLimitError)
        else:
            return response if model is None else self.decode(model, response)

        async def attempt() -> Response:
            nonlocal attempts, limited
            attempts += 1
            if gate is None:
                return await self._attempt(
                    request, attempts, _attempt_deadline(per_attempt, call_deadline)
                )
            try:
                return await self._gated_attempt(
                    request, attempts, per_attempt, call_deadline, gate, limited=limited
                )
            except RateLimitError:
                limited = True  # and so on for the rest of the call
                raise

        # tenacity is loaded only when a call first fails in a retryable way.
        from ventryx._retrying import make_retrying  # noqa: PLC0415

        retrying = make_retrying(
            max_retries=retries,
            policy=self.options.retry_policy,
            sleep=self.shim.sleep,
            before_sleep=_log_retry(request),
            deadline=call_deadline,
        )
        retried: Response = await retrying(_replay_then(first_failure, attempt))
        return retried if model is None else self.decode(model, retried)

    async def _gated_attempt(
        self,
        request: httpx.Request,
        number: int,
        per_attempt: float | None,
        call_deadline: float | None,
        gate: RedisRateGate,
        *,
        limited: bool,
    ) -> Response:
        """One attempt under a shared rate gate: after a 429, wait for a turn first."""
        blocking = isinstance(self.shim, BlockingShim)
        if limited:
            wait = await gate.call_turn(blocking=blocking)
            if call_deadline is not None:  # the turn never outlasts the call's budget
                wait = min(wait, max(0.0, call_deadline - time.monotonic()))
            await self.shim.sleep(wait)
        try:
            return await self._attempt(
                request, number, _attempt_deadline(per_attempt, call_deadline)
            )
        except RateLimitError as exc:
            # Its pause is shared with every client of the gate, on any host.
            await gate.call_limited(exc.retry_after, blocking=blocking)
            raise

    def build_request(
        self,
        method: str,
        path: str,
        call: CallOptions | None = None,
        *,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Outgoing:
        """The request of one logical call, exactly as every attempt of it is sent.

        Built directly rather than through ``client.build_request`` or ``httpx.Request``,
        which re-parse the URL and the headers on every call (``_wire.py``; the URLs, query
        included, and the merged default headers are cached per client).
        The shim's default headers and query parameters (an httpx client's own) still apply;
        cookies do not (the API sets none).
        """
        shim = self.shim
        call = self.defaults if call is None else call
        headers = self._base_headers(shim.headers)
        if call.extra_headers:
            for name, value in call.extra_headers.items():
                lower = name.lower()
                if lower == "idempotency-key" and method in _IDEMPOTENT_BODY_METHODS:
                    if idempotency_key is not None and value != idempotency_key:
                        raise InvalidInputError(
                            "extra_headers",
                            "its Idempotency-Key differs from idempotency_key=; pass the key "
                            "once, as idempotency_key=",
                        )
                    idempotency_key = value
                headers[lower] = Secret(value) if lower == "authorization" else value
        content = b""
        if body is not None:
            content = encode_body(body)
            headers["content-type"] = "application/json"
        if method in _IDEMPOTENT_BODY_METHODS:
            headers["idempotency-key"] = (
                new_idempotency_key()
                if idempotency_key is None
                else check_idempotency_key(idempotency_key)
            )
        query: Mapping[str, Any] = params or _NO_QUERY  # only read: no copy unless merged
        if self.options.default_query or call.extra_query:
            merged: dict[str, Any] = dict(self.options.default_query)
            if params:
                merged.update(params)
            if call.extra_query:
                extra = call.extra_query
                paged = params is not None and "page" in params
                for name in extra:
                    if (params and name in params) or (paged and name == "per_page"):
                        raise InvalidInputError(
                            "extra_query",
                            f"{name!r} is set by the method itself (a pager walks the pages); "
                            f"pass {name}= to the method instead",
                        )
                merged.update(extra)
            query = merged
        url, text, host = self._url(path, query)
        if shim.params:
            url = url.copy_merge_params(shim.params)
            text = str(url)
        # The headers as httpx.Request(content=...) would make them: Host first, then the
        # given ones, Content-Length after them (before them for an empty POST, PUT or PATCH).
        pairs: list[tuple[str, str]] = [] if "host" in headers else [("host", host)]
        length = "content-length" not in headers
        if content and length:
            pairs += headers.items()
            pairs.append(("content-length", str(len(content))))
        else:
            if length and method in _EMPTY_LENGTH_METHODS and "transfer-encoding" not in headers:
                pairs.append(("content-length", "0"))
            pairs += headers.items()
        return Outgoing(
            method,
            url,
            text,
            pairs,
            content=content,
            stream=_OneChunk(content) if content else None,
            extensions={"timeout": call.timeout},
        )

    def _base_headers(self, shim_headers: httpx.Headers) -> dict[str, str]:
        """A fresh dict of the shim's default headers with the client's over them.

        The merge is kept for as long as the shim's headers stay the same (an injected
        httpx client's may be changed between calls).
        """
        # httpx.Headers keeps its items in this list, changed in place or replaced; compared
        # with a copy, it tells a change without building the .raw list on every call.
        items: list[tuple[bytes, bytes, bytes]] | None = getattr(shim_headers, "_list", None)
        if items is None or items != self._merged_from:
            merged: dict[str, str] = dict(shim_headers.multi_items())
            merged.update(self._headers)
            self._merged_from, self._merged = (None if items is None else list(items)), merged
        return dict(self._merged)

    def _url(self, path: str, query: Mapping[str, Any]) -> tuple[httpx.URL, str, str]:
        """The URL of ``path`` and ``query``, parsed, as httpx writes it (encoded), and the
        ``Host`` header httpx would give it."""
        key: object = _query_key(path, query) if query else path  # no query: the path alone
        try:
            cached = self._urls.get(key)
        except TypeError:  # a value that is not hashable: str() of it goes in the query
            cached, key = None, ()
        if cached is None:
            given = self.options.base_url + path
            if query:
                pairs = [(k, _query_value(v)) for k, v in query.items()]
                given = f"{given}?{urlencode(pairs)}"
            url = httpx.URL(given)
            cached = (url, str(url), url.netloc.decode("ascii"))
            if key and len(self._urls) < _URL_CACHE_SIZE:  # fixed paths and queries hit
                self._urls[key] = cached
        return cached

    async def send_once(self, request: httpx.Request, attempt: int = 1) -> Response:
        """One attempt without retries: the decoded answer, or the mapped exception.

        For callers that own the retry decisions (bulk emission shares one rate gate). The
        attempt is bounded by the client's timeout as a whole (see ``attempt_total``).
        """
        total = self.defaults.attempt_total
        deadline = None if total is None else time.monotonic() + total
        return await self._attempt(request, attempt, deadline)

    async def _attempt(
        self, request: httpx.Request, number: int, deadline: float | None = None
    ) -> Response:
        started = time.perf_counter()
        try:
            response = await self.shim.send(
                request, deadline=deadline, max_bytes=self.options.max_response_bytes
            )
        except _NO_ANSWER as exc:
            raise _transport_error(exc, request, started) from _cleared(exc)
        return self._answer(request, response, number, started)

    def _answer(
        self, request: httpx.Request, response: httpx.Response, number: int, started: float
    ) -> Response:
        """The attempt's answer decoded, or the exception its status maps to."""
        if logger.isEnabledFor(logging.DEBUG):
            rid = response.headers.get("x-request-id")
            logger.debug(
                "%s %s -> %s (request id %s, attempt %d, %.1f ms)",
                request.method,
                escape_control(request.url.path),
                response.status_code,
                None if rid is None else escape_control(rid),
                number,
                (time.perf_counter() - started) * 1000,
            )
        status = response.status_code
        if not 200 <= status <= 299:  # response.is_success
            raise error_from_response(response)
        try:
            document = _json_of(response)
        except (ValueError, RecursionError):  # RecursionError: JSON nested too deeply to decode
            raise APIResponseValidationError(
                f"HTTP {status} with a body that is not JSON",
                response=response,
                body=response.text,
            ) from None
        return Response(document, _lazy().raw_response(response, number))

    def decode(self, cls: type[_M], response: Response, *, key: str = "data") -> _M:
        """``document[key]`` as a ``cls``, with ``raw_response`` attached where the model has it."""
        lazy = _lazy()
        document = response.document
        if not isinstance(document, dict) or key not in document:
            raise self.invalid(response, f"the response has no {key!r} member")
        try:
            if key == "data":
                return lazy.structure_answer(document[key], cls, response.raw)
            return lazy.structure(document[key], cls, path=key)
        except lazy.conversion_error as exc:
            raise self.invalid(response, f"{cls.__name__} does not fit: {exc}") from None

    @staticmethod
    def invalid(response: Response, problem: str) -> APIResponseValidationError:
        http = response.raw.http_response
        return APIResponseValidationError(
            f"Unexpected response from {http.request.method} {http.request.url.path}: {problem}",
            response=http,
            body=http.text,
        )


class _Lazy:
    """What the pipeline needs of the models and the converter, loaded on the first answer.

    Not on ``import ventryx`` (attrs, cattrs); and not by an import statement on every call.
    """

    __slots__ = ("conversion_error", "raw_response", "structure", "structure_answer")

    def __init__(self) -> None:
        from ventryx._converter import (  # noqa: PLC0415
            ConversionError,
            raw_response,
            structure,
            structure_answer,
        )

        self.conversion_error = ConversionError
        self.raw_response = raw_response  # RawResponse(http_response=, attempts=), positionally
        self.structure = structure
        self.structure_answer = structure_answer


_LAZY: list[_Lazy] = []


def _lazy() -> _Lazy:
    if not _LAZY:
        _LAZY.append(_Lazy())
    return _LAZY[0]


_NO_ANSWER = (httpx.TransportError, httpx.DecodingError)  # timeouts are TransportErrors


def _transport_error(
    exc: httpx.TransportError | httpx.DecodingError, request: httpx.Request, started: float
) -> APIConnectionError:
    """The SDK's error for a failed attempt that got no answer (raised from ``_cleared(exc)``)."""
    if isinstance(exc, httpx.TimeoutException):
        if isinstance(exc, DeadlineExceeded):
            elapsed = time.perf_counter() - started
            why = f"no complete answer within {elapsed:.2f} s (timeout= / call_timeout=)"
        else:
            why = type(exc).__name__
        return APITimeoutError(
            f"Request to {_host_port(request)} timed out: {why}.", request=request
        )
    if isinstance(exc, httpx.DecodingError):
        return APIConnectionError(
            f"Unreadable answer from {_host_port(request)}: {escape_control(str(exc))[:300]}",
            request=request,
        )
    detail = escape_control(str(exc) or type(exc).__name__)[:300]
    return APIConnectionError(
        f"Connection error ({_host_port(request)}): {detail}", request=request
    )


def _json_of(response: httpx.Response) -> Any:
    """``response.json()``: ``json.loads`` of the body, without its encoding detection for the
    usual answer, an object in UTF-8 (``{`` then no NUL byte: no BOM, not UTF-16/32)."""
    content = response.content
    if content[:1] == b"{" and content[1:2] != b"\x00":
        text = content.decode("utf-8", "surrogatepass")
        # The decoder's scanner itself: decode() looks for whitespace around the document
        # with a regular expression, twice, and the API's answers have none.
        try:
            document, end = _SCAN(text, 0)
            if end == len(text):
                return document
        except StopIteration:  # no value there (a "{" always starts one): decode() says so
            pass
        return _DECODER.decode(text)  # whitespace after it, or something that is not JSON
    return response.json()


def _attempt_deadline(per_attempt: float | None, call_deadline: float | None) -> float | None:
    """When the attempt starting now must be done: its own bound, within the call's."""
    if per_attempt is None:
        return call_deadline
    deadline = time.monotonic() + per_attempt
    return deadline if call_deadline is None else min(deadline, call_deadline)


def _replay_then(first: BaseException, attempt: Any) -> Any:
    """A callable for tenacity whose first call re-raises the failure already seen."""
    pending: list[BaseException] = [first]

    async def call() -> Response:
        if pending:
            raise pending.pop()
        result: Response = await attempt()
        return result

    return call


def _log_retry(request: httpx.Request) -> Any:
    def before_sleep(state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        wait = state.upcoming_sleep
        logger.info(
            "%s %s failed (%s); retrying in %.2f s (attempt %d)",
            request.method,
            escape_control(request.url.path),
            _summary(exc),
            wait if math.isfinite(wait) else -1.0,
            state.attempt_number,
        )

    return before_sleep


def _summary(exc: BaseException | None) -> str:
    if isinstance(exc, APIStatusError):
        text = f"HTTP {exc.status_code} {exc.code or ''}, request id {exc.request_id}"
        return escape_control(text.replace("  ", " "))
    return type(exc).__name__ if exc is not None else "unknown"
