"""Retries over real HTTP: what is retried, how long it waits, and that nothing is applied twice."""

from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime as http_date

import pytest

import ventryx
from ventryx.testing import Fault, FaultRule, LocalServer, RateLimit, ServerConfig

pytestmark = pytest.mark.anyio

EMIT = "POST /v1/events"


def _script(server: LocalServer, route: str, *faults: Fault | None) -> None:
    server.configure(faults=[FaultRule(route, sequence=list(faults))])


def _waits(caplog: pytest.LogCaptureFixture) -> list[float]:
    pattern = re.compile(r"retrying in (-?[\d.]+) s")
    return [float(m.group(1)) for r in caplog.records if (m := pattern.search(r.getMessage()))]


@pytest.mark.parametrize(
    "fault",
    [
        Fault("status", status=500),
        Fault("status", status=502),
        Fault("status", status=503),
        Fault("status", status=504),
        Fault("html_502"),
        Fault("reset_before"),
        Fault("reset_after"),
        Fault("truncated"),
        Fault("rate_limited", retry_after="0.05"),
    ],
    ids=lambda f: f.kind if f.kind != "status" else str(f.status),
)
async def test_transient_failures_are_retried_and_applied_once(
    make_client, server: LocalServer, fault: Fault
) -> None:
    _script(server, EMIT, fault, fault)
    event = await make_client(max_retries=2).events.emit(type="t", data={"n": 1})
    assert event.raw_response is not None
    assert event.raw_response.attempts == 3
    assert server.ledger.attempts[EMIT] == 3
    assert [e["id"] for e in server.ledger.events] == [event.id]
    assert server.ledger.duplicates == 0
    keys = {r.idempotency_key for r in server.ledger.requests if r.method == "POST"}
    assert len(keys) == 1


async def _bad_request(make_client, server):
    # extra_query may not set page/per_page (the pager owns them); a client default may.
    await make_client(max_retries=3, default_query={"per_page": "abc"}).events.list()


async def _unauthorized(make_client, server):
    await make_client(max_retries=3, api_key="vx_wrong").events.emit(type="t")


async def _not_found(make_client, server):
    await make_client(max_retries=3).events.retrieve("evt_none")


async def _too_large(make_client, server):
    server.configure(max_body_bytes=100)
    await make_client(max_retries=3).events.emit(type="t", data={"x": "y" * 500})


async def _key_reused(make_client, server):
    client = make_client(max_retries=3)
    await client.events.emit(type="t", idempotency_key="same")
    await client.events.emit(type="t", data={"other": True}, idempotency_key="same")


@pytest.mark.parametrize(
    ("call", "status", "route", "sent"),
    [
        (_bad_request, 400, "GET /v1/events", 1),
        (_unauthorized, 401, EMIT, 1),
        (_not_found, 404, "GET /v1/events/{id}", 1),
        (_too_large, 413, EMIT, 1),
        (_key_reused, 422, EMIT, 2),
    ],
    ids=["400", "401", "404", "413", "422"],
)
async def test_client_errors_are_not_retried(
    make_client, server: LocalServer, call, status, route, sent
) -> None:
    with pytest.raises(ventryx.APIStatusError) as info:
        await call(make_client, server)
    assert info.value.status_code == status
    assert server.ledger.attempts[route] == sent


async def test_attempts_are_max_retries_plus_one_when_all_fail(
    make_client, server: LocalServer
) -> None:
    server.configure(faults=[FaultRule(EMIT, fault=Fault("status", status=503))])
    with pytest.raises(ventryx.InternalServerError):
        await make_client(max_retries=3).events.emit(type="t")
    assert server.ledger.attempts[EMIT] == 4
    assert len({r.idempotency_key for r in server.ledger.requests}) == 1
    assert server.ledger.events == []


async def test_per_call_max_retries_overrides_the_client(make_client, server: LocalServer) -> None:
    server.configure(faults=[FaultRule(EMIT, fault=Fault("status", status=500))])
    with pytest.raises(ventryx.InternalServerError):
        await make_client(max_retries=5).events.emit(type="t", max_retries=1)
    assert server.ledger.attempts[EMIT] == 2


async def test_lost_response_after_commit_leaves_exactly_one_event(
    make_client, server: LocalServer
) -> None:
    _script(server, EMIT, Fault("reset_after"))
    event = await make_client().events.emit(type="t", data={"order": 1})
    assert len(server.ledger.events) == 1
    assert server.ledger.events[0]["id"] == event.id
    assert server.ledger.replays == 1


async def test_connection_errors_without_retries(make_client, server: LocalServer) -> None:
    _script(server, EMIT, Fault("reset_before"))
    with pytest.raises(ventryx.APIConnectionError):
        await make_client(max_retries=0).events.emit(type="t")


async def test_a_timeout_is_retried_then_raised(make_client, server: LocalServer) -> None:
    server.configure(faults=[FaultRule("GET /v1/events", fault=Fault("delay", delay=1.0))])
    with pytest.raises(ventryx.APITimeoutError):
        await make_client(max_retries=1, timeout=0.2).events.list()
    assert server.ledger.attempts["GET /v1/events"] == 2


async def test_a_timed_out_post_still_in_flight_is_applied_once(
    make_client, server: LocalServer
) -> None:
    # Attempt 1 times out while the server still holds it; the retries meet 409
    # idempotency_conflict until it completes, then get its stored response. The retries'
    # backoff (0.05 s doubling to 0.2 s, less up to a quarter of jitter) must outlast the
    # delay on a loaded machine: 20 of them wait at least 2.8 s.
    _script(server, EMIT, Fault("delay", delay=1.2))
    client = make_client(
        max_retries=20,
        timeout=0.25,
        retry_policy=ventryx.RetryPolicy(initial_delay=0.05, max_delay=0.2),
    )
    event = await client.events.emit(type="t", data={"slow": True})
    statuses = [r.status for r in server.ledger.requests]
    assert 409 in statuses
    assert [e["id"] for e in server.ledger.events] == [event.id]
    assert server.ledger.duplicates == 0


@pytest.mark.parametrize(
    ("form", "header", "at_least"),
    [
        ("integer", "1", 1.0),
        ("fractional", "0.3", 0.3),
        ("http-date", None, 1.0),
        ("absent", None, 0.0),
    ],
)
async def test_each_retry_after_form_is_honoured(
    make_client, server: LocalServer, caplog: pytest.LogCaptureFixture, form, header, at_least
) -> None:
    caplog.set_level(logging.INFO, logger="ventryx")
    if form == "http-date":  # whole seconds: 3 s ahead is at least 2 s away once sent
        header = http_date(datetime.now(timezone.utc) + timedelta(seconds=3), usegmt=True)
    _script(server, EMIT, Fault("rate_limited", retry_after=header))
    event = await make_client(max_retries=2).events.emit(type="t")
    assert event.raw_response is not None
    assert event.raw_response.attempts == 2
    (wait,) = _waits(caplog)
    assert wait >= at_least - 0.01
    assert wait <= 5.0


async def test_retry_after_ms_from_a_rate_limited_server(make_client, caplog) -> None:
    caplog.set_level(logging.INFO, logger="ventryx")
    config = ServerConfig(rate_limit=RateLimit(rate=5, burst=1, retry_after="milliseconds"))
    with LocalServer(config) as limited:
        client = make_client(base_url=limited.base_url, api_key=limited.api_key, max_retries=3)
        await client.events.emit(type="a")
        await client.events.emit(type="b")
        assert len(limited.ledger.events) == 2
    waits = _waits(caplog)
    assert waits
    assert all(w >= 0.05 for w in waits)


async def test_the_rate_limited_server_form_of_each_header(make_client) -> None:
    for form in ("seconds", "fractional", "http-date", "absent"):
        config = ServerConfig(rate_limit=RateLimit(rate=20, burst=1, retry_after=form))
        with LocalServer(config) as limited:
            client = make_client(base_url=limited.base_url, api_key=limited.api_key, max_retries=10)
            for n in range(3):
                await client.events.emit(type="t", data={"n": n})
            assert len(limited.ledger.events) == 3, form
            assert limited.ledger.duplicates == 0
