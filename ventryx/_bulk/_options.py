"""The keywords of ``emit_many`` and of an emitter's delivery, checked once into ``BulkOptions``.

``DeliveryKeywords`` are shared by both; ``BulkKeywords`` adds what only ``emit_many`` takes
(the emitter adds its own in ``_emitter/_async.py``). Left out, each has its default.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, TypedDict

import attrs

from ventryx import _constants as C
from ventryx._bulk._results import BulkProgress, BulkTransport, EventOutcome
from ventryx._errors import InvalidInputError
from ventryx._options import ClientOptions, check_max_retries

__all__ = ["BulkKeywords", "BulkOptions", "DeliveryKeywords", "OnProgress", "OnResult"]

OnResult = Callable[[EventOutcome], object]
OnProgress = Callable[[BulkProgress], object]

# More workers than this only add memory and scheduling: the server paces a run long before.
MAX_CONCURRENCY = 1024


class DeliveryKeywords(TypedDict, total=False):
    """How events are delivered (``emit_many`` and ``emitter``; see ``emit_many``).

    Defaults: ``concurrency=32``, ``max_retries=None`` (the client's), ``max_rate_limit_wait=300``
    seconds, ``transport="default"`` (the client's), ``on_result=None``.
    """

    concurrency: int
    max_retries: int | None
    max_rate_limit_wait: float
    transport: BulkTransport
    on_result: OnResult | None


class BulkKeywords(DeliveryKeywords, total=False):
    """``emit_many``'s keywords. Defaults: no ``on_progress``, ``progress_interval=1`` and
    ``cancel_grace=5`` seconds, ``stop_after_connection_failures=None`` (never)."""

    on_progress: OnProgress | None
    progress_interval: float
    cancel_grace: float
    stop_after_connection_failures: int | None


def _seconds(value: object, param: str, *, allow_zero: bool = True) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not allow_zero):  # type: ignore[operator]
        raise InvalidInputError(param, "must be a positive number" + (" or 0" * allow_zero))
    return float(value)  # type: ignore[arg-type]


def _callable(value: object, param: str) -> Any:
    if value is not None and not callable(value):
        raise InvalidInputError(param, f"must be callable, got {type(value).__name__}")
    return value


def check_keywords(keywords: Mapping[str, object], allowed: frozenset[str]) -> None:
    """What Python says of an unknown keyword, since ``**keywords`` accepts any."""
    for name in keywords:
        if name not in allowed:
            raise TypeError(f"got an unexpected keyword argument {name!r}")


@attrs.frozen
class BulkOptions:
    """What one engine run is told, checked and complete (the client's ``max_retries`` in)."""

    concurrency: int
    max_retries: int
    max_rate_limit_wait: float
    transport: BulkTransport
    on_result: OnResult | None
    on_progress: OnProgress | None = None
    progress_interval: float = C.DEFAULT_PROGRESS_INTERVAL
    cancel_grace: float = C.DEFAULT_CANCEL_GRACE
    stop_after_connection_failures: int | None = None

    @classmethod
    def of(cls, keywords: BulkKeywords, client: ClientOptions) -> BulkOptions:
        """``keywords`` checked (``InvalidInputError`` naming the first bad one)."""
        check_keywords(keywords, BulkKeywords.__optional_keys__)
        get: Any = keywords.get
        concurrency = get("concurrency", C.DEFAULT_CONCURRENCY)
        if (
            isinstance(concurrency, bool)
            or not isinstance(concurrency, int)
            or not 1 <= concurrency <= MAX_CONCURRENCY
        ):
            raise InvalidInputError(
                "concurrency",
                f"must be an integer from 1 to {MAX_CONCURRENCY}, got {concurrency!r}",
            )
        retries = get("max_retries")
        transport = get("transport", "default")
        if transport not in ("default", "httpx", "aiohttp"):
            raise InvalidInputError("transport", "must be 'default', 'httpx' or 'aiohttp'")
        breaker = get("stop_after_connection_failures")
        if breaker is not None and (
            isinstance(breaker, bool) or not isinstance(breaker, int) or breaker < 1
        ):
            raise InvalidInputError(
                "stop_after_connection_failures", "must be None or an integer >= 1"
            )
        return cls(
            concurrency,
            check_max_retries(client.max_retries if retries is None else retries),
            _seconds(get("max_rate_limit_wait", C.DEFAULT_RATE_LIMIT_WAIT), "max_rate_limit_wait"),
            transport,
            _callable(get("on_result"), "on_result"),
            _callable(get("on_progress"), "on_progress"),
            _seconds(
                get("progress_interval", C.DEFAULT_PROGRESS_INTERVAL),
                "progress_interval",
                allow_zero=False,
            ),
            _seconds(get("cancel_grace", C.DEFAULT_CANCEL_GRACE), "cancel_grace"),
            breaker,
        )
