"""A local Ventryx API server for offline tests: in memory, in-process (ASGI) or on a real
127.0.0.1 socket, with seeded rate limiting and fault injection and a ledger of what was applied.

Fault kinds: ``status`` (500/502/503/504 JSON error), ``html_502`` (a proxy's HTML page),
``reset_before`` (connection reset, no effect), ``reset_after`` (effect committed, then reset),
``delay`` (answer late, idempotency key in flight meanwhile), ``truncated`` (effect committed,
half the body sent), ``malformed_json`` (effect committed, 2xx with a body that is not JSON),
``rate_limited`` (429 with the given Retry-After).
"""

from ventryx.testing._app import (
    Request,
    Response,
    SimulatedConnectionError,
    VentryxApp,
    create_app,
)
from ventryx.testing._config import DEFAULT_TEST_KEY, ServerConfig
from ventryx.testing._faults import Fault, FaultRule
from ventryx.testing._ledger import Ledger, RequestRecord
from ventryx.testing._ratelimit import RateLimit
from ventryx.testing._server import LocalServer

__all__ = [
    "DEFAULT_TEST_KEY",
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
    "create_app",
]
