"""Fault injection over real sockets: each kind, scripted sequences, seeded probabilities."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from ventryx.testing import Fault, FaultRule, LocalServer, ServerConfig

EVENTS = "POST /v1/events"


@pytest.fixture
def http(server: LocalServer) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=server.base_url, headers={"Authorization": f"Bearer {server.api_key}"}
    ) as client:
        yield client


def once(fault: Fault, route: str = EVENTS) -> list[FaultRule]:
    return [FaultRule(route, sequence=[fault])]


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (500, "internal_error"),
        (502, "bad_gateway"),
        (503, "service_unavailable"),
        (504, "gateway_timeout"),
    ],
)
def test_status_faults_have_no_effect(
    http: httpx.Client, server: LocalServer, status: int, code: str
) -> None:
    server.configure(faults=once(Fault("status", status=status)))
    resp = http.post("/events", json={"type": "a"}, headers={"Idempotency-Key": "k"})
    assert resp.status_code == status
    assert resp.headers["content-type"] == "application/json"
    assert resp.headers["x-request-id"].startswith("req_")
    assert resp.json()["error"]["code"] == code
    assert server.ledger.events == []
    retry = http.post("/events", json={"type": "a"}, headers={"Idempotency-Key": "k"})
    assert retry.status_code == 201
    assert "idempotent-replayed" not in retry.headers
    assert len(server.ledger.events) == 1
    assert server.ledger.faults == {"status": 1}
    assert [r.fault for r in server.ledger.requests] == ["status", None]


def test_status_fault_with_retry_after(http: httpx.Client, server: LocalServer) -> None:
    server.configure(faults=once(Fault("status", status=503, retry_after="2")))
    resp = http.post("/events", json={"type": "a"})
    assert resp.status_code == 503
    assert resp.headers["retry-after"] == "2"


def test_html_502(http: httpx.Client, server: LocalServer) -> None:
    server.configure(faults=once(Fault("html_502")))
    resp = http.post("/events", json={"type": "a"})
    assert resp.status_code == 502
    assert resp.headers["content-type"] == "text/html"
    assert resp.text.lstrip().startswith("<html")
    with pytest.raises(json.JSONDecodeError):
        resp.json()
    assert server.ledger.events == []


def test_reset_before_applies_nothing(http: httpx.Client, server: LocalServer) -> None:
    server.configure(faults=once(Fault("reset_before")))
    with pytest.raises(httpx.ReadError):
        http.post("/events", json={"type": "a"}, headers={"Idempotency-Key": "k"})
    assert server.ledger.events == []
    retry = http.post("/events", json={"type": "a"}, headers={"Idempotency-Key": "k"})
    assert retry.status_code == 201
    assert "idempotent-replayed" not in retry.headers
    assert len(server.ledger.events) == 1
    assert server.ledger.requests[0].status == 0
    assert server.ledger.requests[0].fault == "reset_before"


def test_reset_after_applies_once_and_replays(http: httpx.Client, server: LocalServer) -> None:
    server.configure(faults=once(Fault("reset_after")))
    body = {"type": "a", "data": {"n": 1}}
    with pytest.raises(httpx.ReadError):
        http.post("/events", json=body, headers={"Idempotency-Key": "k"})
    events = server.ledger.events
    assert len(events) == 1
    retry = http.post("/events", json=body, headers={"Idempotency-Key": "k"})
    assert retry.status_code == 201
    assert retry.headers["idempotent-replayed"] == "true"
    assert retry.json()["data"]["id"] == events[0]["id"]
    assert len(server.ledger.events) == 1
    assert server.ledger.replays == 1


def test_truncated_body_is_a_protocol_error(http: httpx.Client, server: LocalServer) -> None:
    server.configure(faults=once(Fault("truncated")))
    body = {"type": "a", "data": {"n": 1}}
    with pytest.raises(httpx.RemoteProtocolError):
        http.post("/events", json=body, headers={"Idempotency-Key": "k"})
    assert len(server.ledger.events) == 1
    retry = http.post("/events", json=body, headers={"Idempotency-Key": "k"})
    assert retry.headers["idempotent-replayed"] == "true"
    assert retry.json()["data"]["id"] == server.ledger.events[0]["id"]


def test_malformed_json_commits(http: httpx.Client, server: LocalServer) -> None:
    server.configure(faults=once(Fault("malformed_json")))
    resp = http.post("/events", json={"type": "a"})
    assert resp.status_code == 201
    assert resp.headers["content-type"] == "application/json"
    with pytest.raises(json.JSONDecodeError):
        json.loads(resp.content)
    assert len(server.ledger.events) == 1


def test_post_commit_faults_spare_failed_requests(http: httpx.Client, server: LocalServer) -> None:
    server.configure(faults=[FaultRule(EVENTS, fault=Fault("reset_after"))])
    resp = http.post("/events", json={"type": ""})
    assert resp.status_code == 400
    assert server.ledger.faults == {}


def test_delay_answers_normally_after_the_delay(http: httpx.Client, server: LocalServer) -> None:
    server.configure(faults=once(Fault("delay", delay=0.3)))
    resp = http.post("/events", json={"type": "a"})
    assert resp.status_code == 201
    assert resp.elapsed.total_seconds() >= 0.29
    assert len(server.ledger.events) == 1
    assert server.ledger.faults == {"delay": 1}


@pytest.mark.parametrize("idempotent", [False, True])
def test_release_delayed_answers_held_requests_at_once(
    http: httpx.Client, server: LocalServer, idempotent: bool
) -> None:
    server.configure(faults=[FaultRule(EVENTS, fault=Fault("delay", delay=60.0))])
    headers = {"Idempotency-Key": "held-1"} if idempotent else {}
    answers: list[httpx.Response] = []
    sender = threading.Thread(
        target=lambda: answers.append(http.post("/events", json={"type": "a"}, headers=headers))
    )
    sender.start()
    for _ in range(500):  # until the server holds it
        if server.ledger.attempts[EVENTS] == 1:
            break
        time.sleep(0.01)
    assert server.ledger.events == []  # held: not applied yet
    server.release_delayed()
    sender.join(timeout=10.0)
    assert not sender.is_alive(), "release_delayed() did not answer the held request"
    assert answers[0].status_code == 201
    assert len(server.ledger.events) == 1
    # a request that comes after the release is held again
    server.configure(faults=once(Fault("delay", delay=0.3)))
    assert http.post("/events", json={"type": "b"}).elapsed.total_seconds() >= 0.29


def test_faults_match_routes(http: httpx.Client, server: LocalServer) -> None:
    fail = Fault("status", status=500)
    server.configure(
        faults=[
            FaultRule("GET /v1/workflows/{id}", fault=fail),
            FaultRule("* /v1/events", fault=Fault("status", status=502)),
        ]
    )
    assert http.get("/workflows/wf_x").status_code == 500
    assert http.get("/workflows").status_code == 200
    assert http.post("/events", json={"type": "a"}).status_code == 502
    assert http.get("/events").status_code == 502
    assert http.get("/events/evt_x").status_code == 404
    server.configure(faults=[FaultRule("*", fault=fail)])
    assert http.get("/workflows").status_code == 500
    assert httpx.get(server.url + "/_testing/ledger").status_code == 200


def test_scripted_sequence(http: httpx.Client, server: LocalServer) -> None:
    server.configure(
        faults=[
            FaultRule(
                EVENTS,
                sequence=[Fault("status", status=500), None, Fault("status", status=503), None],
            )
        ]
    )
    statuses = [
        http.post("/events", json={"type": "s", "data": {"i": i}}).status_code for i in range(6)
    ]
    assert statuses == [500, 201, 503, 201, 201, 201]
    assert len(server.ledger.events) == 4
    assert server.ledger.attempts[EVENTS] == 6
    server.reset()  # the script starts over
    assert http.post("/events", json={"type": "s"}).status_code == 500


def pattern(seed: int, probability: float = 0.3, n: int = 60) -> list[int]:
    rule = FaultRule(EVENTS, fault=Fault("status", status=503), probability=probability)
    with LocalServer(ServerConfig(faults=[rule], seed=seed)) as srv:
        headers = {"Authorization": f"Bearer {srv.api_key}"}
        with httpx.Client(base_url=srv.base_url, headers=headers) as client:
            codes = [
                client.post("/events", json={"type": "p", "data": {"i": i}}).status_code
                for i in range(n)
            ]
        assert len(srv.ledger.events) == codes.count(201)
        return codes


def test_seeded_probability_is_reproducible() -> None:
    first = pattern(seed=7)
    assert first == pattern(seed=7)
    assert set(first) == {201, 503}
    assert 5 <= first.count(503) <= 35
    assert first != pattern(seed=8)
    assert pattern(seed=7, probability=0.0).count(503) == 0


def test_configure_seed_restarts_the_draws(http: httpx.Client, server: LocalServer) -> None:
    rule = FaultRule(EVENTS, fault=Fault("status", status=503), probability=0.5)
    server.configure(faults=[rule], seed=3)
    a = [http.post("/events", json={"type": "a"}).status_code for _ in range(20)]
    server.configure(seed=3)
    b = [http.post("/events", json={"type": "a"}).status_code for _ in range(20)]
    assert a == b


@pytest.mark.parametrize(
    "bad",
    [
        lambda: Fault("explode"),  # type: ignore[arg-type]
        lambda: Fault("status", status=404),
        lambda: Fault("delay", delay=-1),
        lambda: FaultRule(EVENTS),
        lambda: FaultRule(EVENTS, fault=Fault("html_502"), sequence=[None]),
        lambda: FaultRule("events", fault=Fault("html_502")),
        lambda: FaultRule(EVENTS, fault=Fault("html_502"), probability=1.5),
    ],
)
def test_invalid_fault_config(bad: object) -> None:
    with pytest.raises((ValueError, TypeError)):
        bad()  # type: ignore[operator]


@pytest.mark.anyio
async def test_faults_seen_by_an_async_client(server: LocalServer) -> None:
    server.configure(
        faults=[
            FaultRule(
                EVENTS, sequence=[Fault("reset_before"), Fault("truncated"), Fault("html_502")]
            )
        ]
    )
    headers = {"Authorization": f"Bearer {server.api_key}"}
    async with httpx.AsyncClient(base_url=server.base_url, headers=headers) as client:
        with pytest.raises(httpx.ReadError):
            await client.post("/events", json={"type": "a"})
        with pytest.raises(httpx.RemoteProtocolError):
            await client.post("/events", json={"type": "b"})
        assert (await client.post("/events", json={"type": "c"})).status_code == 502
        assert (await client.post("/events", json={"type": "d"})).status_code == 201
    assert [e["type"] for e in server.ledger.events] == ["b", "d"]
