"""Idempotency-Key semantics of the local server: replay, reuse (422), in flight (409)."""

from __future__ import annotations

from collections.abc import Iterator

import anyio
import httpx
import pytest

from ventryx.testing import Fault, FaultRule, LocalServer

WORKFLOW = {"name": "n", "trigger": {"event": "e"}, "steps": [{"type": "s"}]}


@pytest.fixture
def http(server: LocalServer) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=server.base_url, headers={"Authorization": f"Bearer {server.api_key}"}
    ) as client:
        yield client


def test_replay_returns_the_first_response_without_a_second_effect(
    http: httpx.Client, server: LocalServer
) -> None:
    body = {"type": "order.paid", "data": {"order": 1}}
    first = http.post("/events", json=body, headers={"Idempotency-Key": "k-1"})
    assert first.status_code == 201
    assert "idempotent-replayed" not in first.headers
    for _ in range(3):
        again = http.post("/events", json=body, headers={"Idempotency-Key": "k-1"})
        assert again.status_code == 201
        assert again.headers["idempotent-replayed"] == "true"
        assert again.json() == first.json()
        assert again.headers["x-request-id"] != first.headers["x-request-id"]
    events = server.ledger.events
    assert len(events) == 1
    assert events[0]["idempotency_key"] == "k-1"
    assert server.ledger.replays == 3
    assert server.ledger.duplicates == 0
    assert server.ledger.attempts["POST /v1/events"] == 4


def test_fingerprint_ignores_key_order_but_not_values(
    http: httpx.Client, server: LocalServer
) -> None:
    key = {"Idempotency-Key": "k-2", "Content-Type": "application/json"}
    assert (
        http.post("/events", content=b'{"type":"a","data":{"x":1,"y":2}}', headers=key).status_code
        == 201
    )
    same = http.post("/events", content=b'{"data":{"y":2,"x":1},"type":"a"}', headers=key)
    assert same.headers["idempotent-replayed"] == "true"
    reused = http.post("/events", json={"type": "a", "data": {"x": 2, "y": 2}}, headers=key)
    assert reused.status_code == 422
    assert reused.json()["error"]["code"] == "idempotency_key_reused"
    other_path = http.post("/workflows", json=WORKFLOW, headers=key)
    assert other_path.status_code == 422
    assert len(server.ledger.events) == 1
    assert server.ledger.workflow_writes == []


def test_keys_are_scoped_per_api_key(server: LocalServer) -> None:
    server.configure(api_keys=frozenset({"key-a", "key-b"}))
    body = {"type": "a", "data": {"n": 1}}
    for api_key in ("key-a", "key-b"):
        resp = httpx.post(
            server.base_url + "/events",
            json=body,
            headers={"Authorization": f"Bearer {api_key}", "Idempotency-Key": "shared"},
        )
        assert resp.status_code == 201
        assert "idempotent-replayed" not in resp.headers
    assert len(server.ledger.events) == 2
    assert server.ledger.duplicates == 1  # same (type, data) applied twice: counted


def test_failed_first_attempt_leaves_the_key_free(http: httpx.Client, server: LocalServer) -> None:
    key = {"Idempotency-Key": "k-3"}
    assert http.post("/events", json={"type": ""}, headers=key).status_code == 400
    ok = http.post("/events", json={"type": "fixed"}, headers=key)
    assert ok.status_code == 201
    assert "idempotent-replayed" not in ok.headers
    assert len(server.ledger.events) == 1


def test_patch_and_delete_are_idempotent_too(http: httpx.Client, server: LocalServer) -> None:
    wf = http.post("/workflows", json=WORKFLOW, headers={"Idempotency-Key": "c"}).json()["data"]
    replay = http.post("/workflows", json=WORKFLOW, headers={"Idempotency-Key": "c"})
    assert replay.json()["data"]["id"] == wf["id"]
    for _ in range(2):
        patched = http.patch(
            f"/workflows/{wf['id']}", json={"name": "m"}, headers={"Idempotency-Key": "p"}
        )
        assert patched.status_code == 200
    for _ in range(2):
        deleted = http.delete(f"/workflows/{wf['id']}", headers={"Idempotency-Key": "d"})
        assert deleted.status_code == 200
        assert deleted.json()["data"] == {"id": wf["id"], "deleted": True}
    assert [w["op"] for w in server.ledger.workflow_writes] == ["create", "update", "delete"]
    assert server.ledger.replays == 3


def test_duplicates_without_a_key_are_counted(http: httpx.Client, server: LocalServer) -> None:
    for _ in range(3):
        http.post("/events", json={"type": "dup", "data": {"same": True}})
    http.post("/events", json={"type": "dup", "data": {"same": False}})
    assert server.ledger.duplicates == 2
    assert server.ledger.snapshot()["duplicates"] == 2


def test_keys_expire_after_a_day(server: LocalServer) -> None:
    now = [1000.0]
    server.app._clock = lambda: now[0]  # the store reads the injectable clock
    auth = {"Authorization": f"Bearer {server.api_key}", "Idempotency-Key": "old"}
    url = server.base_url + "/events"
    httpx.post(url, json={"type": "a"}, headers=auth)
    now[0] += 24 * 3600 - 1
    assert (
        httpx.post(url, json={"type": "a"}, headers=auth).headers.get("idempotent-replayed")
        == "true"
    )
    now[0] += 2
    assert "idempotent-replayed" not in httpx.post(url, json={"type": "a"}, headers=auth).headers
    assert len(server.ledger.events) == 2


@pytest.mark.anyio
async def test_same_key_in_flight_is_409(server: LocalServer) -> None:
    server.configure(faults=[FaultRule("POST /v1/events", sequence=[Fault("delay", delay=0.5)])])
    headers = {"Authorization": f"Bearer {server.api_key}", "Idempotency-Key": "slow"}
    body = {"type": "slow", "data": {"n": 1}}
    results: dict[str, httpx.Response] = {}
    async with httpx.AsyncClient(base_url=server.base_url, headers=headers) as client:

        async def first() -> None:
            results["first"] = await client.post("/events", json=body)

        async with anyio.create_task_group() as tg:
            tg.start_soon(first)
            with anyio.fail_after(5):
                # the server runs in another thread: poll its ledger
                while server.ledger.attempts["POST /v1/events"] < 1:  # noqa: ASYNC110
                    await anyio.sleep(0.005)
            results["second"] = await client.post("/events", json=body)
            results["different"] = await client.post("/events", json={"type": "other"})
        results["third"] = await client.post("/events", json=body)

    second = results["second"]
    assert second.status_code == 409
    assert second.json()["error"]["code"] == "idempotency_conflict"
    assert results["different"].status_code == 422
    assert results["first"].status_code == 201
    assert results["third"].status_code == 201
    assert results["third"].headers["idempotent-replayed"] == "true"
    assert results["third"].json() == results["first"].json()
    assert len(server.ledger.events) == 1
    assert server.ledger.faults["delay"] == 1
