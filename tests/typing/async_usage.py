"""Type-checked (mypy --strict, pyright strict), not run: everyday use of ``ventryx``."""

from __future__ import annotations

from collections.abc import AsyncIterator

import ventryx
from ventryx import AsyncPage, AsyncVentryx, Event, Step, Workflow


async def list_and_iterate(client: AsyncVentryx) -> list[str]:
    page: AsyncPage[Workflow] = await client.workflows.list(per_page=50)
    names = [workflow.name for workflow in page.data]
    total: int = page.meta.total
    following: AsyncPage[Workflow] | None = await page.next_page()
    if following is not None:
        names += [workflow.name for workflow in following]
    pages: AsyncIterator[AsyncPage[Event]] = client.events.list(type="x").iter_pages()
    names += [str(len(p.data)) async for p in pages]
    names += [wf.id async for wf in client.workflows.list()]  # every item of every page
    return [*names, str(total)]


async def create_and_emit(client: AsyncVentryx) -> Event:
    workflow: Workflow = await client.workflows.create(
        name="Onboarding",
        trigger={"event": "user.registered"},
        steps=[Step("send_notification", {"channel": "email"}), {"type": "wait", "hours": 1}],
        idempotency_key="create-onboarding",
    )
    await client.workflows.update(workflow.id, name="Onboarding v2")
    deleted = await client.workflows.delete(workflow.id)
    assert deleted.deleted
    event: Event = await client.events.emit(type="user.registered", data={"user_id": "u_1"})
    summary = await client.events.emit_many(
        [{"type": "import", "data": {"n": n}} for n in range(3)], concurrency=4
    )
    assert summary.delivered + summary.failed <= summary.pulled
    return event


async def errors(client: AsyncVentryx) -> float | None:
    try:
        await client.events.retrieve("evt_missing")
    except ventryx.NotFoundError as exc:
        return float(exc.status_code)
    except ventryx.RateLimitError as exc:
        return exc.retry_after
    return None


async def lifecycle() -> str:
    async with AsyncVentryx("vx_test_key", base_url="http://127.0.0.1:8000/v1") as client:
        quick = client.with_options(timeout=2.0, max_retries=0)
        assert not quick.is_closed
        return f"{client.base_url} {client.timeout} {client.max_retries} {client!r}"


def a_misspelt_name_is_an_error() -> None:
    # The lazy names must not come from a module __getattr__ that type checkers see: it would
    # make any name `Any`. Were this no longer an error, mypy --strict would flag the unused ignore.
    _ = ventryx.Workflw  # type: ignore[attr-defined]


async def shared_limit() -> float | None:
    gate = ventryx.RedisRateGate("redis://127.0.0.1:6379/0", key="ventryx:acct_42")
    async with AsyncVentryx("vx_test_key", rate_gate=gate) as client:
        await client.events.emit(type="t", data={})
        return gate.rate
