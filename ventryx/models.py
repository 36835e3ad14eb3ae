"""The API's objects as frozen attrs classes, shared by the async and sync clients.

Every model keeps the fields it does not know in ``extra`` (and a step keeps everything but its
``type`` in ``fields``), so an object read from the API and written back loses nothing.
Objects returned by a call carry ``raw_response``: the HTTP status, headers and request id.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    import httpx

__all__ = ["DeletedWorkflow", "Event", "PageMeta", "RawResponse", "Step", "Trigger", "Workflow"]


def _empty() -> Mapping[str, Any]:
    return {}


@attrs.frozen(kw_only=True)
class RawResponse:
    """The HTTP side of a result: the final response and how many attempts it took."""

    http_response: httpx.Response
    attempts: int = 1

    @property
    def status_code(self) -> int:
        return self.http_response.status_code

    @property
    def headers(self) -> httpx.Headers:
        return self.http_response.headers

    @property
    def request_id(self) -> str | None:
        value: str | None = self.http_response.headers.get("x-request-id")
        return value


@attrs.frozen(kw_only=True)
class Trigger:
    """What starts a workflow: an event type such as ``user.registered``."""

    event: str
    extra: Mapping[str, Any] = attrs.field(factory=_empty)


@attrs.frozen
class Step:
    """One step of a workflow: its ``type`` and every other field of it, verbatim.

    ``Step("send_notification", {"channel": "email", "template": "welcome"})``; unknown step
    types are ordinary steps. ``step["channel"]`` reads a field.
    """

    type: str
    fields: Mapping[str, Any] = attrs.field(factory=_empty)

    def __getitem__(self, name: str) -> Any:
        return self.fields[name]

    def get(self, name: str, default: Any = None) -> Any:
        """A field's value, or ``default`` when the step has no such field."""
        return self.fields.get(name, default)


def _own_fields_first(cls: type, fields: list[attrs.Attribute[Any]]) -> list[attrs.Attribute[Any]]:
    """A model's own fields, then ``_Answer``'s: the reprs read ``id=...`` first."""
    shared = attrs.fields_dict(_Answer)
    return sorted(fields, key=lambda field: field.name in shared)


@attrs.frozen(kw_only=True)
class _Answer:
    """What every object a call returns carries besides its own fields."""

    extra: Mapping[str, Any] = attrs.field(factory=_empty)
    raw_response: RawResponse | None = attrs.field(default=None, eq=False, repr=False)


@attrs.frozen(kw_only=True, field_transformer=_own_fields_first)
class Workflow(_Answer):
    """A workflow: a trigger event and the steps it runs."""

    id: str
    name: str
    trigger: Trigger
    steps: tuple[Step, ...]
    created_at: datetime
    updated_at: datetime | None = None


@attrs.frozen(kw_only=True, field_transformer=_own_fields_first)
class Event(_Answer):
    """An event that was emitted, with its free-form ``data``."""

    id: str
    type: str
    data: Mapping[str, Any]
    created_at: datetime


@attrs.frozen(kw_only=True, field_transformer=_own_fields_first)
class DeletedWorkflow(_Answer):
    """The answer to a delete: the id and ``deleted=True``."""

    id: str
    deleted: bool


@attrs.frozen(kw_only=True)
class PageMeta:
    """Where a page stands: ``total`` items, this ``page`` number and its ``per_page``."""

    total: int
    page: int
    per_page: int
    extra: Mapping[str, Any] = attrs.field(factory=_empty)
