"""Client settings from arguments and the environment, checked once, shared by both clients."""

from __future__ import annotations

import ipaddress
import math
import os
import re
import sys
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, TypedDict
from urllib.parse import unquote, urlsplit

import httpx

from ventryx import _constants as C
from ventryx._errors import ConfigurationError, InvalidInputError
from ventryx._retry import RetryPolicy
from ventryx._types import NOT_GIVEN, Headers, Immutable, NotGiven, Query, TimeoutTypes
from ventryx._version import __version__

if TYPE_CHECKING:
    from ventryx._bulk._redis_gate import RedisRateGate

__all__ = [
    "CallOptions",
    "ClientOptions",
    "InsecureBaseURLWarning",
    "RequestOptions",
    "resolve_options",
    "resolve_timeout",
]

USER_AGENT = (
    f"ventryx-python/{__version__} python/{sys.version.split()[0]} httpx/{httpx.__version__}"
)


class InsecureBaseURLWarning(UserWarning):
    """The base URL is plain HTTP to another machine: the key would travel unencrypted."""


class ClientOptions(Immutable):
    """Resolved, validated settings; the repr shows neither ``api_key`` nor header values.

    Immutable (``with_options`` builds a new one). A plain slotted class, so that
    ``import ventryx`` does not load attrs.
    """

    api_key: str
    base_url: str
    timeout: httpx.Timeout | None
    max_retries: int
    retry_policy: RetryPolicy
    default_headers: Mapping[str, str]
    default_query: Mapping[str, str | int | float | bool]
    rate_gate: RedisRateGate | None
    max_response_bytes: int
    call_timeout: float | None

    __slots__ = (
        "api_key",
        "base_url",
        "call_timeout",
        "default_headers",
        "default_query",
        "max_response_bytes",
        "max_retries",
        "rate_gate",
        "retry_policy",
        "timeout",
    )

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str,
        timeout: httpx.Timeout | None,
        max_retries: int,
        retry_policy: RetryPolicy,
        default_headers: Mapping[str, str] | None = None,
        default_query: Mapping[str, str | int | float | bool] | None = None,
        rate_gate: RedisRateGate | None = None,
        max_response_bytes: int = C.DEFAULT_MAX_RESPONSE_BYTES,
        call_timeout: float | None = None,
    ) -> None:
        values: dict[str, object] = {
            "api_key": api_key,
            "max_response_bytes": max_response_bytes,
            "call_timeout": call_timeout,
            "base_url": base_url,
            "timeout": timeout,
            "max_retries": max_retries,
            "retry_policy": retry_policy,
            "default_headers": default_headers or {},
            "default_query": default_query or {},
            "rate_gate": rate_gate,
        }
        self._freeze(values)

    # Equal by fields and unhashable (the header and query mappings are not), from Immutable.

    def __repr__(self) -> str:
        return (
            f"ClientOptions(base_url={self.base_url!r}, timeout={self.timeout!r}, "
            f"max_retries={self.max_retries!r}, retry_policy={self.retry_policy!r}, "
            f"call_timeout={self.call_timeout!r}, max_response_bytes={self.max_response_bytes!r}, "
            f"default_headers={sorted(self.default_headers)!r}, "
            f"default_query={dict(self.default_query)!r})"
        )


class RequestOptions(TypedDict, total=False):
    """The keywords every call takes besides its own (``**options`` of each method).

    ``timeout``: this call's timeout (seconds, an ``httpx.Timeout``, or None for none);
    ``max_retries``: this call's retries; ``extra_headers`` and ``extra_query``: sent with it.
    Each one left out is the client's setting.
    """

    timeout: TimeoutTypes | NotGiven
    max_retries: int | None
    extra_headers: Headers | None
    extra_query: Query | None


class CallOptions(Immutable):
    """The ``RequestOptions`` of one call, checked and resolved against the client's settings.

    Built once per call (once per ``list`` for all its pages) by ``Pipeline.call_options``.
    """

    __slots__ = ("attempt_total", "extra_headers", "extra_query", "max_retries", "timeout")

    timeout: dict[str, float | None]
    attempt_total: float | None
    max_retries: int
    extra_headers: Mapping[str, str]
    extra_query: Mapping[str, str | int | float | bool]

    def __init__(self, client: ClientOptions, options: RequestOptions) -> None:
        for name in options:
            if name not in RequestOptions.__optional_keys__:
                raise TypeError(f"got an unexpected keyword argument {name!r}")
        timeout = resolve_timeout(options.get("timeout", NOT_GIVEN), client.timeout)
        retries = options.get("max_retries")
        values: dict[str, object] = {
            "timeout": timeout_extension(timeout),
            "attempt_total": attempt_total(timeout),
            "max_retries": client.max_retries if retries is None else check_max_retries(retries),
            "extra_headers": check_headers(options.get("extra_headers"), "extra_headers"),
            "extra_query": check_query(options.get("extra_query"), "extra_query"),
        }
        self._freeze(values)


def timeout_extension(timeout: httpx.Timeout | None) -> dict[str, float | None]:
    """httpx's per-request ``timeout`` extension for ``timeout`` (None: no timeout)."""
    return (timeout or httpx.Timeout(None)).as_dict()


def resolve_timeout(
    timeout: TimeoutTypes | NotGiven, default: httpx.Timeout | None
) -> httpx.Timeout | None:
    """NOT_GIVEN means the default; a number means that many seconds for every phase."""
    if isinstance(timeout, NotGiven):
        return default
    if timeout is None:
        return timeout
    if isinstance(timeout, httpx.Timeout):
        for phase, value in timeout.as_dict().items():
            if value is not None:
                check_seconds(value, f"timeout ({phase})")
        return timeout
    return httpx.Timeout(check_seconds(timeout, "timeout"))


def check_seconds(value: object, param: str) -> float:
    """A finite, positive number of seconds up to ``MAX_TIMEOUT`` (a socket takes no more)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    seconds = float(value) if ok and abs(value) < 1e300 else math.nan  # type: ignore[arg-type]
    if not (0 < seconds <= C.MAX_TIMEOUT):
        raise InvalidInputError(
            param,
            f"must be a positive number of seconds up to {C.MAX_TIMEOUT:g} (an httpx.Timeout, "
            f"or None for no timeout), got {value!r}",
        )
    return seconds


def attempt_total(timeout: httpx.Timeout | None) -> float | None:
    """How long one attempt may take in all: the largest of its phase timeouts.

    httpx's timeouts bound each read; this bounds the attempt, so a peer trickling its answer
    one byte at a time cannot keep it going. ``None``: no timeout at all.
    """
    if timeout is None:
        return None
    phases = [v for v in timeout.as_dict().values() if v is not None]
    return max(phases) if phases else None


def check_call_timeout(value: object) -> float | None:
    return None if value is None else check_seconds(value, "call_timeout")


def check_max_response_bytes(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1024 <= value <= 2**40:
        raise InvalidInputError(
            "max_response_bytes", f"must be an integer from 1024 to 2**40, got {value!r}"
        )
    return value


def check_max_retries(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInputError("max_retries", "must be an integer >= 0")
    return value


# RFC 9110 token characters: what a header name may be made of.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Visible ASCII, space and tab: what a header value may hold (httpx encodes it as ASCII).
_FIELD_VALUE = re.compile(r"[\t\x20-\x7e]*")
MAX_HEADER_VALUE = 8192
MAX_QUERY_VALUE = 4096


def check_headers(headers: Headers | None, param: str) -> dict[str, str]:
    """Header names and values that cannot smuggle a second header or request."""
    if headers is None:
        return {}
    if not isinstance(headers, Mapping):
        raise InvalidInputError(param, "must be a mapping of header names to strings")
    out: dict[str, str] = {}
    seen: set[str] = set()
    for name, value in headers.items():
        if not isinstance(name, str) or not _TOKEN.fullmatch(name):
            raise InvalidInputError(param, f"invalid header name {_shown(name)}")
        if name.lower() in seen:
            raise InvalidInputError(param, f"header {name!r} is given twice (names ignore case)")
        seen.add(name.lower())
        if not isinstance(value, str):
            raise InvalidInputError(param, f"header {name!r} must be a string")
        if len(value) > MAX_HEADER_VALUE or not _FIELD_VALUE.fullmatch(value):
            raise InvalidInputError(
                param,
                f"header {name!r} must be printable ASCII (no control characters or line "
                f"breaks) of at most {MAX_HEADER_VALUE} characters",
            )
        out[name] = value
    return out


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:77]}..."


def check_query(query: Query | None, param: str) -> dict[str, str | int | float | bool]:
    if query is None:
        return {}
    if not isinstance(query, Mapping) or not all(isinstance(k, str) for k in query):
        raise InvalidInputError(param, "must be a mapping of parameter names to values")
    for name, value in query.items():
        if not isinstance(value, (str, int, float, bool)):
            raise InvalidInputError(param, f"value of {name!r} must be a string, number or boolean")
        for text, what in ((name, "name"), (value, "value")):
            if isinstance(text, str):
                check_text(text, param, f"{what} of {_shown(name)}", MAX_QUERY_VALUE)
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidInputError(param, f"value of {name!r} must be finite")
    return dict(query)


def check_text(text: str, param: str, what: str, limit: int) -> None:
    """Text that can be sent as UTF-8 (no lone surrogates) and is at most ``limit`` long."""
    if len(text) > limit:
        raise InvalidInputError(param, f"{what} is {len(text)} characters; at most {limit}")
    try:
        text.encode()
    except UnicodeEncodeError as exc:
        raise InvalidInputError(
            param, f"{what} holds {exc.object[exc.start : exc.end]!r}, which is not valid UTF-8"
        ) from None


def _check_api_key(api_key: object) -> str:
    if not isinstance(api_key, str):
        raise ConfigurationError("api_key must be a string")
    key = api_key.strip()
    if not key:
        raise ConfigurationError(
            f"No API key: pass api_key= or set {C.API_KEY_ENV}. "
            "For offline work, `ventryx.testing` serves a local API that accepts a test key."
        )
    # Never echo the key: say what is wrong with it, not what it is.
    if not key.isascii() or not key.isprintable() or any(ch.isspace() for ch in key):
        raise ConfigurationError(
            "api_key contains whitespace, a control or a non-ASCII character, "
            "which cannot be sent in an HTTP header"
        )
    return key


def _is_local(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _check_base_url(base_url: object) -> str:
    if not isinstance(base_url, str) or not base_url.strip():
        raise ConfigurationError(
            "base_url must be a non-empty string such as https://api.ventryx.io/v1"
        )
    text = base_url.strip()
    try:
        url = httpx.URL(text)
    except (httpx.InvalidURL, ValueError, TypeError) as exc:
        detail = redact_userinfo(str(exc))
        raise ConfigurationError(f"base_url is not a valid URL: {detail}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ConfigurationError(
            "base_url must start with https:// (or http:// for a local server), "
            f"got {redact_userinfo(text)!r}"
        )
    if url.port is not None and not 0 < url.port < 65536:
        raise ConfigurationError(f"base_url port must be 1 to 65535, got {url.port}")
    if url.userinfo:
        raise ConfigurationError("base_url must not contain credentials; pass api_key= instead")
    if url.query or url.fragment or "?" in text or "#" in text:
        raise ConfigurationError("base_url must not contain a query string or a fragment")
    path = url.path.rstrip("/")
    # httpx has already collapsed dot segments in ``url``: look at what was written, decoded
    # (``%2e%2e`` is a dot segment too, and ``%2F`` hides a separator).
    written = urlsplit(text).path.split("/")
    if any(part in (".", "..") for seg in written for part in unquote(seg).split("/")):
        raise ConfigurationError("base_url must not contain '.' or '..' path segments")
    if url.scheme == "http" and not _is_local(url.host):
        warnings.warn(
            f"base_url uses plain http:// to {url.host}: the API key would be sent unencrypted",
            InsecureBaseURLWarning,
            stacklevel=4,
        )
    return str(url.copy_with(path=path or "/")).rstrip("/")


_USERINFO = re.compile(r"(?<=//)[^/?#@\s]*@")


def redact_userinfo(text: str) -> str:
    """``text`` with any ``user:password@`` of a URL in it replaced (never echo a password)."""
    return _USERINFO.sub("***@", text)


def check_retry_policy(value: object) -> RetryPolicy | None:
    if value is not None and not isinstance(value, RetryPolicy):
        raise ConfigurationError(
            f"retry_policy must be a ventryx.RetryPolicy, got {type(value).__name__}"
        )
    return value


def check_rate_gate(value: object) -> None:
    """A ``RedisRateGate`` or ``None``.

    Looked up in ``sys.modules``, not imported: no gate exists before its module is loaded, and
    this layer must not import ``ventryx._bulk`` (which imports it).
    """
    if value is None:
        return
    module = sys.modules.get("ventryx._bulk._redis_gate")
    gate_class: object = getattr(module, "RedisRateGate", None)
    if not (isinstance(gate_class, type) and isinstance(value, gate_class)):
        raise ConfigurationError(
            f"rate_gate must be a ventryx.RedisRateGate or None, got {type(value).__name__}"
        )


def resolve_options(
    *,
    api_key: str | None,
    base_url: str | None,
    timeout: TimeoutTypes | NotGiven,
    max_retries: int,
    retry_policy: RetryPolicy | None,
    default_headers: Headers | None,
    default_query: Query | None,
    rate_gate: RedisRateGate | None = None,
    max_response_bytes: int = C.DEFAULT_MAX_RESPONSE_BYTES,
    call_timeout: float | None = None,
) -> ClientOptions:
    """Settings from the arguments, falling back to the environment, all checked."""
    if api_key is None:
        api_key = os.environ.get(C.API_KEY_ENV, "")
    if base_url is None:
        base_url = os.environ.get(C.BASE_URL_ENV) or C.DEFAULT_BASE_URL
    check_retry_policy(retry_policy)
    check_rate_gate(rate_gate)
    try:
        return ClientOptions(
            api_key=_check_api_key(api_key),
            max_response_bytes=check_max_response_bytes(max_response_bytes),
            call_timeout=check_call_timeout(call_timeout),
            base_url=_check_base_url(base_url),
            timeout=resolve_timeout(timeout, C.DEFAULT_TIMEOUT),
            max_retries=check_max_retries(max_retries),
            retry_policy=retry_policy or RetryPolicy(),
            default_headers=check_headers(default_headers, "default_headers"),
            default_query=check_query(default_query, "default_query"),
            rate_gate=rate_gate,
        )
    except InvalidInputError as exc:
        raise ConfigurationError(str(exc)) from None
