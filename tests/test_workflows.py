"""``client.workflows`` against the local server."""

from __future__ import annotations

import pytest

import ventryx
from ventryx import Step, Trigger
from ventryx.testing import LocalServer

pytestmark = pytest.mark.anyio

STEP = {"type": "send_notification", "channel": "email", "template": "welcome"}


async def test_create_accepts_models(client) -> None:
    workflow = await client.workflows.create(
        name="Typed",
        trigger=Trigger(event="order.paid"),
        steps=[Step("send_notification", {"channel": "sms", "template": "paid"})],
    )
    assert workflow.trigger == Trigger(event="order.paid")
    assert workflow.steps == (Step("send_notification", {"channel": "sms", "template": "paid"}),)


async def test_retrieve_returns_what_was_created(client) -> None:
    created = await client.workflows.create(name="A", trigger={"event": "e"}, steps=[STEP])
    fetched = await client.workflows.retrieve(created.id)
    assert fetched == created
    assert fetched.raw_response is not None
    assert fetched.raw_response.status_code == 200
    assert fetched.raw_response.request_id


async def test_update_changes_only_what_is_passed(client) -> None:
    created = await client.workflows.create(name="Before", trigger={"event": "e"}, steps=[STEP])
    updated = await client.workflows.update(created.id, name="After")
    assert updated.name == "After"
    assert updated.trigger == created.trigger
    assert updated.steps == created.steps
    assert updated.updated_at is not None


async def test_unknown_step_types_and_fields_round_trip(client) -> None:
    exotic = {"type": "wait_for_webhook", "url": "https://x.test", "retries": {"max": 3}}
    created = await client.workflows.create(
        name="Exotic",
        trigger={"event": "e", "filter": {"plan": "pro"}},
        steps=[STEP, exotic],
    )
    assert created.steps[1] == Step(
        "wait_for_webhook", {"url": "https://x.test", "retries": {"max": 3}}
    )
    assert created.trigger.extra == {"filter": {"plan": "pro"}}
    # Read, write back unchanged, read again: nothing lost.
    fetched = await client.workflows.retrieve(created.id)
    await client.workflows.update(fetched.id, trigger=fetched.trigger, steps=fetched.steps)
    again = await client.workflows.retrieve(created.id)
    assert again.steps == created.steps
    assert again.trigger == created.trigger


async def test_delete(client) -> None:
    created = await client.workflows.create(name="Doomed", trigger={"event": "e"}, steps=[])
    result = await client.workflows.delete(created.id)
    assert (result.id, result.deleted) == (created.id, True)
    with pytest.raises(ventryx.NotFoundError) as info:
        await client.workflows.retrieve(created.id)
    assert info.value.code == "not_found"


@pytest.mark.parametrize(
    "bad_id", ["../events", "a/b?c#d", "..", ".", "%2e%2e", "wf_1/../../events", "é€"]
)
async def test_ids_stay_one_path_segment(client, server: LocalServer, bad_id: str) -> None:
    await client.events.emit(type="canary")
    with pytest.raises(ventryx.NotFoundError):
        await client.workflows.retrieve(bad_id)
    with pytest.raises(ventryx.NotFoundError):
        await client.workflows.delete(bad_id)
    last = server.ledger.requests[-1]
    assert last.method == "DELETE"
    assert last.path.startswith("/v1/workflows/")
    assert last.path.count("/") == 3
    assert len(server.ledger.events) == 1


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"name": "", "trigger": {"event": "e"}, "steps": []}, "name"),
        ({"name": "   ", "trigger": {"event": "e"}, "steps": []}, "name"),
        ({"name": 7, "trigger": {"event": "e"}, "steps": []}, "name"),
        ({"name": "n", "trigger": {}, "steps": []}, "trigger.event"),
        ({"name": "n", "trigger": "user.registered", "steps": []}, "trigger"),
        ({"name": "n", "trigger": {"event": "e"}, "steps": "send"}, "steps"),
        (
            {"name": "n", "trigger": {"event": "e"}, "steps": [{"channel": "email"}]},
            "steps[0].type",
        ),
        ({"name": "n", "trigger": {"event": "e"}, "steps": [STEP, 3]}, "steps[1]"),
        ({"name": "n", "trigger": {"event": "e"}, "steps": [{"type": "x", "v": {1, 2}}]}, "steps"),
    ],
)
async def test_bad_input_is_refused_before_sending(
    client, server: LocalServer, kwargs, param
) -> None:
    with pytest.raises(ventryx.InvalidInputError) as info:
        await client.workflows.create(**kwargs)
    assert info.value.param == param
    assert param in str(info.value)
    assert sum(server.ledger.attempts.values()) == 0


async def test_update_needs_a_field_and_a_valid_id(client, server: LocalServer) -> None:
    with pytest.raises(ventryx.InvalidInputError, match="at least one"):
        await client.workflows.update("wf_1")
    with pytest.raises(ventryx.InvalidInputError, match="workflow_id"):
        await client.workflows.update("", name="x")
    with pytest.raises(ventryx.InvalidInputError, match="workflow_id"):
        await client.workflows.retrieve(None)
    assert sum(server.ledger.attempts.values()) == 0
