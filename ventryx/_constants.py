"""Every number of the client's default behaviour, in one place."""

from __future__ import annotations

import httpx

DEFAULT_BASE_URL = "https://api.ventryx.io/v1"
API_KEY_ENV = "VENTRYX_API_KEY"
BASE_URL_ENV = "VENTRYX_BASE_URL"
LOG_ENV = "VENTRYX_LOG"

DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=5.0)
DEFAULT_MAX_RETRIES = 2
# The longest timeout accepted (a socket takes no more than a C timeval holds; a day is ample).
MAX_TIMEOUT = 86_400.0
# The largest answer read (decoded bytes; gzip bombs stop here). A page of 100 big events
# may need more: AsyncVentryx(max_response_bytes=...).
DEFAULT_MAX_RESPONSE_BYTES = 8 * 1024 * 1024
# At most 100 connections (httpx's and aiohttp's default), every one of them kept alive: with
# fewer kept alive than allowed (httpx's 20), a connection that goes idle while more than 20
# are pooled is closed, and the next request opens a new one - at 256 requests in flight, one
# new TCP connection per request (issue 19). The async httpx pool is split into one-connection
# shards (ventryx/_httpx_pool.py), so its size no longer slows the pool down.
MAX_CONNECTIONS = 100
KEEPALIVE_EXPIRY = 5.0
DEFAULT_LIMITS = httpx.Limits(
    max_connections=MAX_CONNECTIONS,
    max_keepalive_connections=MAX_CONNECTIONS,
    keepalive_expiry=KEEPALIVE_EXPIRY,
)

# Backoff: initial * 2**(attempt - 1), capped, then jittered down by up to JITTER.
INITIAL_RETRY_DELAY = 0.5
MAX_RETRY_DELAY = 8.0
RETRY_JITTER = 0.25
# A Retry-After beyond this is not waited out: the RateLimitError reaches the caller instead.
MAX_RETRY_AFTER = 60.0
# A Retry-After longer than this (thousands of digits, a year past 9999) counts as this,
# about 317 years: far over any max_retry_after, so the RateLimitError goes to the caller.
RETRY_AFTER_CEILING = 1e10

RETRYABLE_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})
RATE_LIMIT_CODE = "rate_limit_exceeded"

PAGE_SIZE_MAX = 100

# Bulk emission (events.emit_many).
DEFAULT_CONCURRENCY = 32
# Total seconds one event may spend waiting out 429s before it counts as failed.
DEFAULT_RATE_LIMIT_WAIT = 300.0
# After a cancel, how long requests already on the wire get to be answered.
DEFAULT_CANCEL_GRACE = 5.0
DEFAULT_PROGRESS_INTERVAL = 1.0

# Background delivery (events.emitter).
DEFAULT_MAX_PENDING = 10_000  # events an in-memory outbox holds
DEFAULT_DRAIN_TIMEOUT = 5.0  # seconds close() / exit spends delivering what is left
DEFAULT_LEASE_SECONDS = 30.0  # how long a taken row is held before another process may take it
