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
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlencode

import httpx

from ventryx._errors import (
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    InvalidInputError,
    status_error_class,
)
from ventryx._logging import logger
from ventryx._options import (
    USER_AGENT,
    ClientOptions,
    check_headers,
    check_max_retries,
    check_query,
    resolve_timeout,
)
from ventryx._retry import is_retryable, parse_retry_after
from ventryx._shim import Shim
from ventryx._types import NOT_GIVEN, Headers, NotGiven, Query, TimeoutTypes, as_object

if TYPE_CHECKING:
    import tenacity

    from ventryx.models import RawResponse

__all__ = ["Pipeline", "Response", "encode_body", "error_from_response", "timeout_extension"]

_M = TypeVar("_M")
_IDEMPOTENT_BODY_METHODS = frozenset({"POST", "PATCH", "DELETE"})


class Response:
    """A successful answer: its decoded JSON document and the HTTP side of it."""

    __slots__ = ("document", "raw")

    def __init__(self, document: Any, raw: RawResponse) -> None:
        self.document = document
        self.raw = raw


_URL_CACHE_SIZE = 64


def new_idempotency_key() -> str:
    """A random key (128 bits) for one logical call."""
    return f"vx-{os.urandom(16).hex()}"


def _query_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def timeout_extension(timeout: httpx.Timeout | None) -> dict[str, float | None]:
    return (timeout or httpx.Timeout(None)).as_dict()


def check_idempotency_key(key: object) -> str:
    if not isinstance(key, str) or not key or len(key) > 255:
        raise InvalidInputError(
            "idempotency_key", "must be a non-empty string of at most 255 characters"
        )
    if not key.isascii() or not key.isprintable():
        raise InvalidInputError("idempotency_key", "must be printable ASCII")
    return key


def encode_body(body: Mapping[str, Any]) -> bytes:
    try:
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        # Name the top-level field that failed, not just the whole body.
        for name, value in body.items():
            try:
                json.dumps(value, ensure_ascii=False, allow_nan=False).encode()
            except (TypeError, ValueError) as inner:
                raise InvalidInputError(name, f"is not JSON-serialisable: {inner}") from None
        raise InvalidInputError("body", f"is not JSON-serialisable: {exc}") from None


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
    retry_after = parse_retry_after(response.headers)
    cls = status_error_class(response.status_code, code)
    return cls(response=response, code=code, message=message, body=body, retry_after=retry_after)


class Pipeline:
    """Sends requests for the resources of one client (and its ``with_options`` copies)."""

    def __init__(self, shim: Shim, options: ClientOptions) -> None:
        self.shim = shim
        self.options = options
        # Lower-case names: they are merged over httpx's (lower-case) client headers by key.
        self._headers = {
            "authorization": f"Bearer {options.api_key}",
            "user-agent": USER_AGENT,
            "accept": "application/json",
            **{name.lower(): value for name, value in options.default_headers.items()},
        }
        self._timeout = timeout_extension(options.timeout)
        self._urls: dict[str, httpx.URL] = {}

    def with_options(self, options: ClientOptions) -> Pipeline:
        return Pipeline(self.shim, options)

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        timeout: TimeoutTypes | NotGiven,
        max_retries: int | None,
        extra_headers: Headers | None,
        extra_query: Query | None,
        idempotency_key: str | None = None,
    ) -> Response:
        """Send one logical call, with retries; return its decoded JSON or raise."""
        request = self.build_request(
            method,
            path,
            body=body,
            params=params,
            timeout=timeout,
            extra_headers=extra_headers,
            extra_query=extra_query,
            idempotency_key=idempotency_key,
        )
        retries = (
            self.options.max_retries if max_retries is None else check_max_retries(max_retries)
        )
        attempts = 0

        async def attempt() -> Response:
            nonlocal attempts
            attempts += 1
            return await self._attempt(request, attempts)

        if retries == 0:
            return await attempt()
        # The first attempt runs outside tenacity: most calls succeed, and they should not pay
        # for the retry machinery. A retryable failure hands over to tenacity for the rest.
        try:
            return await attempt()
        except (APIConnectionError, APIStatusError) as exc:
            if not is_retryable(exc, self.options.retry_policy):
                raise
            first_failure = exc
        # tenacity is loaded only when a call first fails in a retryable way.
        from ventryx._retrying import make_retrying  # noqa: PLC0415

        retrying = make_retrying(
            max_retries=retries,
            policy=self.options.retry_policy,
            sleep=self.shim.sleep,
            before_sleep=_log_retry(request),
        )
        return await retrying(_replay_then(first_failure, attempt))

    def build_request(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        timeout: TimeoutTypes | NotGiven = NOT_GIVEN,
        extra_headers: Headers | None = None,
        extra_query: Query | None = None,
        idempotency_key: str | None = None,
    ) -> httpx.Request:
        """The request of one logical call, exactly as every attempt of it is sent.

        Built directly rather than through ``client.build_request``, which re-parses the URL
        and re-merges headers and cookies on every call (about 35 us, a tenth of a request).
        The shim's default headers and query parameters (an httpx client's own) still apply;
        cookies do not (the API sets none).
        """
        shim = self.shim
        headers = dict(shim.headers.multi_items())
        headers.update(self._headers)
        if extra_headers:
            for name, value in check_headers(extra_headers, "extra_headers").items():
                headers[name.lower()] = value
        content: bytes | None = None
        if body is not None:
            content = encode_body(body)
            headers["content-type"] = "application/json"
        if method in _IDEMPOTENT_BODY_METHODS:
            headers["idempotency-key"] = (
                new_idempotency_key()
                if idempotency_key is None
                else check_idempotency_key(idempotency_key)
            )
        query: dict[str, Any] = dict(self.options.default_query)
        if params:
            query.update(params)
        if extra_query:
            query.update(check_query(extra_query, "extra_query"))
        url = self._url(path, query)
        if shim.params:
            url = url.copy_merge_params(shim.params)
        extension = (
            self._timeout
            if isinstance(timeout, NotGiven)
            else timeout_extension(resolve_timeout(timeout, self.options.timeout))
        )
        return httpx.Request(
            method, url, content=content, headers=headers, extensions={"timeout": extension}
        )

    def _url(self, path: str, query: Mapping[str, Any]) -> httpx.URL:
        if query:
            pairs = [(k, _query_value(v)) for k, v in query.items()]
            return httpx.URL(f"{self.options.base_url}{path}?{urlencode(pairs)}")
        url = self._urls.get(path)
        if url is None:
            url = httpx.URL(self.options.base_url + path)
            if len(self._urls) < _URL_CACHE_SIZE:  # fixed paths hit; ids may not
                self._urls[path] = url
        return url

    async def send_once(self, request: httpx.Request, attempt: int = 1) -> Response:
        """One attempt without retries: the decoded answer, or the mapped exception.

        For callers that own the retry decisions (bulk emission shares one rate gate).
        """
        return await self._attempt(request, attempt)

    async def _attempt(self, request: httpx.Request, number: int) -> Response:
        started = time.perf_counter()
        try:
            response = await self.shim.send(request)
        except httpx.TimeoutException as exc:
            raise APITimeoutError(
                f"Request timed out ({type(exc).__name__}).", request=request
            ) from exc
        except httpx.TransportError as exc:
            detail = str(exc) or type(exc).__name__
            raise APIConnectionError(f"Connection error: {detail}", request=request) from exc
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "%s %s -> %s (request id %s, attempt %d, %.1f ms)",
                request.method,
                request.url.path,
                response.status_code,
                response.headers.get("x-request-id"),
                number,
                (time.perf_counter() - started) * 1000,
            )
        if not response.is_success:
            raise error_from_response(response)
        try:
            document = response.json()
        except (ValueError, RecursionError):  # RecursionError: JSON nested too deeply to decode
            raise APIResponseValidationError(
                f"HTTP {response.status_code} with a body that is not JSON",
                response=response,
                body=response.text,
            ) from None
        # The models (and attrs) load on the first answer, not on `import ventryx`.
        from ventryx.models import RawResponse  # noqa: PLC0415

        return Response(document, RawResponse(http_response=response, attempts=number))

    def decode(self, cls: type[_M], response: Response, *, key: str = "data") -> _M:
        """``document[key]`` as a ``cls``, with ``raw_response`` attached where the model has it."""
        from ventryx._converter import ConversionError, structure, with_raw_response  # noqa: PLC0415

        document = response.document
        if not isinstance(document, dict) or key not in document:
            raise self.invalid(response, f"the response has no {key!r} member")
        try:
            value = structure(document[key], cls, path=key)
        except ConversionError as exc:
            raise self.invalid(response, f"{cls.__name__} does not fit: {exc}") from None
        return with_raw_response(value, response.raw) if key == "data" else value

    @staticmethod
    def invalid(response: Response, problem: str) -> APIResponseValidationError:
        http = response.raw.http_response
        return APIResponseValidationError(
            f"Unexpected response from {http.request.method} {http.request.url.path}: {problem}",
            response=http,
            body=http.text,
        )


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
            request.url.path,
            _summary(exc),
            wait if math.isfinite(wait) else -1.0,
            state.attempt_number,
        )

    return before_sleep


def _summary(exc: BaseException | None) -> str:
    if isinstance(exc, APIStatusError):
        return f"HTTP {exc.status_code} {exc.code or ''}, request id {exc.request_id}".replace(
            "  ", " "
        )
    return type(exc).__name__ if exc is not None else "unknown"
