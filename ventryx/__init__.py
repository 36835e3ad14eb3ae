"""ventryx: the Python SDK for the Ventryx workflow-automation API.

``AsyncVentryx`` is the async client (asyncio and trio); ``ventryx_sync.Ventryx`` is the same
client for plain blocking code. Models and exceptions are shared by both.
"""

from typing import TYPE_CHECKING, Any

from ventryx._client import AsyncVentryx
from ventryx._errors import (
    APIConnectionError,
    APIError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ClientClosedError,
    ConfigurationError,
    ConflictError,
    DriverError,
    InternalServerError,
    InvalidInputError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitError,
    ResponseTooLargeError,
    UnprocessableEntityError,
    VentryxError,
)
from ventryx._options import InsecureBaseURLWarning
from ventryx._pagination import AsyncPage, AsyncPager
from ventryx._retry import RetryPolicy
from ventryx._types import NOT_GIVEN, NotGiven
from ventryx._version import __version__

if TYPE_CHECKING:
    from ventryx._bulk._redis_gate import RedisRateGate
    from ventryx._bulk._results import (
        BulkProgress,
        BulkSummary,
        BulkTransport,
        EventInput,
        EventOutcome,
        NewEvent,
        OutcomeStatus,
    )
    from ventryx._emitter._async import AsyncEmitter, EmitterClosedError, EmitterStats
    from ventryx._emitter._store import DeadLetter, OnFull, OutboxFullError
    from ventryx.models import (
        DeletedWorkflow,
        Event,
        PageMeta,
        RawResponse,
        Step,
        Trigger,
        Workflow,
    )

# The models, the bulk and the emitter names are attrs classes: they load on first use, so that
# `import ventryx` does not pay for attrs (about a fifth of its import time).
_LAZY: dict[str, str] = {
    "AsyncEmitter": "ventryx._emitter._async",
    "BulkProgress": "ventryx._bulk._results",
    "BulkSummary": "ventryx._bulk._results",
    "BulkTransport": "ventryx._bulk._results",
    "DeadLetter": "ventryx._emitter._store",
    "DeletedWorkflow": "ventryx.models",
    "EmitterClosedError": "ventryx._emitter._async",
    "EmitterStats": "ventryx._emitter._async",
    "Event": "ventryx.models",
    "EventInput": "ventryx._bulk._results",
    "EventOutcome": "ventryx._bulk._results",
    "NewEvent": "ventryx._bulk._results",
    "OnFull": "ventryx._emitter._store",
    "OutboxFullError": "ventryx._emitter._store",
    "OutcomeStatus": "ventryx._bulk._results",
    "PageMeta": "ventryx.models",
    "RawResponse": "ventryx.models",
    "RedisRateGate": "ventryx._bulk._redis_gate",
    "Step": "ventryx.models",
    "Trigger": "ventryx.models",
    "Workflow": "ventryx.models",
}

__all__ = [
    "NOT_GIVEN",
    "APIConnectionError",
    "APIError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "AsyncEmitter",
    "AsyncPage",
    "AsyncPager",
    "AsyncVentryx",
    "AuthenticationError",
    "BadRequestError",
    "BulkProgress",
    "BulkSummary",
    "BulkTransport",
    "ClientClosedError",
    "ConfigurationError",
    "ConflictError",
    "DeadLetter",
    "DeletedWorkflow",
    "DriverError",
    "EmitterClosedError",
    "EmitterStats",
    "Event",
    "EventInput",
    "EventOutcome",
    "InsecureBaseURLWarning",
    "InternalServerError",
    "InvalidInputError",
    "NewEvent",
    "NotFoundError",
    "NotGiven",
    "OnFull",
    "OutboxFullError",
    "OutcomeStatus",
    "PageMeta",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "RateLimitError",
    "RawResponse",
    "RedisRateGate",
    "ResponseTooLargeError",
    "RetryPolicy",
    "Step",
    "Trigger",
    "UnprocessableEntityError",
    "VentryxError",
    "Workflow",
    "__version__",
]


# Kept from type checkers: a module-level __getattr__ would make every misspelt name `Any`.
if not TYPE_CHECKING:

    def __getattr__(name: str) -> Any:
        import importlib  # noqa: PLC0415

        if name == "models":  # the submodule, as after `import ventryx` in earlier releases
            return importlib.import_module("ventryx.models")
        module = _LAZY.get(name)
        if module is None:
            raise AttributeError(f"module 'ventryx' has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        globals()[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*globals(), *_LAZY, "models"})
