"""Printing: results as text or JSON on stdout, errors as one line on stderr."""

from __future__ import annotations

import json
import sys
from typing import Any, TextIO

from ventryx._converter import get_converter
from ventryx._errors import APIStatusError
from ventryx._logging import escape_control
from ventryx.models import Event, Workflow

__all__ = [
    "UsageError",
    "describe_error",
    "error_fields",
    "print_error",
    "print_event",
    "print_json",
    "print_workflow",
]


class UsageError(Exception):
    """A problem with the command line or an input file (exit status 2); its message is the
    whole story, so it is printed without a class name."""


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
    if isinstance(exc, UsageError):
        return escape_control(str(exc))
    return escape_control(f"{name}: {exc}")


def error_fields(exc: BaseException) -> dict[str, Any]:
    """The error as JSON fields: ``type`` and ``message``, and for an API answer its status,
    ``code`` and ``request_id`` (from the exception's own fields, so never the API key)."""
    fields: dict[str, Any] = {"type": type(exc).__name__}
    if isinstance(exc, APIStatusError):
        fields.update(status_code=exc.status_code, code=exc.code, request_id=exc.request_id)
        fields["message"] = exc.message
    else:
        fields["message"] = str(exc)
    return fields


def print_error(exc: BaseException, *, as_json: bool = False) -> None:
    """One line on stderr: ``ventryx: error: ...``, or ``{"error": {...}}`` with ``--json``."""
    if as_json:
        sys.stderr.write(json.dumps({"error": error_fields(exc)}, ensure_ascii=False) + "\n")
        return
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


def print_event(event: Event, *, listing: bool = False) -> None:
    """``Emitted event ID (TYPE) DATA``, or in a listing ``ID  TYPE  CREATED_AT  DATA``."""
    data = json.dumps(dict(event.data), ensure_ascii=False, sort_keys=True)
    if listing:
        sys.stdout.write(f"{event.id}  {event.type}  {_when(event.created_at)}  {data}\n")
    else:
        sys.stdout.write(f"Emitted event {event.id} ({event.type}) {data}\n")
