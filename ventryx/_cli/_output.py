"""Printing: results as text or JSON on stdout, errors as one line on stderr."""

from __future__ import annotations

import json
import sys
from typing import Any, TextIO

from ventryx._converter import get_converter
from ventryx._errors import APIStatusError
from ventryx._logging import escape_control
from ventryx.models import Event, Workflow

__all__ = ["describe_error", "print_error", "print_event", "print_json", "print_workflow"]


def to_json(value: object) -> Any:
    """A model (or a list of them) as plain JSON values, exactly as the API spells them."""
    return get_converter().unstructure(value)


def print_json(value: object, out: TextIO | None = None) -> None:
    stream = out or sys.stdout
    stream.write(json.dumps(to_json(value), indent=2, ensure_ascii=False) + "\n")


def describe_error(exc: BaseException) -> str:
    """One line naming the class, and for an API answer its status, code and request id.

    Built from the exception's own fields: the request (and so the API key) is never shown.
    """
    name = type(exc).__name__
    if isinstance(exc, APIStatusError):
        details = [f"HTTP {exc.status_code}"]
        if exc.code:
            details.append(f"code {exc.code}")
        if exc.request_id:
            details.append(f"request id {exc.request_id}")
        return escape_control(f"{name} ({', '.join(details)}): {exc.message}")
    return escape_control(f"{name}: {exc}")


def print_error(exc: BaseException) -> None:
    sys.stderr.write(f"ventryx: error: {describe_error(exc)}\n")


def _when(value: object) -> str:
    return "" if value is None else str(to_json(value))


def print_workflow(workflow: Workflow, *, detailed: bool = True) -> None:
    if not detailed:
        steps = len(workflow.steps)
        sys.stdout.write(
            f"{workflow.id}  {workflow.name!r}  on {workflow.trigger.event}  "
            f"{steps} step{'s' * (steps != 1)}\n"
        )
        return
    lines = [
        f"id:         {workflow.id}",
        f"name:       {workflow.name}",
        f"trigger:    {workflow.trigger.event}",
        f"created_at: {_when(workflow.created_at)}",
    ]
    if workflow.updated_at is not None:
        lines.append(f"updated_at: {_when(workflow.updated_at)}")
    lines.append(f"steps:      {len(workflow.steps)}")
    for number, step in enumerate(workflow.steps, start=1):
        fields = json.dumps(dict(step.fields), ensure_ascii=False, sort_keys=True)
        lines.append(f"  {number}. {step.type} {fields}")
    sys.stdout.write("\n".join(lines) + "\n")


def print_event(event: Event) -> None:
    data = json.dumps(dict(event.data), ensure_ascii=False, sort_keys=True)
    sys.stdout.write(f"Emitted event {event.id} ({event.type}) {data}\n")
