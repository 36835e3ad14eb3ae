"""``client.workflows``: list, create, retrieve, update and delete workflows."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias, cast

from ventryx._errors import InvalidInputError
from ventryx._on_first_use import models
from ventryx._types import NOT_GIVEN, NotGiven
from ventryx.resources._base import AsyncResource, mapping_of, non_empty_str, path_segment

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ventryx._options import RequestOptions
    from ventryx._pagination import AsyncPager
    from ventryx.models import DeletedWorkflow, Step, Trigger, Workflow

__all__ = ["AsyncWorkflows", "StepParam", "TriggerParam"]

# Strings, so that the models (and attrs) load on first use rather than on `import ventryx`.
TriggerParam: TypeAlias = "Trigger | Mapping[str, Any]"
"""A ``Trigger`` or the API's plain object, e.g. ``{"event": "user.registered"}``."""
StepParam: TypeAlias = "Step | Mapping[str, Any]"
"""A ``Step`` or the API's plain object, e.g. ``{"type": "send_notification", ...}``."""


def _trigger_body(trigger: object) -> Any:
    from ventryx._converter import get_converter  # noqa: PLC0415
    from ventryx.models import Trigger  # noqa: PLC0415

    if isinstance(trigger, Trigger):
        non_empty_str(trigger.event, "trigger.event")
        return get_converter().unstructure(trigger)
    body = mapping_of(trigger, "trigger")
    non_empty_str(body.get("event"), "trigger.event")
    return dict(body)


def _steps_body(steps: object) -> list[Any]:
    from ventryx._converter import get_converter  # noqa: PLC0415
    from ventryx.models import Step  # noqa: PLC0415

    if isinstance(steps, (str, bytes)) or not isinstance(steps, Sequence):
        raise InvalidInputError("steps", f"must be a list of steps, got {type(steps).__name__}")
    converter = get_converter()
    body: list[Any] = []
    for index, step in enumerate(cast("Sequence[object]", steps)):
        if isinstance(step, Step):
            non_empty_str(step.type, f"steps[{index}].type")
            body.append(converter.unstructure(step))
        else:
            fields = mapping_of(step, f"steps[{index}]")
            non_empty_str(fields.get("type"), f"steps[{index}].type")
            body.append(dict(fields))
    return body


class AsyncWorkflows(AsyncResource):
    """Workflows: a trigger event and the steps it runs."""

    def list(
        self,
        *,
        page: int | None = None,
        per_page: int | None = None,
        **options: Unpack[RequestOptions],
    ) -> AsyncPager[Workflow]:
        """List workflows: await for one page, iterate for all of them.

        ``page`` starts at 1; ``per_page`` is 1 to 100 (the API's default is 20).
        """
        return self._list(models.Workflow, "/workflows", options, page, per_page)

    async def create(
        self,
        *,
        name: str,
        trigger: TriggerParam,
        steps: Sequence[StepParam],
        idempotency_key: str | None = None,
        **options: Unpack[RequestOptions],
    ) -> Workflow:
        """Create a workflow that runs ``steps`` whenever ``trigger``'s event is emitted.

        Retries are safe: every attempt carries the same ``Idempotency-Key`` (generated unless
        given).
        """
        body = {
            "name": non_empty_str(name, "name"),
            "trigger": _trigger_body(trigger),
            "steps": _steps_body(steps),
        }
        return await self._call(
            models.Workflow,
            "POST",
            "/workflows",
            options,
            body=body,
            idempotency_key=idempotency_key,
        )

    async def retrieve(self, workflow_id: str, **options: Unpack[RequestOptions]) -> Workflow:
        """Fetch one workflow by id (``NotFoundError`` when there is none)."""
        path = f"/workflows/{path_segment(workflow_id, 'workflow_id')}"
        return await self._call(models.Workflow, "GET", path, options)

    async def update(
        self,
        workflow_id: str,
        *,
        name: str | NotGiven = NOT_GIVEN,
        trigger: TriggerParam | NotGiven = NOT_GIVEN,
        steps: Sequence[StepParam] | NotGiven = NOT_GIVEN,
        idempotency_key: str | None = None,
        **options: Unpack[RequestOptions],
    ) -> Workflow:
        """Change any of ``name``, ``trigger`` and ``steps``; fields not passed stay as they are.

        Steps read from the API keep their unknown types and fields, so
        ``update(wf.id, steps=wf.steps)`` writes back exactly what was read.
        """
        path = f"/workflows/{path_segment(workflow_id, 'workflow_id')}"
        body: dict[str, Any] = {}
        if not isinstance(name, NotGiven):
            body["name"] = non_empty_str(name, "name")
        if not isinstance(trigger, NotGiven):
            body["trigger"] = _trigger_body(trigger)
        if not isinstance(steps, NotGiven):
            body["steps"] = _steps_body(steps)
        if not body:
            raise InvalidInputError("update", "pass at least one of name, trigger or steps")
        return await self._call(
            models.Workflow, "PATCH", path, options, body=body, idempotency_key=idempotency_key
        )

    async def delete(
        self,
        workflow_id: str,
        *,
        idempotency_key: str | None = None,
        **options: Unpack[RequestOptions],
    ) -> DeletedWorkflow:
        """Delete a workflow; the result says which id and ``deleted=True``."""
        path = f"/workflows/{path_segment(workflow_id, 'workflow_id')}"
        return await self._call(
            models.DeletedWorkflow, "DELETE", path, options, idempotency_key=idempotency_key
        )
