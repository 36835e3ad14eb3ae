"""The emitter over real HTTP to the local server: enqueue is a plain call, delivery exactly once.

Every async test runs on asyncio and trio, in memory and with an SQLite outbox; the blocking
client's emitter is checked at the end of the module.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import anyio
import pytest

from ventryx import (
    AsyncVentryx,
    EventOutcome,
    InvalidInputError,
    OutboxFullError,
    RetryPolicy,
)
from ventryx._bulk._input import idempotency_key_for
from ventryx._emitter._store import SQLiteStore
from ventryx.testing import Fault, FaultRule, LocalServer, RateLimit
from ventryx_sync import Ventryx

pytestmark = pytest.mark.anyio

FAST_RETRY = RetryPolicy(initial_delay=0.01, max_delay=0.05, max_retry_after=5.0)
DOWN = [FaultRule("POST /v1/events", fault=Fault("status", status=503))]


@pytest.fixture(params=["memory", "sqlite"])
def outbox(request: pytest.FixtureRequest, tmp_path: Path) -> str | None:
    return None if request.param == "memory" else str(tmp_path / "outbox.db")


def client_for(server: LocalServer, **kwargs: Any) -> AsyncVentryx:
    kwargs.setdefault("retry_policy", FAST_RETRY)
    return AsyncVentryx(api_key=server.api_key, base_url=server.base_url, **kwargs)


def applied_keys(server: LocalServer) -> list[str | None]:
    return [event["idempotency_key"] for event in server.ledger.events]


async def test_every_enqueued_event_is_applied_once(
    server: LocalServer, outbox: str | None
) -> None:
    seen: list[EventOutcome] = []
    async with (
        client_for(server) as client,
        client.events.emitter(outbox=outbox, concurrency=4, on_result=seen.append) as emitter,
    ):
        keys = [emitter.enqueue(type="order.paid", data={"n": n}) for n in range(50)]
        assert await emitter.flush(timeout=10)
        stats = emitter.stats
    assert sorted(applied_keys(server)) == sorted(keys)  # type: ignore[type-var]
    assert stats.delivered == 50
    assert stats.pending == stats.in_flight == 0
    assert stats.oldest_pending_age is None
    assert sorted(o.idempotency_key for o in seen) == sorted(keys)  # type: ignore[type-var]
    assert {o.status for o in seen} == {"delivered"}


async def test_a_key_fixes_the_idempotency_key_as_emit_many_does(
    server: LocalServer, outbox: str | None
) -> None:
    async with client_for(server) as client, client.events.emitter(outbox=outbox) as emitter:
        first = emitter.enqueue(type="user.signup", data={"u": 1}, key="signup/1")
        again = emitter.enqueue(type="user.signup", data={"u": 1}, key="signup/1")
        assert await emitter.flush(timeout=10)
        summary = await client.events.emit_many(
            [{"type": "user.signup", "data": {"u": 1}, "key": "signup/1"}]
        )
    assert first == again == idempotency_key_for("signup/1")
    assert applied_keys(server) == [first]  # once, across the emitter and emit_many
    assert summary.delivered == 1


async def test_bad_input_is_refused_at_once_naming_the_parameter(
    server: LocalServer, outbox: str | None
) -> None:
    async with client_for(server) as client:
        emitter = client.events.emitter(outbox=outbox)
        cases: list[tuple[dict[str, Any], str]] = [
            ({"type": ""}, "type"),
            ({"type": 3}, "type"),
            ({"type": "a", "data": [1]}, "data"),
            ({"type": "a", "data": {"x": object()}}, "data"),
            ({"type": "a", "data": {"x": float("nan")}}, "data"),
            ({"type": "a", "key": ""}, "key"),
            ({"type": "a", "key": 7}, "key"),
        ]
        for kwargs, param in cases:
            with pytest.raises(InvalidInputError) as info:
                emitter.enqueue(**kwargs)
            assert info.value.param == param, kwargs
        assert emitter.stats.pending == 0
        for kwargs, param in [
            ({"outbox": 3}, "outbox"),
            ({"outbox": ""}, "outbox"),
            ({"max_pending": 0}, "max_pending"),
            ({"on_full": "wait"}, "on_full"),
            ({"concurrency": True}, "concurrency"),
            ({"drain_timeout": -1}, "drain_timeout"),
            ({"lease_seconds": 0}, "lease_seconds"),
            ({"on_result": 5}, "on_result"),
        ]:
            with pytest.raises(InvalidInputError) as info:
                client.events.emitter(**kwargs)
            assert info.value.param == param, kwargs
        await emitter.aclose()


async def test_a_full_memory_outbox_raises_or_drops_never_silently(server: LocalServer) -> None:
    async with client_for(server) as client:
        raising = client.events.emitter(max_pending=2)
        raising.enqueue(type="a")
        raising.enqueue(type="a")
        with pytest.raises(OutboxFullError):
            raising.enqueue(type="a")
        dropping = client.events.emitter(max_pending=2, on_full="drop")
        results = [dropping.enqueue(type="a") for _ in range(5)]
        assert results[2:] == [None, None, None]
        assert dropping.stats.dropped == 3
        assert dropping.stats.pending == 2
        async with dropping:  # the two it kept are delivered
            assert await dropping.flush(timeout=10)
        blocking = client.events.emitter(max_pending=1, on_full="block")
        async with blocking:
            blocking.enqueue(type="b")
            # the loop's own thread cannot wait (it delivers), and has not run in between
            with pytest.raises(OutboxFullError, match="event loop"):
                blocking.enqueue(type="b")
            # another thread waits for room instead
            await anyio.to_thread.run_sync(lambda: [blocking.enqueue(type="c") for _ in range(5)])
            assert await blocking.flush(timeout=10)
    types = [event["type"] for event in server.ledger.events]
    assert types.count("a") == 2
    assert types.count("b") == 1
    assert types.count("c") == 5


async def test_a_4xx_goes_to_the_dead_letter_table(server: LocalServer, tmp_path: Path) -> None:
    server.configure(max_body_bytes=400)
    seen: list[EventOutcome] = []
    path = tmp_path / "outbox.db"
    async with (
        client_for(server) as client,
        client.events.emitter(outbox=path, on_result=seen.append) as emitter,
    ):
        emitter.enqueue(type="big", data={"blob": "x" * 1000}, key="big-1")
        emitter.enqueue(type="small", data={})
        assert await emitter.flush(timeout=10)
        stats = emitter.stats
    assert stats.rejected == 1
    assert stats.delivered == 1
    assert stats.dead_letters == 1
    assert sorted(o.status for o in seen) == ["delivered", "rejected"]
    [letter] = SQLiteStore(path).dead_letters()
    assert (letter.type, letter.key, letter.status) == ("big", "big-1", 413)
    assert "PayloadTooLarge" in letter.error
    assert [e["type"] for e in server.ledger.events] == ["small"]


async def test_the_api_down_for_a_while_loses_nothing(
    server: LocalServer, outbox: str | None
) -> None:
    server.configure(faults=DOWN)
    async with (
        client_for(server, max_retries=1) as client,
        client.events.emitter(outbox=outbox, concurrency=4) as emitter,
    ):
        keys = [emitter.enqueue(type="job.done", data={"n": n}) for n in range(20)]
        assert not await emitter.flush(timeout=0.3)  # the bound comes first
        assert emitter.stats.pending + emitter.stats.in_flight == 20
        server.configure(faults=())
        assert await emitter.flush(timeout=10)
        stats = emitter.stats
    assert sorted(applied_keys(server)) == sorted(keys)  # type: ignore[type-var]
    assert stats.retries > 0
    assert server.ledger.duplicates == 0


async def test_close_is_bounded_and_a_new_emitter_delivers_the_rest(
    server: LocalServer, tmp_path: Path
) -> None:
    path = tmp_path / "outbox.db"
    server.configure(faults=DOWN)
    async with client_for(server, max_retries=0) as client:
        async with client.events.emitter(outbox=path, drain_timeout=0.2) as emitter:
            keys = [emitter.enqueue(type="late", data={"n": n}) for n in range(10)]
        assert server.ledger.events == []
        assert SQLiteStore(path).counts().pending == 10  # left in the file
        server.configure(faults=())
        async with client.events.emitter(outbox=path) as emitter:
            assert await emitter.flush(timeout=10)
    assert sorted(applied_keys(server)) == sorted(keys)  # type: ignore[type-var]


async def test_under_a_rate_limit_every_event_is_applied_once(
    server: LocalServer, outbox: str | None
) -> None:
    server.configure(rate_limit=RateLimit(200, burst=5), record_requests=False)
    async with (
        client_for(server) as client,
        client.events.emitter(outbox=outbox, concurrency=8) as emitter,
    ):
        keys = [emitter.enqueue(type="tick", data={"n": n}) for n in range(60)]
        assert await emitter.flush(timeout=20)
    assert sorted(applied_keys(server)) == sorted(keys)  # type: ignore[type-var]
    assert server.ledger.rate_limited > 0


async def test_enqueue_from_other_threads_wakes_the_idle_emitter(
    server: LocalServer, outbox: str | None
) -> None:
    async with client_for(server) as client, client.events.emitter(outbox=outbox) as emitter:
        await anyio.sleep(0.05)  # idle, waiting

        def produce() -> list[str | None]:
            return [emitter.enqueue(type="threaded", data={"n": n}) for n in range(10)]

        keys = await anyio.to_thread.run_sync(produce)
        assert await emitter.flush(timeout=10)
    assert sorted(applied_keys(server)) == sorted(keys)  # type: ignore[type-var]


async def test_leaving_the_block_drains_what_was_enqueued(
    server: LocalServer, outbox: str | None
) -> None:
    async with client_for(server) as client:
        async with client.events.emitter(outbox=outbox) as emitter:
            keys = [emitter.enqueue(type="bye", data={"n": n}) for n in range(30)]
        stats = emitter.stats
    assert sorted(applied_keys(server)) == sorted(keys)  # type: ignore[type-var]
    assert stats.delivered == 30


async def test_a_callback_that_raises_does_not_stop_delivery(
    server: LocalServer, caplog: pytest.LogCaptureFixture
) -> None:
    def boom(outcome: EventOutcome) -> None:
        raise RuntimeError("callback bug")

    async with client_for(server) as client, client.events.emitter(on_result=boom) as emitter:
        for n in range(5):
            emitter.enqueue(type="x", data={"n": n})
        assert await emitter.flush(timeout=10)
    assert len(server.ledger.events) == 5
    assert "on_result raised" in caplog.text


async def test_a_401_keeps_events_stored_until_the_key_works(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    with LocalServer() as server:
        async with (
            AsyncVentryx(api_key="vx_wrong", base_url=server.base_url) as client,
            client.events.emitter(outbox=path, drain_timeout=0.3) as emitter,
        ):
            emitter.enqueue(type="kept", data={}, key="kept-1")
            assert not await emitter.flush(timeout=0.3)
        assert server.ledger.events == []
        assert SQLiteStore(path).counts().pending == 1
        async with client_for(server) as client, client.events.emitter(outbox=path) as emitter:
            assert await emitter.flush(timeout=10)
        assert applied_keys(server) == [idempotency_key_for("kept-1")]


# -- the blocking client ------------------------------------------------------------------------


def sync_client(server: LocalServer) -> Ventryx:
    return Ventryx(api_key=server.api_key, base_url=server.base_url, retry_policy=FAST_RETRY)


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_sync_emitter_delivers_from_many_threads(
    server: LocalServer, tmp_path: Path, kind: str
) -> None:
    outbox = None if kind == "memory" else tmp_path / "outbox.db"
    keys: list[str | None] = []
    lock = threading.Lock()
    with sync_client(server) as client, client.events.emitter(outbox=outbox) as emitter:

        def produce(worker: int) -> None:
            for n in range(20):
                key = emitter.enqueue(type="sync.evt", data={"w": worker, "n": n})
                with lock:
                    keys.append(key)

        threads = [threading.Thread(target=produce, args=(w,)) for w in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert emitter.flush(timeout=10)
        assert emitter.stats.delivered == 80
    assert sorted(applied_keys(server)) == sorted(keys)  # type: ignore[type-var]


def test_sync_emitter_blocks_for_room_and_drains_on_close(server: LocalServer) -> None:
    with sync_client(server) as client:
        emitter = client.events.emitter(max_pending=2, on_full="block")
        keys = [emitter.enqueue(type="blocked", data={"n": n}) for n in range(25)]
        emitter.close()
        assert "closed=True" in repr(emitter)
    assert sorted(applied_keys(server)) == sorted(keys)  # type: ignore[type-var]


def test_sync_emitter_raises_bad_input_at_once(server: LocalServer) -> None:
    with sync_client(server) as client, client.events.emitter() as emitter:
        with pytest.raises(InvalidInputError) as info:
            emitter.enqueue(type="ok", data={"x": {1, 2}})
        assert info.value.param == "data"
        with pytest.raises(InvalidInputError):
            client.events.emitter(on_full="never")  # type: ignore[arg-type]


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_the_aiohttp_transport_delivers_too(server: LocalServer, outbox: str | None) -> None:
    async with (
        client_for(server) as client,
        client.events.emitter(outbox=outbox, transport="aiohttp") as emitter,
    ):
        keys = [emitter.enqueue(type="fast", data={"n": n}) for n in range(20)]
        assert await emitter.flush(timeout=10)
    assert sorted(applied_keys(server)) == sorted(keys)  # type: ignore[type-var]


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_the_aiohttp_transport_on_trio_is_a_configuration_error(server: LocalServer) -> None:
    from ventryx import ConfigurationError

    async with client_for(server) as client:
        emitter = client.events.emitter(transport="aiohttp")
        with pytest.raises(ConfigurationError, match="asyncio"):
            await emitter.__aenter__()
        with pytest.raises(InvalidInputError):
            client.events.emitter(transport="pigeon")  # type: ignore[arg-type]


async def test_after_close_memory_refuses_and_a_file_keeps_for_later(
    server: LocalServer, tmp_path: Path
) -> None:
    from ventryx import EmitterClosedError

    path = tmp_path / "outbox.db"
    async with client_for(server) as client:
        async with client.events.emitter() as memory:
            pass
        with pytest.raises(EmitterClosedError):
            memory.enqueue(type="late")
        async with client.events.emitter(outbox=path) as stored:
            pass
        key = stored.enqueue(type="late")  # durable: the next emitter on the file sends it
        async with client.events.emitter(outbox=path) as emitter:
            assert await emitter.flush(timeout=10)
    assert applied_keys(server) == [key]
