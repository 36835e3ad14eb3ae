"""A local Ventryx API server for offline tests: in memory, in-process (ASGI) or on a real
127.0.0.1 socket, with seeded rate limiting and fault injection and a ledger of what was applied.

Fault kinds: ``status`` (500/502/503/504 JSON error), ``html_502`` (a proxy's HTML page),
``reset_before`` (connection reset, no effect), ``reset_after`` (effect committed, then reset),
``delay`` (answer late, idempotency key in flight meanwhile), ``truncated`` (effect committed,
half the body sent), ``malformed_json`` (effect committed, 2xx with a body that is not JSON),
``rate_limited`` (429 with the given Retry-After).
"""

from ventryx.testing._app import VentryxApp, create_app
from ventryx.testing._asgi import SimulatedConnectionError
from ventryx.testing._config import DEFAULT_TEST_KEY, ServerConfig
from ventryx.testing._faults import Fault, FaultRule
from ventryx.testing._ledger import EventRecord, Ledger, RequestRecord, WorkflowWrite
from ventryx.testing._messages import Request, Response
from ventryx.testing._ratelimit import RateLimit
from ventryx.testing._server import LocalServer

__all__ = [
    "DEFAULT_TEST_KEY",
    "EventRecord",
    "Fault",
    "FaultRule",
    "Ledger",
    "LocalServer",
    "RateLimit",
    "Request",
    "RequestRecord",
    "Response",
    "ServerConfig",
    "SimulatedConnectionError",
    "VentryxApp",
    "WorkflowWrite",
    "create_app",
]
