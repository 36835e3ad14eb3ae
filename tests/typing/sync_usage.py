"""Type-checked (mypy --strict, pyright strict), not run: everyday use of ``ventryx_sync``.

As in async_usage.py, every public call's result goes through ``assert_type``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import httpx

import ventryx
import ventryx_sync
from ventryx import BulkSummary, DeletedWorkflow, Event, PageMeta, Step, Workflow
from ventryx_sync import Page, Ventryx

if sys.version_info >= (3, 11):
    from typing import assert_type
else:
    from typing_extensions import assert_type


def list_and_iterate(client: Ventryx) -> list[str]:
    page = client.workflows.list(per_page=50)
    assert_type(page, Page[Workflow])
    assert_type(page.data, list[Workflow])
    assert_type(page.meta, PageMeta)
    total = page.meta.total
    assert_type(total, int)
    assert_type(page.has_next_page, bool)
    names = [workflow.name for workflow in page.data]
    following = page.next_page() if page.has_next_page else None
    assert_type(following, Page[Workflow] | None)
    if following is not None:
        names += [workflow.name for workflow in following]
    pages = client.events.list(type="user.registered").iter_pages()
    assert_type(pages, Iterator[Page[Event]])
    names += [str(len(p.data)) for p in pages]
    assert_type(page.iter_items(), Iterator[Workflow])
    for wf in client.workflows.list():  # every item of every page
        assert_type(wf, Workflow)
        names.append(wf.id)
    assert_type(client.workflows.retrieve("wf_1"), Workflow)
    return [*names, str(total)]


def create_and_emit(client: Ventryx) -> Event:
    workflow = client.workflows.create(
        name="Onboarding",
        trigger={"event": "user.registered"},
        steps=[Step("send_notification", {"channel": "email"}), {"type": "wait", "hours": 1}],
        idempotency_key="create-onboarding",
    )
    assert_type(workflow, Workflow)
    assert_type(client.workflows.update(workflow.id, name="Onboarding v2"), Workflow)
    deleted = client.workflows.delete(workflow.id)
    assert_type(deleted, DeletedWorkflow)
    assert deleted.deleted
    event = client.events.emit(type="user.registered", data={"user_id": "u_1"}, timeout=5.0)
    assert_type(event, Event)
    summary = client.events.emit_many(
        [{"type": "import", "data": {"n": n}} for n in range(3)], concurrency=4
    )
    assert_type(summary, BulkSummary)
    assert summary.delivered + summary.failed <= summary.pulled
    return event


def errors(client: Ventryx) -> float | None:
    try:
        assert_type(client.events.retrieve("evt_missing"), Event)
    except ventryx.NotFoundError as exc:
        assert_type(exc.status_code, int)
        return float(exc.status_code)
    except ventryx_sync.RateLimitError as exc:  # the same class as ventryx.RateLimitError
        assert_type(exc.retry_after, float | None)
        return exc.retry_after
    except ventryx.APIError:
        raise
    return None


def lifecycle() -> str:
    with Ventryx("vx_test_key", base_url="http://127.0.0.1:8000/v1", max_retries=3) as client:
        assert_type(client, Ventryx)
        quick = client.with_options(timeout=2.0, max_retries=0)
        assert_type(quick, Ventryx)
        assert_type(quick.is_closed, bool)
        assert_type(client.base_url, str)
        assert_type(client.timeout, httpx.Timeout | None)
        assert_type(client.max_retries, int)
        assert_type(quick.close(), None)
        return f"{client.base_url} {client.timeout} {client.max_retries} {client!r}"


def a_misspelt_name_is_an_error() -> None:
    # As in async_usage.py: ventryx_sync's lazy names must not make every name `Any`.
    _ = ventryx_sync.Evnt  # type: ignore[attr-defined]


def shared_limit() -> str:
    gate = ventryx_sync.RedisRateGate("redis://127.0.0.1:6379/0", key="ventryx:acct_42", ttl=60.0)
    with Ventryx("vx_test_key", rate_gate=gate) as client:
        return f"{client!r} {gate.key} {gate.rate}"
