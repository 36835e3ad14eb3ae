"""Every operation of the published Examples page, done through the SDK on the local server."""

from __future__ import annotations

import pytest

import ventryx
from ventryx.testing import LocalServer

pytestmark = pytest.mark.anyio

# The Examples page's request bodies, as published.
ONBOARDING = {
    "name": "User onboarding",
    "trigger": {"event": "user.registered"},
    "steps": [{"type": "send_notification", "channel": "email", "template": "welcome"}],
}
REGISTERED = {
    "type": "user.registered",
    "data": {"user_id": "usr_12345", "email": "[email protected]", "plan": "pro"},
}


async def test_list_workflows(client) -> None:
    page = await client.workflows.list()
    assert page.data == []
    assert page.meta.total == 0


async def test_create_workflow_from_the_docs_payload(client, server: LocalServer) -> None:
    workflow = await client.workflows.create(**ONBOARDING)
    assert workflow.id.startswith("wf_")
    assert workflow.name == "User onboarding"
    assert workflow.trigger.event == "user.registered"
    assert workflow.steps[0].type == "send_notification"
    assert workflow.steps[0]["channel"] == "email"
    assert workflow.steps[0]["template"] == "welcome"
    assert workflow.created_at.tzinfo is not None
    assert [w["op"] for w in server.ledger.workflow_writes] == ["create"]


async def test_emit_event_from_the_docs_payload(client, server: LocalServer) -> None:
    event = await client.events.emit(**REGISTERED)
    assert event.id.startswith("evt_")
    assert event.type == "user.registered"
    assert event.data == REGISTERED["data"]
    assert [e["id"] for e in server.ledger.events] == [event.id]


async def test_pagination_as_documented(client) -> None:
    for n in range(143):
        await client.workflows.create(
            name=f"wf {n}", trigger={"event": "user.registered"}, steps=[]
        )
    page = await client.workflows.list(page=2, per_page=50)
    assert (page.meta.total, page.meta.page, page.meta.per_page) == (143, 2, 50)
    assert [w.name for w in page.data] == [f"wf {n}" for n in range(50, 100)]


async def test_error_handling_gives_the_machine_readable_code(make_client) -> None:
    client = make_client(api_key="vx_wrong_key")
    with pytest.raises(ventryx.AuthenticationError) as info:
        await client.workflows.list()
    assert info.value.status_code == 401
    assert info.value.code == "authentication_failed"
    assert info.value.message
