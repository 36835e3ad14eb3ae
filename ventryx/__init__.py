"""ventryx: the Python SDK for the Ventryx workflow-automation API.

``AsyncVentryx`` is the async client (asyncio and trio); ``ventryx_sync.Ventryx`` is the same
client for plain blocking code. Models and exceptions are shared by both.
"""

from ventryx._bulk import (
    BulkProgress,
    BulkSummary,
    BulkTransport,
    EventInput,
    EventOutcome,
    NewEvent,
    OutcomeStatus,
)
from ventryx._client import AsyncVentryx
from ventryx._errors import (
    APIConnectionError,
    APIError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    ConflictError,
    DriverError,
    InternalServerError,
    InvalidInputError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitError,
    UnprocessableEntityError,
    VentryxError,
)
from ventryx._options import InsecureBaseURLWarning
from ventryx._pagination import AsyncPage, AsyncPager
from ventryx._retry import RetryPolicy
from ventryx._types import NOT_GIVEN, NotGiven
from ventryx._version import __version__
from ventryx.models import DeletedWorkflow, Event, PageMeta, RawResponse, Step, Trigger, Workflow

__all__ = [
    "NOT_GIVEN",
    "APIConnectionError",
    "APIError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "AsyncPage",
    "AsyncPager",
    "AsyncVentryx",
    "AuthenticationError",
    "BadRequestError",
    "BulkProgress",
    "BulkSummary",
    "BulkTransport",
    "ConfigurationError",
    "ConflictError",
    "DeletedWorkflow",
    "DriverError",
    "Event",
    "EventInput",
    "EventOutcome",
    "InsecureBaseURLWarning",
    "InternalServerError",
    "InvalidInputError",
    "NewEvent",
    "NotFoundError",
    "NotGiven",
    "OutcomeStatus",
    "PageMeta",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "RateLimitError",
    "RawResponse",
    "RetryPolicy",
    "Step",
    "Trigger",
    "UnprocessableEntityError",
    "VentryxError",
    "Workflow",
    "__version__",
]
