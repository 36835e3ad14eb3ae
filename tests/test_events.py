"""``client.events`` against the local server."""

from __future__ import annotations

import pytest

import ventryx
from ventryx.testing import LocalServer

pytestmark = pytest.mark.anyio


async def test_emit_without_data_sends_an_empty_object(client) -> None:
    event = await client.events.emit(type="ping")
    assert event.data == {}


async def test_retrieve_and_list_with_type_filter(client) -> None:
    a = await client.events.emit(type="a", data={"n": 1})
    await client.events.emit(type="b", data={"n": 2})
    assert await client.events.retrieve(a.id) == a
    page = await client.events.list(type="a")
    assert [e.id for e in page.data] == [a.id]
    assert page.meta.total == 1


async def test_emit_sends_an_idempotency_key_the_caller_can_choose(
    client, server: LocalServer
) -> None:
    first = await client.events.emit(type="t", data={"n": 1}, idempotency_key="import-42")
    again = await client.events.emit(type="t", data={"n": 1}, idempotency_key="import-42")
    assert again.id == first.id
    assert len(server.ledger.events) == 1
    assert server.ledger.replays == 1
    assert server.ledger.requests[0].idempotency_key == "import-42"


async def test_each_call_gets_its_own_generated_key(client, server: LocalServer) -> None:
    await client.events.emit(type="t", data={"n": 1})
    await client.events.emit(type="t", data={"n": 1})
    keys = [r.idempotency_key for r in server.ledger.requests]
    assert len(keys) == 2
    assert all(keys)
    assert keys[0] != keys[1]


async def test_reusing_a_key_with_another_body_is_a_typed_error(client) -> None:
    await client.events.emit(type="t", data={"n": 1}, idempotency_key="k-1")
    with pytest.raises(ventryx.UnprocessableEntityError) as info:
        await client.events.emit(type="t", data={"n": 2}, idempotency_key="k-1")
    assert info.value.code == "idempotency_key_reused"


def _nested(depth: int) -> dict[str, object]:
    data: dict[str, object] = {}
    for _ in range(depth):
        data = {"d": data}
    return data


def _circular() -> dict[str, object]:
    data: dict[str, object] = {"a": 1}
    data["self"] = data
    return data


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"type": ""}, "type"),
        ({"type": None}, "type"),
        ({"type": "t", "data": ["not", "an", "object"]}, "data"),
        ({"type": "t", "data": "text"}, "data"),
        ({"type": "t", "data": {1: "int key"}}, "data"),
        ({"type": "t", "data": {"when": object()}}, "data"),
        ({"type": "t", "data": {"x": float("nan")}}, "data"),
        ({"type": "t", "data": {"a": [{"b": {2: "nested int key"}}]}}, "data"),
        ({"type": "t", "data": _nested(100_000)}, "data"),  # deeper than json goes (3.13 too)
        ({"type": "t", "data": _circular()}, "data"),
        ({"type": "t", "idempotency_key": ""}, "idempotency_key"),
        ({"type": "t", "idempotency_key": "line\nbreak"}, "idempotency_key"),
        ({"type": "t", "extra_headers": {"X-A": "1\r\nX-Injected: 1"}}, "extra_headers"),
        ({"type": "t", "timeout": -1}, "timeout"),
        ({"type": "t", "max_retries": -1}, "max_retries"),
    ],
)
async def test_bad_input_is_refused_before_sending(
    client, server: LocalServer, kwargs, param
) -> None:
    with pytest.raises(ventryx.InvalidInputError) as info:
        await client.events.emit(**kwargs)
    assert info.value.param == param
    assert sum(server.ledger.attempts.values()) == 0


async def test_event_ids_are_encoded(client, server: LocalServer) -> None:
    await client.events.emit(type="canary")
    for bad in ["../workflows", "a/b?c#d", "%", ".."]:
        with pytest.raises(ventryx.NotFoundError):
            await client.events.retrieve(bad)
    paths = [r.path for r in server.ledger.requests if r.method == "GET"]
    assert all(p.startswith("/v1/events/") and p.count("/") == 3 for p in paths)
