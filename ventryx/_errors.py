"""The exceptions raised by the SDK.

Every exception derives from ``VentryxError``::

    VentryxError
    ├── ConfigurationError          bad client settings (no API key, a malformed base URL)
    ├── InvalidInputError           bad arguments, caught before any request is sent
    ├── ClientClosedError           a call on a client after close()/aclose()
    ├── APIError                    anything that happened talking to the API
    │   ├── APIConnectionError      no usable response (refused, reset, truncated, bad gzip)
    │   │   └── APITimeoutError     an attempt, or the whole call, ran out of time
    │   ├── ResponseTooLargeError   the answer is over max_response_bytes (not retried)
    │   ├── APIResponseValidationError   a 2xx whose body is not what the API promises
    │   └── APIStatusError          a non-2xx answer; carries status, code, message, request id
    │       ├── BadRequestError             400
    │       ├── AuthenticationError         401
    │       ├── PermissionDeniedError       403
    │       ├── NotFoundError               404
    │       ├── ConflictError               409
    │       ├── PayloadTooLargeError        413
    │       ├── UnprocessableEntityError    422
    │       ├── RateLimitError              429 (or code ``rate_limit_exceeded``)
    │       └── InternalServerError         >= 500
    └── DriverError                 internal: sync code suspended where it never should

Messages never contain the API key: the request headers are not part of any message,
``response``/``request`` objects are kept as attributes, not rendered, and a key the server
echoes back in its error is replaced by ``[redacted]``. Server text in a message has its
control characters escaped (``\n``, ``\x1b``), so it cannot forge log lines.

Every exception pickles and unpickles (a ``ProcessPoolExecutor`` worker can raise one); the
pickle carries the request and response with the Authorization header redacted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from ventryx._logging import escape_control

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "ClientClosedError",
    "ConfigurationError",
    "ConflictError",
    "DriverError",
    "InternalServerError",
    "InvalidInputError",
    "NotFoundError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "RateLimitError",
    "ResponseTooLargeError",
    "UnprocessableEntityError",
    "VentryxError",
]


REDACTED = "[redacted]"
_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization"})


class VentryxError(Exception):
    """Base of every exception the SDK raises on purpose."""

    def __reduce__(self) -> tuple[Callable[..., object], tuple[Any, ...]]:
        # The keyword-only constructors cannot be called with ``args``: restore the fields
        # directly, with the request and response scrubbed of the key.
        state = {name: _scrubbed(value) for name, value in self.__dict__.items()}
        return (_restore, (type(self), self.args, state))


def _restore(cls: type[VentryxError], args: tuple[Any, ...], state: dict[str, Any]) -> VentryxError:
    exc = cls.__new__(cls)
    exc.args = args
    exc.__dict__.update(state)
    return exc


def secret_of(request: httpx.Request | None) -> str | None:
    """The API key a request carries (to redact it from what the server says)."""
    if request is None:
        return None
    value = request.headers.get("authorization", "")
    scheme, _, token = value.partition(" ")
    return token if scheme.lower() == "bearer" and len(token) >= 4 else None


def redact(text: str, secret: str | None) -> str:
    return text.replace(secret, REDACTED) if secret and secret in text else text


def redact_value(value: Any, secret: str | None) -> Any:
    """A JSON value with every string holding ``secret`` redacted (keys included)."""
    if not secret:
        return value
    if isinstance(value, str):
        return redact(value, secret)
    if isinstance(value, list):
        return [redact_value(v, secret) for v in value]  # pyright: ignore[reportUnknownVariableType]
    if isinstance(value, dict):
        return {
            redact_value(k, secret): redact_value(v, secret)
            for k, v in value.items()  # pyright: ignore[reportUnknownVariableType]
        }
    return value


def safe_request(request: httpx.Request, *, limit: int | None = None) -> httpx.Request:
    """A copy of ``request`` without the key (for pickles and kept problems)."""
    headers = [
        (name, REDACTED if name.lower() in _SECRET_HEADERS else value)
        for name, value in request.headers.multi_items()
    ]
    try:
        content = request.content
    except httpx.RequestNotRead:
        content = b""
    if limit is not None and len(content) > limit:
        content = content[:limit]
    copy = httpx.Request(request.method, request.url, headers=headers, content=content)
    copy.extensions = {k: v for k, v in request.extensions.items() if k != "trace"}
    return copy


def safe_response(response: httpx.Response, *, limit: int | None = None) -> httpx.Response:
    """A copy of ``response`` (read) over ``safe_request``, the key redacted from the body."""
    try:
        request: httpx.Request | None = response.request
    except RuntimeError:
        request = None
    secret = secret_of(request)
    try:
        content = response.content
    except httpx.ResponseNotRead:
        content = b""
    if secret:
        content = content.replace(secret.encode(), REDACTED.encode())
    if limit is not None and len(content) > limit:
        content = content[:limit]
    # The body is decoded already: a coding header would make httpx decode it again.
    headers = [
        (k, v)
        for k, v in response.headers.multi_items()
        if k.lower() not in ("content-encoding", "content-length")
    ]
    extensions = {
        k: v for k, v in response.extensions.items() if k in ("http_version", "reason_phrase")
    }
    return httpx.Response(
        response.status_code,
        headers=headers,
        content=content,
        request=None if request is None else safe_request(request, limit=limit),
        extensions=extensions,
    )


def _scrubbed(value: object) -> object:
    if isinstance(value, httpx.Request):
        return safe_request(value)
    if isinstance(value, httpx.Response):
        return safe_response(value)
    return value


class ClientClosedError(VentryxError, RuntimeError):
    """The client was closed (``close()``/``aclose()``/its ``with`` block ended); make a new one."""


class ConfigurationError(VentryxError, ValueError):
    """The client was configured with something it cannot use."""


class InvalidInputError(VentryxError, ValueError, TypeError):
    """An argument was rejected before any request was sent; ``param`` names it."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(f"{param}: {message}")
        self.param = param


class DriverError(VentryxError, RuntimeError):
    """The sync facade saw a coroutine suspend, which its design rules out (a bug: report it)."""


class APIError(VentryxError):
    """A request to the API failed; ``request`` is the request that was sent."""

    def __init__(self, message: str, *, request: httpx.Request | None) -> None:
        super().__init__(message)
        self.message = message
        self.request = request

    def compact(self, limit: int = 2048) -> None:
        """Keep at most ``limit`` bytes of each body (kept problems of a bulk run stay small)."""
        request = self.request
        if request is not None:
            self.request = safe_request(request, limit=limit)
        response: object = getattr(self, "response", None)
        if isinstance(response, httpx.Response):
            object.__setattr__(self, "response", safe_response(response, limit=limit))
        body: object = getattr(self, "body", None)
        if isinstance(body, str) and len(body) > limit:
            object.__setattr__(self, "body", f"{body[:limit]}... [{len(body) - limit} more]")
        elif body is not None and not isinstance(body, str) and len(repr(body)) > limit:
            object.__setattr__(self, "body", f"{repr(body)[:limit]}... [truncated]")


class APIConnectionError(APIError):
    """No usable response: the connection failed, was reset, or the body was cut short."""

    def __init__(
        self, message: str = "Connection error.", *, request: httpx.Request | None
    ) -> None:
        super().__init__(message, request=request)


class APITimeoutError(APIConnectionError):
    """The request timed out."""

    def __init__(
        self, message: str = "Request timed out.", *, request: httpx.Request | None
    ) -> None:
        super().__init__(message, request=request)


class ResponseTooLargeError(APIError):
    """The answer was over ``max_response_bytes`` (decoded), so reading it stopped.

    ``limit`` is the cap, ``status_code`` the answer's status. Not retried.
    """

    def __init__(
        self, message: str, *, request: httpx.Request | None, limit: int, status_code: int
    ) -> None:
        super().__init__(message, request=request)
        self.limit = limit
        self.status_code = status_code


class APIResponseValidationError(APIError):
    """A 2xx whose body does not fit the documented shape; ``body`` is the raw text."""

    def __init__(self, message: str, *, response: httpx.Response, body: str) -> None:
        super().__init__(message, request=response.request)
        self.response = response
        self.status_code = response.status_code
        self.body = body
        self.request_id: str | None = response.headers.get("x-request-id")


class APIStatusError(APIError):
    """The API answered with a non-2xx status.

    ``code`` is the machine-readable code from the error envelope, carried verbatim (``None``
    when the body is not the envelope, as with a proxy's HTML page); ``body`` is the parsed JSON
    or, failing that, the text.
    """

    def __init__(
        self,
        *,
        response: httpx.Response,
        code: str | None,
        message: str,
        body: Any,
        retry_after: float | None = None,
    ) -> None:
        request_id = response.headers.get("x-request-id")
        secret = secret_of(response.request)
        message = escape_control(redact(message, secret))
        code = None if code is None else redact(code, secret)
        label = f"[{escape_control(code)}] " if code else ""
        rid = f" (request id {escape_control(request_id)})" if request_id else ""
        super().__init__(
            f"HTTP {response.status_code} {label}{message}{rid}", request=response.request
        )
        self.message = message
        body = redact_value(body, secret)
        self.response = response
        self.status_code = response.status_code
        self.code = code
        self.body = body
        self.request_id = request_id
        self.retry_after = retry_after


class BadRequestError(APIStatusError):
    """400: the API rejected the request as malformed."""


class AuthenticationError(APIStatusError):
    """401: the API key is missing or not accepted."""


class PermissionDeniedError(APIStatusError):
    """403: the key may not do this."""


class NotFoundError(APIStatusError):
    """404: no such object (or no such route)."""


class ConflictError(APIStatusError):
    """409: typically ``idempotency_conflict``, the same key still in flight (retried)."""


class PayloadTooLargeError(APIStatusError):
    """413: the request body is over the API's limit."""


class UnprocessableEntityError(APIStatusError):
    """422: ``validation_error`` or ``idempotency_key_reused``."""


class RateLimitError(APIStatusError):
    """429 ``rate_limit_exceeded``; ``retry_after`` is the server's requested wait in seconds."""


class InternalServerError(APIStatusError):
    """A 5xx answer."""


_BY_STATUS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}


def status_error_class(status: int, code: str | None) -> type[APIStatusError]:
    """The exception class for a status (and the one code the docs name)."""
    if code == "rate_limit_exceeded":
        return RateLimitError
    if status >= 500:
        return InternalServerError
    return _BY_STATUS.get(status, APIStatusError)
