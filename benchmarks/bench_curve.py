"""Requests/s against concurrency: ventryx, raw ``httpx.AsyncClient`` and raw aiohttp.

All three talk to the canned server from one event loop, each as its users get it: ventryx
with its own defaults (``ventryx._constants.DEFAULT_LIMITS``), ``httpx.AsyncClient()`` and
``aiohttp.ClientSession()`` with theirs (100 connections, httpx keeps 20 of them alive). At each
concurrency every client is warmed up, then their runs alternate in a rotating order. The curve
is drawn to ``concurrency.png``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from benchmarks._util import API_KEY, EMIT_DATA, EMIT_TYPE, Config, Row, Stat, paired_ratio
from benchmarks.bench_percall import (
    AsyncCall,
    _check,
    _headers,
    drive_async,
    raw_httpx_emit,
    ventryx_emit,
)

__all__ = ["CLIENTS", "plot", "run"]

CLIENTS = ("ventryx", "raw httpx", "raw aiohttp")


def _aiohttp_emit(session: Any, base_url: str) -> AsyncCall:
    import uuid

    url = f"{base_url}/events"
    body = {"type": EMIT_TYPE, "data": EMIT_DATA}

    async def call() -> object:
        headers = {"Idempotency-Key": f"vx-{uuid.uuid4()}"}
        async with session.post(url, json=body, headers=headers) as response:
            _check(response.status)
            return await response.json()

    return call


async def _measure(cfg: Config, url: str) -> dict[str, dict[int, list[float]]]:
    import aiohttp

    from ventryx import AsyncVentryx

    base = f"{url}/v1"
    rps: dict[str, dict[int, list[float]]] = {name: {} for name in CLIENTS}
    async with (
        AsyncVentryx(API_KEY, base_url=base) as sdk,
        httpx.AsyncClient(headers=_headers(), timeout=30.0) as raw,
        aiohttp.ClientSession(headers=_headers()) as session,
    ):
        calls = {
            "ventryx": ventryx_emit(sdk),
            "raw httpx": raw_httpx_emit(raw, base),
            "raw aiohttp": _aiohttp_emit(session, base),
        }
        for level in cfg.curve_levels:
            for call in calls.values():
                await drive_async(call, level, cfg.warmup)
            for i in range(cfg.runs):
                shift = i % len(CLIENTS)
                for name in CLIENTS[shift:] + CLIENTS[:shift]:
                    segment = await drive_async(calls[name], level, cfg.curve_duration)
                    rps[name].setdefault(level, []).append(segment.rps)
    return rps


def plot(
    rps: dict[str, dict[int, list[float]]], levels: Sequence[int], path: Path, caption: str
) -> None:
    """Median requests/s per client with min-max bars, log-scaled concurrency axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5), dpi=120)
    for name, marker in zip(CLIENTS, ("o", "s", "^"), strict=True):
        stats = [Stat.of(rps[name][level]) for level in levels]
        medians = [s.median for s in stats]
        errors = [[s.median - s.low for s in stats], [s.high - s.median for s in stats]]
        ax.errorbar(levels, medians, yerr=errors, marker=marker, capsize=3, label=name)
    ax.set_xscale("log", base=2)
    ax.set_xticks(list(levels), [str(level) for level in levels])
    ax.set_xlabel("concurrency (requests in flight)")
    ax.set_ylabel("requests per second (median, min-max bars)")
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    ax.legend(title="POST /v1/events, canned server, library defaults")
    ax.set_title("Throughput against concurrency")
    fig.text(0.5, 0.01, caption, ha="center", fontsize=7, wrap=True)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def run(cfg: Config, canned_url: str) -> tuple[list[Row], dict[str, dict[int, list[float]]]]:
    rps = asyncio.run(_measure(cfg, canned_url))
    rows = []
    for level in cfg.curve_levels:
        sdk, raw, aio = (rps[name][level] for name in CLIENTS)
        rows.append(
            Row(
                "curve",
                f"req/s at c={level}",
                ratio_label="ventryx / httpx (defaults)",
                ratio=paired_ratio(sdk, raw),
                measured={
                    "req/s ventryx": Stat.of(sdk),
                    "req/s httpx": Stat.of(raw),
                    "req/s aiohttp": Stat.of(aio),
                },
            )
        )
    return rows, rps
