"""A web service's load: single calls at concurrency 1-256, every stack side by side (issue 19).

At each concurrency every side gets fresh clients (as a service that starts would), a warm-up,
then measured runs in a rotating order against the canned server: ``events.emit`` and
``workflows.list`` through ventryx on httpx and on aiohttp, the same requests through raw
``httpx.AsyncClient()`` and raw ``aiohttp.ClientSession()`` with their libraries' defaults, and
through openai-python's low-level ``post``/``get`` (the peer SDK) on its default httpx2 client
and on its aiohttp client. Also: the same on trio (ventryx and raw httpx), the TCP connections
each side opened (counted by the server: never more than the concurrency), and the cost of
creating a client. ``python -m benchmarks --only web``.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from benchmarks._util import API_KEY, EMIT_DATA, EMIT_TYPE, Config, Row, Stat, paired_ratio
from benchmarks.bench_percall import Segment, _check, _headers, drive_async

__all__ = ["SIDES", "run"]

AsyncCall = Callable[[], Awaitable[object]]
SIDES = (
    "ventryx+aiohttp",
    "raw-aiohttp",
    "openai+aiohttp",
    "ventryx+httpx",
    "raw-httpx",
    "openai+httpx",
)
OPS = ("emit", "list")
TARGET_AIOHTTP = 0.6  # ventryx on aiohttp / raw aiohttp, req/s, at c = 64 and 256
TARGET_AIOHTTP_CPU = 1.15
TARGET_HTTPX = 1.0  # ventryx on httpx / raw httpx, req/s, everywhere
TARGET_CREATE_MS = 1.0
BODY = {"type": EMIT_TYPE, "data": EMIT_DATA}


def _key() -> dict[str, str]:
    return {"Idempotency-Key": f"vx-{uuid.uuid4()}"}


class _Side:
    """One stack at one concurrency: its client(s), its two calls, how to close it."""

    def __init__(self, name: str, base: str) -> None:
        self.name = name
        self.base = base
        self.client: Any = None
        self.calls: dict[str, AsyncCall] = {}

    async def open(self) -> None:
        name, base = self.name, self.base
        if name.startswith("ventryx"):
            from ventryx import AsyncVentryx

            transport = "aiohttp" if name.endswith("aiohttp") else "httpx"
            sdk = self.client = AsyncVentryx(API_KEY, base_url=base, transport=transport)

            async def emit() -> object:
                return await sdk.events.emit(type=EMIT_TYPE, data=EMIT_DATA)

            async def list_() -> object:
                return await sdk.workflows.list(per_page=5)

        elif name == "raw-httpx":
            # httpx's defaults but the timeout (5 s for a pooled connection): at c=256 on a
            # loaded machine its queue waits longer than that, and the side would fail.
            raw = self.client = httpx.AsyncClient(headers=_headers(), timeout=30.0)

            async def emit() -> object:
                response = await raw.post(f"{base}/events", json=BODY, headers=_key())
                _check(response.status_code)
                return response.json()

            async def list_() -> object:
                response = await raw.get(f"{base}/workflows", params={"per_page": 5})
                _check(response.status_code)
                return response.json()

        elif name == "raw-aiohttp":
            import aiohttp

            session = self.client = aiohttp.ClientSession(headers=_headers())

            async def emit() -> object:
                async with session.post(f"{base}/events", json=BODY, headers=_key()) as answer:
                    _check(answer.status)
                    return await answer.json()

            async def list_() -> object:
                async with session.get(f"{base}/workflows", params={"per_page": 5}) as answer:
                    _check(answer.status)
                    return await answer.json()

        else:
            import openai

            http = openai.DefaultAioHttpClient() if name.endswith("aiohttp") else None
            peer = openai.AsyncOpenAI(api_key=API_KEY, base_url=base, http_client=http)
            self.client = peer

            async def emit() -> object:
                return await peer.post(
                    "/events", body=BODY, cast_to=object, options={"headers": _key()}
                )

            async def list_() -> object:
                return await peer.get(
                    "/workflows", cast_to=object, options={"params": {"per_page": 5}}
                )

        self.calls = {"emit": emit, "list": list_}

    async def close(self) -> None:
        client = self.client
        for method in ("aclose", "close"):
            closer = getattr(client, method, None)
            if closer is not None:
                await closer()
                return


class _Connections:
    """TCP connections the canned server accepted (``GET /__connections``) over one socket."""

    def __init__(self, url: str) -> None:
        # Never expiring: a reconnect of this client would count as the measured side's.
        self._client = httpx.Client(base_url=url, limits=httpx.Limits(keepalive_expiry=None))

    def accepted(self) -> int:
        return int(self._client.get("/__connections").json()["accepted"])

    def close(self) -> None:
        self._client.close()


def _available() -> tuple[str, ...]:
    sides = []
    for side in SIDES:
        module = "openai" if side.startswith("openai") else None
        if side.endswith("aiohttp"):
            module = module or "aiohttp"
        if module is None:
            sides.append(side)
            continue
        try:
            __import__(module)
            if side == "openai+aiohttp":
                from openai import DefaultAioHttpClient

                DefaultAioHttpClient()  # raises when openai's aiohttp extra is missing
        except (ImportError, RuntimeError):
            continue
        sides.append(side)
    return tuple(sides)


async def _level(
    cfg: Config, base: str, sides: tuple[str, ...], level: int, counter: _Connections
) -> tuple[dict[str, dict[str, list[Segment]]], dict[str, int]]:
    """Fresh clients for every side; warm-up, then interleaved runs of both operations.

    At c >= 64, ``results["cpu"]`` holds the back-to-back emit pairs of ``_cpu_pairs`` beside
    the operations' rotation segments.

    ``opened``: the most TCP connections one side opened in one warm-up or run (idle ones
    expire while the other sides run, so each run may open its pool again; more than the
    concurrency within one run means connections churned).
    """
    opened: dict[str, int] = {}
    results: dict[str, dict[str, list[Segment]]] = {op: {s: [] for s in sides} for op in OPS}
    clients = {name: _Side(name, base) for name in sides}
    try:
        for name, side in clients.items():
            before = counter.accepted()
            await side.open()
            for op in OPS:
                await drive_async(side.calls[op], level, cfg.warmup)
            opened[name] = counter.accepted() - before
        for i in range(cfg.runs):
            shift = i % len(sides)
            for name in sides[shift:] + sides[:shift]:
                before = counter.accepted()
                for op in OPS:
                    segment = await drive_async(clients[name].calls[op], level, cfg.curve_duration)
                    results[op][name].append(segment)
                opened[name] = max(opened[name], counter.accepted() - before)
        if level >= 64 and {"ventryx+aiohttp", "raw-aiohttp"} <= set(sides):
            results["cpu"] = await _cpu_pairs(cfg, clients, level)
    finally:
        for side in clients.values():
            with contextlib.suppress(Exception):
                await side.close()
    return results, opened


async def _cpu_pairs(
    cfg: Config, clients: dict[str, _Side], level: int
) -> dict[str, list[Segment]]:
    """``events.emit`` on ventryx+aiohttp and raw aiohttp, back to back, 2 * runs + 1 times.

    A CPU ratio of a few percent needs its two segments measured next to each other: in the
    rotation above, five other sides run between them, and the shared machine's load drifts
    in between. The order alternates, so neither side always runs first.
    """
    pair = ("ventryx+aiohttp", "raw-aiohttp")
    segs: dict[str, list[Segment]] = {name: [] for name in pair}
    for i in range(2 * cfg.runs + 1):
        for name in pair if i % 2 == 0 else pair[::-1]:
            call = clients[name].calls["emit"]
            segs[name].append(await drive_async(call, level, cfg.curve_duration))
    return segs


def _trio_rows(cfg: Config, base: str) -> list[Row]:
    """ventryx on trio against raw httpx on trio (emit), interleaved, at every concurrency."""
    try:
        import trio
    except ImportError:
        return [Row.unavailable("web", "trio", "trio is not installed")]
    import anyio

    from ventryx import AsyncVentryx

    async def drive(call: AsyncCall, level: int, duration: float) -> Segment:
        count = 0
        running = True

        async def worker() -> None:
            nonlocal count
            while running:
                await call()
                count += 1

        wall, cpu = time.perf_counter(), time.process_time()
        async with anyio.create_task_group() as tg:
            for _ in range(level):
                tg.start_soon(worker)
            await anyio.sleep(duration)
            running = False
        return Segment(count, time.perf_counter() - wall, time.process_time() - cpu)

    async def main() -> list[Row]:
        rows = []
        for level in _levels(cfg):
            async with (
                AsyncVentryx(API_KEY, base_url=base) as sdk,
                httpx.AsyncClient(headers=_headers(), timeout=30.0) as raw,
            ):

                async def ours() -> object:
                    return await sdk.events.emit(type=EMIT_TYPE, data=EMIT_DATA)

                async def theirs() -> object:
                    response = await raw.post(f"{base}/events", json=BODY, headers=_key())
                    _check(response.status_code)
                    return response.json()

                segs: dict[str, list[Segment]] = {"ventryx": [], "raw-httpx": []}
                for call in (ours, theirs):
                    await drive(call, level, cfg.warmup)
                for i in range(cfg.runs):
                    pair = [("ventryx", ours), ("raw-httpx", theirs)]
                    for name, call in pair if i % 2 == 0 else pair[::-1]:
                        segs[name].append(await drive(call, level, cfg.curve_duration))
            rows.append(_ratio_row(f"trio: emit c={level}", segs, "ventryx", "raw-httpx"))
        return rows

    return trio.run(main)


def _levels(cfg: Config) -> tuple[int, ...]:
    return (1, 8) if cfg.name == "tiny" else (1, 16, 64, 256)


def _rps(segments: list[Segment]) -> list[float]:
    return [s.rps for s in segments]


def _cpu(segments: list[Segment]) -> list[float]:
    return [s.cpu_us for s in segments]


def _ratio_row(
    name: str,
    segs: dict[str, list[Segment]],
    ours: str,
    theirs: str,
    *,
    target: float | None = None,
    cpu: bool = False,
    shown: tuple[str, ...] = (),
) -> Row:
    pick = _cpu if cpu else _rps
    measured = {f"req/s {side}": Stat.of(_rps(segs[side])) for side in shown or (ours, theirs)}
    measured |= {f"CPU/req {side}": Stat.of(_cpu(segs[side])) for side in (ours, theirs)}
    return Row(
        "web",
        name,
        ratio_label=f"{'CPU/req' if cpu else 'req/s'} {ours} / {theirs}",
        ratio=paired_ratio(pick(segs[ours]), pick(segs[theirs])),
        target=target,
        at_least=not cpu,
        measured=measured,
        units={"CPU/req": " us"},
    )


def _creation_row() -> Row:
    """Median time to create (not use) a client, after the first of its kind."""
    from ventryx import AsyncVentryx
    from ventryx_sync import Ventryx

    base = "https://api.ventryx.io/v1"

    async def measure() -> dict[str, list[float]]:
        makers: dict[str, Callable[[], Any]] = {
            "ventryx+httpx": lambda: AsyncVentryx(API_KEY, base_url=base),
            "ventryx+aiohttp": lambda: AsyncVentryx(API_KEY, base_url=base, transport="aiohttp"),
            "ventryx_sync": lambda: Ventryx(API_KEY, base_url=base),
            "raw-httpx": httpx.AsyncClient,
        }
        times: dict[str, list[float]] = {name: [] for name in makers}
        for name, make in makers.items():
            made = [make()]  # the first: shared state (the SSL context) is built here
            for _ in range(100):
                started = time.perf_counter()
                made.append(make())
                times[name].append((time.perf_counter() - started) * 1000)
            for client in made:
                closer = getattr(client, "aclose", None)
                if closer is not None:
                    await closer()
                else:
                    client.close()
        return times

    times = asyncio.run(measure())
    ours = max(statistics.median(times[n]) for n in ("ventryx+httpx", "ventryx+aiohttp"))
    return Row(
        "web",
        "create a client (median of 100, after the first)",
        ratio_label="ms, the slower ventryx transport",
        ratio=Stat.of([ours]),
        ratio_unit=" ms",
        target=TARGET_CREATE_MS,
        measured={f"ms {name}": Stat.of(values) for name, values in times.items()},
    )


def run(cfg: Config, canned_url: str) -> list[Row]:
    base = f"{canned_url}/v1"
    sides = _available()
    missing = [side for side in SIDES if side not in sides]
    rows: list[Row] = []
    counter = _Connections(canned_url)
    try:
        connections: dict[int, dict[str, int]] = {}

        async def main() -> None:
            for level in _levels(cfg):
                results, opened = await _level(cfg, base, sides, level, counter)
                connections[level] = opened
                for op in OPS:
                    segs = results[op]
                    label = "emit" if op == "emit" else "workflows.list"
                    gate = level >= 64
                    if "ventryx+aiohttp" in sides and "raw-aiohttp" in sides:
                        rows.append(
                            _ratio_row(
                                f"{label} c={level}, aiohttp",
                                segs,
                                "ventryx+aiohttp",
                                "raw-aiohttp",
                                target=TARGET_AIOHTTP if gate else None,
                                shown=tuple(s for s in sides if "aiohttp" in s),
                            )
                        )
                    rows.append(
                        _ratio_row(
                            f"{label} c={level}, httpx",
                            segs,
                            "ventryx+httpx",
                            "raw-httpx",
                            target=TARGET_HTTPX,
                            shown=tuple(s for s in sides if "httpx" in s),
                        )
                    )
                    if op != "emit" or not gate:
                        continue
                    if "cpu" in results:
                        rows.append(
                            _ratio_row(
                                f"emit c={level}, aiohttp CPU (back to back)",
                                results["cpu"],
                                "ventryx+aiohttp",
                                "raw-aiohttp",
                                target=TARGET_AIOHTTP_CPU,
                                cpu=True,
                            )
                        )
                    for ours, peer in (
                        ("ventryx+aiohttp", "openai+aiohttp"),
                        ("ventryx+httpx", "openai+httpx"),
                    ):
                        if ours in sides and peer in sides:
                            rows.append(
                                _ratio_row(
                                    f"emit c={level}, vs the peer SDK",
                                    segs,
                                    ours,
                                    peer,
                                    target=1.0,
                                )
                            )

        asyncio.run(main())
        worst = {
            side: max(connections[level][side] / level for level in connections) for side in sides
        }
        rows.append(
            Row(
                "web",
                "TCP connections opened in one run / concurrency (worst level)",
                ratio_label="ventryx, the worse transport",
                ratio=Stat.of([max(worst[s] for s in sides if s.startswith("ventryx"))]),
                target=1.0,
                measured={
                    f"opened {side}": Stat.of(
                        [float(connections[level][side]) for level in connections]
                    )
                    for side in sides
                },
                note="the most opened in one warm-up or run (both operations), at c = "
                + ", ".join(str(level) for level in connections),
            )
        )
    finally:
        counter.close()
    rows += _trio_rows(cfg, base)
    rows.append(_creation_row())
    if missing:
        rows.append(Row.unavailable("web", "peers", f"not installed: {', '.join(missing)}"))
    return rows
