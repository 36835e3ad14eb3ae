"""Every number of the client's default behaviour, in one place."""

from __future__ import annotations

import httpx

DEFAULT_BASE_URL = "https://api.ventryx.io/v1"
API_KEY_ENV = "VENTRYX_API_KEY"
BASE_URL_ENV = "VENTRYX_BASE_URL"
LOG_ENV = "VENTRYX_LOG"

DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=5.0)
DEFAULT_MAX_RETRIES = 2
# httpx's default keeps only 20 idle connections: under concurrency that churns sockets.
DEFAULT_LIMITS = httpx.Limits(max_connections=256, max_keepalive_connections=128)

# Backoff: initial * 2**(attempt - 1), capped, then jittered down by up to JITTER.
INITIAL_RETRY_DELAY = 0.5
MAX_RETRY_DELAY = 8.0
RETRY_JITTER = 0.25
# A Retry-After beyond this is not waited out: the RateLimitError reaches the caller instead.
MAX_RETRY_AFTER = 60.0

RETRYABLE_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})
RATE_LIMIT_CODE = "rate_limit_exceeded"

PAGE_SIZE_MAX = 100
