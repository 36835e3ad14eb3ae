"""The data behind the API: workflows and events in memory, and what each endpoint does to them.

Every effect takes one ``Call`` (the checked input of a request) and returns the ``Response``;
the app calls them under its lock, after the checks and the idempotency store have passed.
"""

from __future__ import annotations

from typing import Any

import attrs

from ventryx.testing._ledger import Ledger
from ventryx.testing._messages import Invalid, Response, error, json_response, new_id, now

__all__ = ["Call", "Store"]


@attrs.frozen
class Call:
    """One request's checked input, as an effect receives it."""

    resource_id: str | None
    body: dict[str, Any] | None
    params: dict[str, str]
    idempotency_key: str | None
    headers: list[tuple[str, str]]  # extra answer headers (the rate-limit state)


def _positive_int(params: dict[str, str], name: str, default: int, top: int | None) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    value = int(raw) if raw.isascii() and raw.isdigit() else 0
    if value < 1 or (top is not None and value > top):
        if top is None:
            raise Invalid(f"{name} must be an integer >= 1")
        raise Invalid(f"{name} must be an integer between 1 and {top}")
    return value


def _page(items: list[dict[str, Any]], call: Call) -> Response:
    page = _positive_int(call.params, "page", 1, None)
    per_page = _positive_int(call.params, "per_page", 20, 100)
    start = (page - 1) * per_page
    payload = {
        "data": items[start : start + per_page],
        "meta": {"total": len(items), "page": page, "per_page": per_page},
    }
    return json_response(200, payload, call.headers)


class Store:
    """Workflows by id and events in order; writes are reported to the ledger."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.workflows: dict[str, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        self.events_by_id: dict[str, dict[str, Any]] = {}

    def clear(self) -> None:
        self.workflows.clear()
        self.events.clear()
        self.events_by_id.clear()

    # -- events --------------------------------------------------------------------------
    def create_event(self, call: Call) -> Response:
        assert call.body is not None
        event = {
            "id": new_id("evt_"),
            "type": call.body["type"],
            "data": call.body.get("data", {}),
            "created_at": now(),
        }
        self.events.append(event)
        self.events_by_id[event["id"]] = event
        self.ledger.add_event(event, call.idempotency_key)
        return json_response(201, {"data": event}, call.headers)

    def list_events(self, call: Call) -> Response:
        kind = call.params.get("type")
        events = self.events if kind is None else [e for e in self.events if e["type"] == kind]
        return _page(events, call)

    def get_event(self, call: Call) -> Response:
        assert call.resource_id is not None
        found = self.events_by_id.get(call.resource_id)
        if found is None:
            return error(404, "not_found", "no event with this id", call.headers)
        return json_response(200, {"data": found}, call.headers)

    # -- workflows -----------------------------------------------------------------------
    def create_workflow(self, call: Call) -> Response:
        body = call.body
        assert body is not None
        workflow = {
            "id": new_id("wf_"),
            "name": body["name"],
            "trigger": body["trigger"],
            "steps": body["steps"],
            "created_at": now(),
        }
        self.workflows[workflow["id"]] = workflow
        self.ledger.add_workflow_write("create", workflow["id"], call.idempotency_key)
        return json_response(201, {"data": workflow}, call.headers)

    def list_workflows(self, call: Call) -> Response:
        return _page(list(self.workflows.values()), call)

    def get_workflow(self, call: Call) -> Response:
        current = self._workflow(call)
        if isinstance(current, Response):
            return current
        return json_response(200, {"data": current}, call.headers)

    def update_workflow(self, call: Call) -> Response:
        current = self._workflow(call)
        if isinstance(current, Response):
            return current
        assert call.body is not None
        updated = {**current, **call.body, "updated_at": now()}
        self.workflows[updated["id"]] = updated
        self.ledger.add_workflow_write("update", updated["id"], call.idempotency_key)
        return json_response(200, {"data": updated}, call.headers)

    def delete_workflow(self, call: Call) -> Response:
        current = self._workflow(call)
        if isinstance(current, Response):
            return current
        del self.workflows[current["id"]]
        self.ledger.add_workflow_write("delete", current["id"], call.idempotency_key)
        return json_response(200, {"data": {"id": current["id"], "deleted": True}}, call.headers)

    def _workflow(self, call: Call) -> dict[str, Any] | Response:
        """The workflow ``call`` names, or the 404 answer."""
        assert call.resource_id is not None
        current = self.workflows.get(call.resource_id)
        if current is None:
            return error(404, "not_found", "no workflow with this id", call.headers)
        return current
