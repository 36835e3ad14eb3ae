"""Client settings from arguments and the environment, checked once, shared by both clients."""

from __future__ import annotations

import ipaddress
import os
import sys
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

import httpx

from ventryx import _constants as C
from ventryx._errors import ConfigurationError, InvalidInputError
from ventryx._retry import RetryPolicy
from ventryx._types import Headers, Immutable, NotGiven, Query, TimeoutTypes
from ventryx._version import __version__

if TYPE_CHECKING:
    from ventryx._bulk._redis_gate import RedisRateGate

__all__ = ["ClientOptions", "InsecureBaseURLWarning", "resolve_options", "resolve_timeout"]

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

    __slots__ = (
        "api_key",
        "base_url",
        "default_headers",
        "default_query",
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
    ) -> None:
        values: dict[str, object] = {
            "api_key": api_key,
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
            f"default_headers={sorted(self.default_headers)!r}, "
            f"default_query={dict(self.default_query)!r})"
        )


def resolve_timeout(
    timeout: TimeoutTypes | NotGiven, default: httpx.Timeout | None
) -> httpx.Timeout | None:
    """NOT_GIVEN means the default; a number means that many seconds for every phase."""
    if isinstance(timeout, NotGiven):
        return default
    if timeout is None or isinstance(timeout, httpx.Timeout):
        return timeout
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise InvalidInputError(
            "timeout", "must be a positive number of seconds, an httpx.Timeout or None"
        )
    return httpx.Timeout(float(timeout))


def check_max_retries(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInputError("max_retries", "must be an integer >= 0")
    return value


def check_headers(headers: Headers | None, param: str) -> dict[str, str]:
    """Header names and values that cannot smuggle a second header or request."""
    if headers is None:
        return {}
    if not isinstance(headers, Mapping):
        raise InvalidInputError(param, "must be a mapping of header names to strings")
    out: dict[str, str] = {}
    for name, value in headers.items():
        if (
            not isinstance(name, str)
            or not name
            or not name.isascii()
            or not name.isprintable()
            or " " in name
            or ":" in name
        ):
            raise InvalidInputError(param, f"invalid header name {name!r}")
        if not isinstance(value, str) or any(ch in value for ch in "\r\n\x00"):
            raise InvalidInputError(param, f"header {name!r} must be a string without line breaks")
        out[name] = value
    return out


def check_query(query: Query | None, param: str) -> dict[str, str | int | float | bool]:
    if query is None:
        return {}
    if not isinstance(query, Mapping) or not all(isinstance(k, str) for k in query):
        raise InvalidInputError(param, "must be a mapping of parameter names to values")
    for name, value in query.items():
        if not isinstance(value, (str, int, float, bool)):
            raise InvalidInputError(param, f"value of {name!r} must be a string, number or boolean")
    return dict(query)


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
        raise ConfigurationError(f"base_url is not a valid URL: {exc}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ConfigurationError(
            f"base_url must start with https:// (or http:// for a local server), got {text!r}"
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
) -> ClientOptions:
    """Settings from the arguments, falling back to the environment, all checked."""
    if api_key is None:
        api_key = os.environ.get(C.API_KEY_ENV, "")
    if base_url is None:
        base_url = os.environ.get(C.BASE_URL_ENV) or C.DEFAULT_BASE_URL
    if retry_policy is not None and not isinstance(retry_policy, RetryPolicy):
        raise ConfigurationError("retry_policy must be a ventryx.RetryPolicy")
    if rate_gate is not None:
        from ventryx._bulk._redis_gate import RedisRateGate  # noqa: PLC0415 - only when given

        if not isinstance(rate_gate, RedisRateGate):
            raise ConfigurationError("rate_gate must be a ventryx.RedisRateGate or None")
    try:
        return ClientOptions(
            api_key=_check_api_key(api_key),
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
