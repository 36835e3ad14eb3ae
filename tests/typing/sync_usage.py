"""Type-checked (mypy --strict, pyright strict), not run: everyday use of ``ventryx_sync``."""

from __future__ import annotations

from collections.abc import Iterator

import ventryx
import ventryx_sync
from ventryx import Event, Step, Workflow
from ventryx_sync import Page, Ventryx


def list_and_iterate(client: Ventryx) -> list[str]:
    page: Page[Workflow] = client.workflows.list(per_page=50)
    names = [workflow.name for workflow in page.data]
    total: int = page.meta.total
    following: Page[Workflow] | None = page.next_page() if page.has_next_page else None
    if following is not None:
        names += [workflow.name for workflow in following]
    pages: Iterator[Page[Event]] = client.events.list(type="user.registered").iter_pages()
    names += [str(len(p.data)) for p in pages]
    names += [wf.id for wf in client.workflows.list()]  # every item of every page
    return [*names, str(total)]


def create_and_emit(client: Ventryx) -> Event:
    workflow: Workflow = client.workflows.create(
        name="Onboarding",
        trigger={"event": "user.registered"},
        steps=[Step("send_notification", {"channel": "email"}), {"type": "wait", "hours": 1}],
        idempotency_key="create-onboarding",
    )
    client.workflows.update(workflow.id, name="Onboarding v2")
    deleted = client.workflows.delete(workflow.id)
    assert deleted.deleted
    event: Event = client.events.emit(type="user.registered", data={"user_id": "u_1"}, timeout=5.0)
    summary = client.events.emit_many(
        [{"type": "import", "data": {"n": n}} for n in range(3)], concurrency=4
    )
    assert summary.delivered + summary.failed <= summary.pulled
    return event


def errors(client: Ventryx) -> float | None:
    try:
        client.events.retrieve("evt_missing")
    except ventryx.NotFoundError as exc:
        return float(exc.status_code)
    except ventryx_sync.RateLimitError as exc:  # the same class as ventryx.RateLimitError
        return exc.retry_after
    except ventryx.APIError:
        raise
    return None


def lifecycle() -> str:
    with Ventryx("vx_test_key", base_url="http://127.0.0.1:8000/v1", max_retries=3) as client:
        quick = client.with_options(timeout=2.0, max_retries=0)
        assert not quick.is_closed
        return f"{client.base_url} {client.timeout} {client.max_retries} {client!r}"


def a_misspelt_name_is_an_error() -> None:
    # As in async_usage.py: ventryx_sync's lazy names must not make every name `Any`.
    _ = ventryx_sync.Evnt  # type: ignore[attr-defined]


def shared_limit() -> str:
    gate = ventryx_sync.RedisRateGate("redis://127.0.0.1:6379/0", key="ventryx:acct_42", ttl=60.0)
    with Ventryx("vx_test_key", rate_gate=gate) as client:
        return f"{client!r} {gate.key} {gate.rate}"
