"""The routes table: which paths exist, which methods each takes, how a body is checked, and
which store effect answers. ``match`` finds the route of a raw path."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, cast
from urllib.parse import unquote

import attrs

from ventryx.testing._messages import Invalid, Response
from ventryx.testing._store import Call, Store

__all__ = ["ADMIN_ROUTES", "ROUTES", "Endpoint", "Route", "match", "parse_body"]

_WORKFLOW_FIELDS = ("name", "trigger", "steps")
_EVENT_FIELDS = ("type", "data")


# -- body checks ---------------------------------------------------------------------------
def parse_body(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except ValueError:  # UnicodeDecodeError is a ValueError too
        raise Invalid("request body must be valid JSON") from None
    if not isinstance(value, dict):
        raise Invalid("request body must be a JSON object")
    return cast("dict[str, Any]", value)


def _non_empty_str(value: Any) -> bool:
    return isinstance(value, str) and bool(value)


def _check_trigger(value: Any) -> None:
    if not isinstance(value, dict):
        raise Invalid("trigger must be an object")
    if not _non_empty_str(cast("dict[str, Any]", value).get("event")):
        raise Invalid("trigger.event must be a non-empty string")


def _check_steps(value: Any) -> None:
    if not isinstance(value, list):
        raise Invalid("steps must be a list of objects")
    items: list[Any] = value  # pyright: ignore[reportUnknownVariableType]
    for index, step in enumerate(items):
        if not isinstance(step, dict):
            raise Invalid(f"steps[{index}] must be an object")
        if not _non_empty_str(cast("dict[str, Any]", step).get("type")):
            raise Invalid(f"steps[{index}].type must be a non-empty string")


def _check_fields(body: dict[str, Any], allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise Invalid(f"unknown field {unknown[0]!r}")


def _check_workflow(body: dict[str, Any], *, partial: bool) -> None:
    _check_fields(body, _WORKFLOW_FIELDS)
    if partial and not body:
        raise Invalid("request body must set at least one of name, trigger, steps")
    for field in _WORKFLOW_FIELDS:
        if field not in body:
            if not partial:
                raise Invalid(f"{field} is required")
            continue
        if field == "name" and not _non_empty_str(body["name"]):
            raise Invalid("name must be a non-empty string")
        if field == "trigger":
            _check_trigger(body["trigger"])
        if field == "steps":
            _check_steps(body["steps"])


def _check_new_workflow(body: dict[str, Any]) -> None:
    _check_workflow(body, partial=False)


def _check_workflow_patch(body: dict[str, Any]) -> None:
    _check_workflow(body, partial=True)


def _check_event(body: dict[str, Any]) -> None:
    _check_fields(body, _EVENT_FIELDS)
    if "type" not in body:
        raise Invalid("type is required")
    if not _non_empty_str(body["type"]):
        raise Invalid("type must be a non-empty string")
    if "data" in body and not isinstance(body["data"], dict):
        raise Invalid("data must be an object")


# -- the table -----------------------------------------------------------------------------
@attrs.frozen
class Endpoint:
    """One method of a route: the store effect, and the body check (None: no body read)."""

    effect: Callable[[Store, Call], Response]
    check: Callable[[dict[str, Any]], None] | None = None


@attrs.frozen
class Route:
    """A path template ("{id}" is one raw segment) and its endpoints by method."""

    template: str
    endpoints: Mapping[str, Endpoint]


ROUTES: dict[tuple[str, ...], Route] = {
    ("v1", "workflows"): Route(
        "/v1/workflows",
        {
            "GET": Endpoint(Store.list_workflows),
            "POST": Endpoint(Store.create_workflow, _check_new_workflow),
        },
    ),
    ("v1", "workflows", "{id}"): Route(
        "/v1/workflows/{id}",
        {
            "GET": Endpoint(Store.get_workflow),
            "PATCH": Endpoint(Store.update_workflow, _check_workflow_patch),
            "DELETE": Endpoint(Store.delete_workflow),
        },
    ),
    ("v1", "events"): Route(
        "/v1/events",
        {"GET": Endpoint(Store.list_events), "POST": Endpoint(Store.create_event, _check_event)},
    ),
    ("v1", "events", "{id}"): Route("/v1/events/{id}", {"GET": Endpoint(Store.get_event)}),
}
# Served by the app itself (they reach the ledger and reset), to loopback clients only.
ADMIN_ROUTES: dict[tuple[str, ...], frozenset[str]] = {
    ("_testing", "ledger"): frozenset({"GET"}),
    ("_testing", "reset"): frozenset({"POST"}),
}


def match(path: str) -> tuple[tuple[str, ...], str | None] | None:
    """The table key of a raw path and its decoded ``{id}``; None when no route has its shape."""
    segments = path.split("/")
    if segments[0] != "" or len(segments) not in (3, 4):
        return None
    key = tuple("{id}" if i == 2 and s else s for i, s in enumerate(segments[1:]))
    if key not in ROUTES and key not in ADMIN_ROUTES:
        return None
    return key, unquote(segments[3]) if len(segments) == 4 else None
