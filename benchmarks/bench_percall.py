"""Per-call cost: ``events.emit`` against the same request sent with raw httpx, side by side.

Both sides send the same POST (same headers, an ``Idempotency-Key`` per call, a JSON body) and
decode the JSON answer, on the same event loop, against a server in another process. A run is a
fixed duration with ``concurrency`` workers; runs of the two sides alternate (A B, B A, ...) after a
warm-up that opens the connections. The figure is the client process's CPU time per request
(``time.process_time``), which is what the SDK adds; requests/s is shown beside it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import httpx

from benchmarks._util import API_KEY, EMIT_DATA, EMIT_TYPE, Config, Row, Stat, paired_ratio

__all__ = ["Segment", "drive_async", "raw_httpx_emit", "run"]

AsyncCall = Callable[[], Awaitable[object]]
TARGET_ASYNC = 1.10
TARGET_SYNC = 1.15


@dataclasses.dataclass(frozen=True)
class Segment:
    """One measured run of one side: requests completed, wall seconds, client CPU seconds."""

    count: int
    wall: float
    cpu: float

    @property
    def rps(self) -> float:
        return self.count / self.wall

    @property
    def cpu_us(self) -> float:
        return self.cpu / self.count * 1e6


def _headers() -> dict[str, str]:
    from ventryx._options import USER_AGENT

    return {
        "Authorization": f"Bearer {API_KEY}",
        "User-Agent": USER_AGENT,
        "Accept": "application/json",
    }


def _limits_and_timeout() -> tuple[httpx.Limits, httpx.Timeout]:
    from ventryx import _constants

    return _constants.DEFAULT_LIMITS, _constants.DEFAULT_TIMEOUT


def _check(status: int) -> None:
    if status >= 400:
        raise RuntimeError(f"unexpected HTTP {status}")


def raw_httpx_emit(client: httpx.AsyncClient, base_url: str) -> AsyncCall:
    """The raw side: ``client.post`` of the SDK's request, status check, ``response.json()``."""
    url = f"{base_url}/events"
    body = {"type": EMIT_TYPE, "data": EMIT_DATA}

    async def call() -> object:
        response = await client.post(
            url, json=body, headers={"Idempotency-Key": f"vx-{uuid.uuid4()}"}
        )
        _check(response.status_code)
        return response.json()

    return call


def raw_httpx_client(transport: httpx.AsyncBaseTransport | None = None) -> httpx.AsyncClient:
    limits, timeout = _limits_and_timeout()
    return httpx.AsyncClient(
        headers=_headers(), limits=limits, timeout=timeout, transport=transport
    )


def aiohttp_transport() -> httpx.AsyncBaseTransport:
    from httpx_aiohttp import AiohttpTransport

    limits, _ = _limits_and_timeout()
    return AiohttpTransport(limits=limits)


def ventryx_emit(client: Any) -> AsyncCall:
    async def call() -> object:
        return await client.events.emit(type=EMIT_TYPE, data=EMIT_DATA)

    return call


async def drive_async(call: AsyncCall, concurrency: int, duration: float) -> Segment:
    """Run ``concurrency`` workers calling ``call`` for ``duration`` seconds."""
    running = True
    count = 0

    async def worker() -> None:
        nonlocal count
        while running:
            await call()
            count += 1

    def stop() -> None:
        nonlocal running
        running = False

    gc.collect()
    loop = asyncio.get_running_loop()
    wall, cpu = time.perf_counter(), time.process_time()
    loop.call_later(duration, stop)
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return Segment(count, time.perf_counter() - wall, time.process_time() - cpu)


async def compare_async(
    sides: Mapping[str, AsyncCall], concurrency: int, cfg: Config
) -> dict[str, list[Segment]]:
    """Warm every side up, then alternate measured runs of the sides (A B, B A, ...)."""
    for call in sides.values():
        await drive_async(call, concurrency, cfg.warmup)
    names = list(sides)
    results: dict[str, list[Segment]] = {name: [] for name in names}
    for run in range(cfg.runs):
        for name in names if run % 2 == 0 else reversed(names):
            results[name].append(await drive_async(sides[name], concurrency, cfg.duration))
    return results


def _row(
    group: str,
    name: str,
    results: Mapping[str, list[Segment]],
    *,
    sdk: str,
    raw: str,
    target: float | None,
    note: str = "",
) -> Row:
    a, b = results[sdk], results[raw]
    return Row(
        group,
        name,
        ratio_label="CPU/req",
        ratio=paired_ratio([s.cpu_us for s in a], [s.cpu_us for s in b]),
        target=target,
        measured={
            f"CPU/req {sdk}": Stat.of([s.cpu_us for s in a]),
            f"CPU/req {raw}": Stat.of([s.cpu_us for s in b]),
            f"req/s {sdk}": Stat.of([s.rps for s in a]),
            f"req/s {raw}": Stat.of([s.rps for s in b]),
        },
        units={"CPU/req": " us"},
        note=note,
    )


async def _async_rows(cfg: Config, url: str, *, label: str, target: float | None) -> list[Row]:
    from ventryx import AsyncVentryx

    base = f"{url}/v1" if not url.endswith("/v1") else url
    rows: list[Row] = []
    for concurrency in (1, 64):
        name = f"emit c={concurrency}{label}"
        try:
            async with raw_httpx_client() as raw, AsyncVentryx(API_KEY, base_url=base) as sdk:
                results = await compare_async(
                    {"ventryx": ventryx_emit(sdk), "raw": raw_httpx_emit(raw, base)},
                    concurrency,
                    cfg,
                )
            rows.append(_row("async", name, results, sdk="ventryx", raw="raw", target=target))
        except Exception as exc:
            rows.append(Row.error("async", name, exc))
    return rows


async def _aiohttp_rows(cfg: Config, url: str) -> list[Row]:
    """c=64 with the ``httpx-aiohttp`` transport injected, against raw httpx on that transport."""
    from ventryx import AsyncVentryx

    base = f"{url}/v1"
    name = "emit c=64, aiohttp transport"
    try:
        async with (
            raw_httpx_client(aiohttp_transport()) as raw,
            raw_httpx_client(aiohttp_transport()) as injected,
            AsyncVentryx(API_KEY, base_url=base, http_client=injected) as sdk_aio,
            AsyncVentryx(API_KEY, base_url=base) as sdk_default,
        ):
            results = await compare_async(
                {
                    "ventryx+aiohttp": ventryx_emit(sdk_aio),
                    "raw+aiohttp": raw_httpx_emit(raw, base),
                    "ventryx default": ventryx_emit(sdk_default),
                },
                64,
                cfg,
            )
    except Exception as exc:
        return [Row.error("async", name, exc)]
    speed = results["ventryx+aiohttp"], results["ventryx default"]
    return [
        _row("async", name, results, sdk="ventryx+aiohttp", raw="raw+aiohttp", target=TARGET_ASYNC),
        Row(
            "async",
            "emit c=64, aiohttp vs default transport",
            ratio_label="req/s gain",
            ratio=paired_ratio([s.rps for s in speed[0]], [s.rps for s in speed[1]]),
            measured={
                "req/s ventryx+aiohttp": Stat.of([s.rps for s in speed[0]]),
                "req/s ventryx default": Stat.of([s.rps for s in speed[1]]),
            },
        ),
    ]


def _sync_client_class() -> Any:
    try:
        import ventryx_sync
    except ImportError:
        return None
    return getattr(ventryx_sync, "Ventryx", None)


def _sync_row(cfg: Config, url: str) -> Row:
    name = "emit c=1"
    cls = _sync_client_class()
    if cls is None:
        return Row.unavailable("sync", name, "ventryx_sync.Ventryx is not importable")
    base = f"{url}/v1"
    limits, timeout = _limits_and_timeout()
    body = {"type": EMIT_TYPE, "data": EMIT_DATA}
    try:
        with httpx.Client(headers=_headers(), limits=limits, timeout=timeout) as raw:
            sdk = cls(API_KEY, base_url=base)

            def raw_call() -> object:
                response = raw.post(
                    f"{base}/events", json=body, headers={"Idempotency-Key": f"vx-{uuid.uuid4()}"}
                )
                _check(response.status_code)
                return response.json()

            def sdk_call() -> object:
                return sdk.events.emit(type=EMIT_TYPE, data=EMIT_DATA)

            try:
                results = compare_sync({"ventryx": sdk_call, "raw": raw_call}, cfg)
            finally:
                sdk.close()
    except Exception as exc:
        return Row.error("sync", name, exc)
    return _row("sync", name, results, sdk="ventryx", raw="raw", target=TARGET_SYNC)


def drive_sync(call: Callable[[], object], duration: float) -> Segment:
    gc.collect()
    count = 0
    wall, cpu = time.perf_counter(), time.process_time()
    deadline = wall + duration
    while time.perf_counter() < deadline:
        call()
        count += 1
    return Segment(count, time.perf_counter() - wall, time.process_time() - cpu)


def compare_sync(
    sides: Mapping[str, Callable[[], object]], cfg: Config
) -> dict[str, list[Segment]]:
    for call in sides.values():
        drive_sync(call, cfg.warmup)
    names = list(sides)
    results: dict[str, list[Segment]] = {name: [] for name in names}
    for run in range(cfg.runs):
        for name in names if run % 2 == 0 else reversed(names):
            results[name].append(drive_sync(sides[name], cfg.duration))
    return results


def run(cfg: Config, canned_url: str, ventryx_url: str | None) -> list[Row]:
    """Every per-call row: async on the canned server, with aiohttp, on the local server, sync."""

    async def main() -> list[Row]:
        rows = await _async_rows(cfg, canned_url, label="", target=TARGET_ASYNC)
        rows += await _aiohttp_rows(cfg, canned_url)
        if ventryx_url is None:
            rows.append(
                Row.unavailable("async", "emit, local Ventryx server", "server did not start")
            )
        else:
            rows += await _async_rows(cfg, ventryx_url, label=", local server", target=None)
        return rows

    rows = asyncio.run(main())
    rows.append(_sync_row(cfg, canned_url))
    return rows
