"""The exceptions raised by the SDK.

Every exception derives from ``VentryxError``::

    VentryxError
    ├── ConfigurationError          bad client settings (no API key, a malformed base URL)
    ├── InvalidInputError           bad arguments, caught before any request is sent
    ├── APIError                    anything that happened talking to the API
    │   ├── APIConnectionError      no usable response (refused, reset, truncated)
    │   │   └── APITimeoutError
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

Messages never contain the API key: the request headers are not part of any message, and
``response``/``request`` objects are kept as attributes, not rendered.
"""

from __future__ import annotations

from typing import Any

import httpx

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "ConfigurationError",
    "ConflictError",
    "DriverError",
    "InternalServerError",
    "InvalidInputError",
    "NotFoundError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "RateLimitError",
    "UnprocessableEntityError",
    "VentryxError",
]


class VentryxError(Exception):
    """Base of every exception the SDK raises on purpose."""


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
        label = f"[{code}] " if code else ""
        rid = f" (request id {request_id})" if request_id else ""
        super().__init__(
            f"HTTP {response.status_code} {label}{message}{rid}", request=response.request
        )
        self.message = message
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
