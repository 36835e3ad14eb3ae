"""Pages and the pager: one page by ``await``, every item by ``async for``."""

from __future__ import annotations

import pytest

import ventryx
from ventryx.testing import LocalServer

pytestmark = pytest.mark.anyio


async def _emit(client, n: int) -> list[str]:
    return [(await client.events.emit(type="p", data={"i": i})).id for i in range(n)]


async def test_first_page_and_next_page(client) -> None:
    ids = await _emit(client, 5)
    page = await client.events.list(per_page=2)
    assert [e.id for e in page.data] == ids[:2]
    assert page.has_next_page
    second = await page.next_page()
    assert second is not None
    assert [e.id for e in second.data] == ids[2:4]
    third = await second.next_page()
    assert third is not None
    assert [e.id for e in third.data] == ids[4:]
    assert not third.has_next_page
    assert await third.next_page() is None


async def test_iteration_walks_every_page_one_request_each(client, server: LocalServer) -> None:
    ids = await _emit(client, 7)
    before = server.ledger.attempts["GET /v1/events"]
    seen = [e.id async for e in client.events.list(per_page=3)]
    assert seen == ids
    assert server.ledger.attempts["GET /v1/events"] - before == 3


async def test_iteration_is_lazy(client, server: LocalServer) -> None:
    await _emit(client, 6)
    before = server.ledger.attempts["GET /v1/events"]
    async for _ in client.events.list(per_page=2):
        break
    assert server.ledger.attempts["GET /v1/events"] - before == 1


async def test_empty_and_past_the_end(client) -> None:
    assert [e async for e in client.workflows.list()] == []
    await _emit(client, 2)
    page = await client.events.list(page=5, per_page=2)
    assert page.data == []
    assert page.meta.total == 2
    assert not page.has_next_page


async def test_page_sizes_at_the_edges(client) -> None:
    await _emit(client, 3)
    assert len((await client.events.list(per_page=1)).data) == 1
    assert len((await client.events.list(per_page=100)).data) == 3


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"per_page": 0}, "per_page"),
        ({"per_page": 101}, "per_page"),
        ({"per_page": -1}, "per_page"),
        ({"per_page": "20"}, "per_page"),
        ({"per_page": True}, "per_page"),
        ({"page": 0}, "page"),
        ({"page": 1.5}, "page"),
    ],
)
async def test_bad_page_parameters_are_refused_before_sending(
    client, server: LocalServer, kwargs, param
) -> None:
    with pytest.raises(ventryx.InvalidInputError) as info:
        await client.workflows.list(**kwargs)
    assert info.value.param == param
    assert sum(server.ledger.attempts.values()) == 0
