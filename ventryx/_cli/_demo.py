"""``ventryx demo``: the SDK end to end against an embedded local server, offline, in seconds.

It runs every operation of the API's Examples page through the async and the sync client,
handles errors, survives injected faults, emits events in bulk with a live progress bar, and
checks the bulk summary against what the server actually applied (its ledger).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from typing import Any

import anyio

from ventryx._bulk._results import BulkSummary, BulkTransport, NewEvent
from ventryx._cli._progress import ProgressMode, make_progress
from ventryx._client import AsyncVentryx
from ventryx._errors import AuthenticationError, NotFoundError
from ventryx.testing import Fault, FaultRule, LocalServer, ServerConfig

__all__ = ["run_demo"]

ONBOARDING: dict[str, Any] = {
    "name": "User onboarding",
    "trigger": {"event": "user.registered"},
    "steps": [{"type": "send_notification", "channel": "email", "template": "welcome"}],
}
SIGNUP: dict[str, Any] = {"user_id": "usr_12345", "email": "jane@example.com", "plan": "pro"}
PAGINATION_TOTAL = 143  # the Examples page's own numbers: 143 workflows, page 2 of 50
BULK_TYPE = "demo.bulk"


class DemoFailedError(Exception):
    """A check of the demo did not hold."""


def say(text: str = "") -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def check(condition: bool, what: str) -> None:
    if not condition:
        raise DemoFailedError(what)


async def async_tour(server: LocalServer) -> None:
    say("==> The async client (AsyncVentryx)")
    async with AsyncVentryx(api_key=server.api_key, base_url=server.base_url) as client:
        page = await client.workflows.list()
        say(f"    list workflows: {len(page.data)} on page 1, {page.meta.total} in all")
        workflow = await client.workflows.create(**ONBOARDING)
        say(f"    create a workflow: Created workflow: {workflow.id} ({workflow.name})")
        event = await client.events.emit(type="user.registered", data=SIGNUP)
        say(f"    emit an event: {event.id} ({event.type})")
        fetched = await client.workflows.retrieve(workflow.id)
        check(fetched == workflow, "the retrieved workflow equals the created one")

        # Pagination: the Examples page's 143 workflows, read as page 2 of 50.
        limit = anyio.CapacityLimiter(16)
        have = page.meta.total + 1

        async def create(number: int) -> None:
            async with limit:
                await client.workflows.create(
                    name=f"Workflow {number}",
                    trigger={"event": "user.registered"},
                    steps=ONBOARDING["steps"],
                )

        async with anyio.create_task_group() as group:
            for number in range(have, PAGINATION_TOTAL):
                group.start_soon(create, number)
        second = await client.workflows.list(page=2, per_page=50)
        meta = second.meta
        say(
            f"    pagination: page {meta.page}, per_page {meta.per_page}, total {meta.total}: "
            f"{len(second.data)} items"
        )
        walked = [wf.id async for wf in client.workflows.list(per_page=100)]
        say(f"    `async for` over every page: {len(walked)} workflows")
        check(len(walked) == meta.total == PAGINATION_TOTAL, "every workflow is listed once")
        check(len(set(walked)) == len(walked), "no workflow is listed twice")


def sync_tour(server: LocalServer) -> None:
    from ventryx_sync import Ventryx  # noqa: PLC0415 - the facade is only needed here

    say("==> The sync client (ventryx_sync.Ventryx): the same calls without await")
    with Ventryx(api_key=server.api_key, base_url=server.base_url) as client:
        workflow = client.workflows.create(**ONBOARDING)
        say(f"    create a workflow: Created workflow: {workflow.id}")
        event = client.events.emit(type="user.registered", data=SIGNUP)
        say(f"    emit an event: {event.id} ({event.type})")
        count = sum(1 for _ in client.workflows.list(per_page=100))
        say(f"    `for` over every page: {count} workflows")
        check(count == PAGINATION_TOTAL + 1, "the sync client sees every workflow")


async def errors_tour(server: LocalServer) -> None:
    say("==> Error handling")
    async with AsyncVentryx(api_key="vx_wrong_key", base_url=server.base_url) as client:
        try:
            await client.workflows.list()
        except AuthenticationError as exc:
            say(
                f"    wrong key: {type(exc).__name__} status {exc.status_code}, "
                f"code {exc.code!r}, request id {exc.request_id}"
            )
        else:
            raise DemoFailedError("a wrong key must raise AuthenticationError")
    async with AsyncVentryx(api_key=server.api_key, base_url=server.base_url) as client:
        try:
            await client.workflows.retrieve("wf_does_not_exist")
        except NotFoundError as exc:
            say(f"    unknown id: {type(exc).__name__} code {exc.code!r}")
        else:
            raise DemoFailedError("an unknown id must raise NotFoundError")

        say("==> Retries: the next POST /v1/events fails with a 503, then a 429")
        server.configure(
            faults=[
                FaultRule(
                    "POST /v1/events",
                    sequence=[
                        Fault("status", status=503),
                        Fault("rate_limited", retry_after="0.2"),
                    ],
                )
            ]
        )
        try:
            event = await client.events.emit(type="demo.retried", data={"attempt": "any"})
        finally:
            server.configure(faults=())
        attempts = event.raw_response.attempts if event.raw_response else 1
        applied = [e for e in server.ledger.events if e["type"] == "demo.retried"]
        say(
            f"    delivered {event.id} on attempt {attempts} (one Idempotency-Key for all), "
            f"applied {len(applied)} time"
        )
        check(attempts == 3 and len(applied) == 1, "the retried event is applied exactly once")


def bulk_transport() -> tuple[BulkTransport, int]:
    """aiohttp with the ``aiohttp`` extra (much faster under concurrency), else httpx's pool.

    httpx's own pool slows down as concurrency rises, so it gets fewer workers.
    """
    if importlib.util.find_spec("httpx_aiohttp") is not None:
        return "aiohttp", 32
    return "default", 8


async def bulk_tour(
    server: LocalServer, count: int, concurrency: int | None, progress: ProgressMode
) -> BulkSummary:
    transport, default_concurrency = bulk_transport()
    concurrency = concurrency or default_concurrency
    say(
        f"==> Bulk: {count:,} events, concurrency {concurrency}, transport {transport!r}, "
        "with injected faults"
    )
    say("    (1% answered 503, 0.5% applied and then the connection dropped)")
    server.configure(
        faults=[
            FaultRule("POST /v1/events", fault=Fault("status", status=503), probability=0.01),
            FaultRule("POST /v1/events", fault=Fault("reset_after"), probability=0.005),
        ],
        seed=7,
    )
    events = (NewEvent(BULK_TYPE, {"n": n}) for n in range(count))
    try:
        async with AsyncVentryx(api_key=server.api_key, base_url=server.base_url) as client:
            with make_progress(progress, count, "emit_many") as view:
                summary = await client.events.emit_many(
                    events,
                    concurrency=concurrency,
                    transport=transport,
                    max_retries=5,
                    on_progress=view.update,
                    progress_interval=0.1,
                )
    finally:
        server.configure(faults=())
    return summary


def verify(server: LocalServer, summary: BulkSummary, count: int) -> None:
    ledger = server.ledger
    applied = [e for e in ledger.events if e["type"] == BULK_TYPE]
    numbers = {e["data"]["n"] for e in applied}
    rate = summary.delivered / summary.elapsed if summary.elapsed > 0 else 0.0
    say(
        f"Summary: delivered {summary.delivered:,}/{count:,} events in {summary.elapsed:.1f}s "
        f"({rate:,.0f}/s), {summary.retries:,} retries; ledger: {len(applied):,} applied, "
        f"{len(applied) - len(numbers):,} duplicates, {ledger.replays:,} idempotent replays"
    )
    for problem in summary.problems[:5]:
        say(
            f"    event {problem.index}: {problem.status} after {problem.attempts} attempts: "
            f"{problem.error!r}"
        )
    check(summary.delivered == count, "every bulk event is delivered")
    check(len(applied) == count, "the server applied exactly as many events as were delivered")
    check(numbers == set(range(count)), "every event is applied once, none twice")


def run_demo(args: argparse.Namespace) -> int:
    """Start the local server, run the tour, and check the result; 0 when every check held."""
    say("Ventryx demo: the SDK against an embedded local server (no API key, no network)")
    # No per-request log: the ledger of applied events is all the checks need.
    with LocalServer(ServerConfig(record_requests=False)) as server:
        say(f"Local server at {server.base_url}")
        try:
            anyio.run(async_tour, server)
            sync_tour(server)
            anyio.run(errors_tour, server)
            summary = anyio.run(bulk_tour, server, args.events, args.concurrency, args.progress)
            verify(server, summary, args.events)
        except DemoFailedError as exc:
            say(f"Demo FAILED: {exc}")
            return 1
    say("Demo finished: every check passed.")
    return 0
