"""Type-checked (mypy --strict, pyright strict), not run: everyday use of ``ventryx``.

Every public call's result goes through ``assert_type``: an annotation on a variable accepts
``Any`` silently, ``assert_type`` does not (tests/test_typing_checks.py proves it fails then).
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator

import httpx

import ventryx
from ventryx import (
    AsyncPage,
    AsyncPager,
    AsyncVentryx,
    BulkSummary,
    DeletedWorkflow,
    Event,
    PageMeta,
    Step,
    Workflow,
)

if sys.version_info >= (3, 11):
    from typing import assert_type
else:
    from typing_extensions import assert_type


async def list_and_iterate(client: AsyncVentryx) -> list[str]:
    pager = client.workflows.list(per_page=50)
    assert_type(pager, AsyncPager[Workflow])
    page = await pager
    assert_type(page, AsyncPage[Workflow])
    assert_type(await pager.first_page(), AsyncPage[Workflow])
    assert_type(page.data, list[Workflow])
    assert_type(page.meta, PageMeta)
    total = page.meta.total
    assert_type(total, int)
    assert_type(page.has_next_page, bool)
    names = [workflow.name for workflow in page.data]
    following = await page.next_page()
    assert_type(following, AsyncPage[Workflow] | None)
    if following is not None:
        names += [workflow.name for workflow in following]
    pages = client.events.list(type="x").iter_pages()
    assert_type(pages, AsyncIterator[AsyncPage[Event]])
    names += [str(len(p.data)) async for p in pages]
    assert_type(page.iter_items(), AsyncIterator[Workflow])
    assert_type(page.iter_pages(), AsyncIterator[AsyncPage[Workflow]])
    async for wf in client.workflows.list():  # every item of every page
        assert_type(wf, Workflow)
        names.append(wf.id)
    assert_type(await client.workflows.retrieve("wf_1"), Workflow)
    return [*names, str(total)]


async def create_and_emit(client: AsyncVentryx) -> Event:
    workflow = await client.workflows.create(
        name="Onboarding",
        trigger={"event": "user.registered"},
        steps=[Step("send_notification", {"channel": "email"}), {"type": "wait", "hours": 1}],
        idempotency_key="create-onboarding",
    )
    assert_type(workflow, Workflow)
    assert_type(await client.workflows.update(workflow.id, name="Onboarding v2"), Workflow)
    deleted = await client.workflows.delete(workflow.id)
    assert_type(deleted, DeletedWorkflow)
    assert deleted.deleted
    event = await client.events.emit(type="user.registered", data={"user_id": "u_1"})
    assert_type(event, Event)
    summary = await client.events.emit_many(
        [{"type": "import", "data": {"n": n}} for n in range(3)], concurrency=4
    )
    assert_type(summary, BulkSummary)
    assert summary.delivered + summary.failed <= summary.pulled
    return event


async def errors(client: AsyncVentryx) -> float | None:
    try:
        assert_type(await client.events.retrieve("evt_missing"), Event)
    except ventryx.NotFoundError as exc:
        assert_type(exc.status_code, int)
        return float(exc.status_code)
    except ventryx.RateLimitError as exc:
        assert_type(exc.retry_after, float | None)
        return exc.retry_after
    return None


async def lifecycle() -> str:
    async with AsyncVentryx("vx_test_key", base_url="http://127.0.0.1:8000/v1") as client:
        assert_type(client, AsyncVentryx)
        quick = client.with_options(timeout=2.0, max_retries=0)
        assert_type(quick, AsyncVentryx)
        assert_type(quick.is_closed, bool)
        assert_type(client.base_url, str)
        assert_type(client.timeout, httpx.Timeout | None)
        assert_type(client.max_retries, int)
        assert_type(await quick.aclose(), None)
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
