"""The commands that make one request (or walk one list): workflows and single events."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, cast

from ventryx._cli._output import print_event, print_json, print_workflow
from ventryx._client import AsyncVentryx
from ventryx.models import Workflow

__all__ = ["events_emit", "make_client", "workflows_create", "workflows_list", "workflows_show"]


class UsageError(Exception):
    """A problem with the command line or an input file (exit status 2)."""


def make_client(args: argparse.Namespace) -> AsyncVentryx:
    """A client from ``--api-key``/``--base-url``, falling back to the environment."""
    return AsyncVentryx(api_key=args.api_key, base_url=args.base_url)


def read_json_object(text: str, what: str) -> dict[str, Any]:
    try:
        value: object = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise UsageError(f"{what} must be a JSON object, got {type(value).__name__}")
    return cast("dict[str, Any]", value)


def read_text(path: str) -> str:
    """The contents of ``path`` (``-`` is stdin)."""
    if path == "-":
        return sys.stdin.read()
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None


async def workflows_list(args: argparse.Namespace) -> int:
    async with make_client(args) as client:
        pager = client.workflows.list(page=args.page, per_page=args.per_page)
        if args.all:
            items: list[Workflow] = [wf async for wf in pager]
            if args.json:
                print_json({"data": items})
            else:
                for workflow in items:
                    print_workflow(workflow, detailed=False)
                sys.stdout.write(f"{len(items)} workflow{'s' * (len(items) != 1)}\n")
            return 0
        page = await pager
        if args.json:
            print_json({"data": page.data, "meta": page.meta})
            return 0
        for workflow in page:
            print_workflow(workflow, detailed=False)
        meta = page.meta
        pages = max(1, -(-meta.total // meta.per_page))
        more = "  (--all for every page)" if page.has_next_page else ""
        sys.stdout.write(f"page {meta.page} of {pages}, {meta.total} in all{more}\n")
    return 0


async def workflows_show(args: argparse.Namespace) -> int:
    async with make_client(args) as client:
        workflow = await client.workflows.retrieve(args.id)
    if args.json:
        print_json(workflow)
    else:
        print_workflow(workflow)
    return 0


async def workflows_create(args: argparse.Namespace) -> int:
    spec = read_json_object(read_text(args.file), args.file)
    unknown = sorted(set(spec) - {"name", "trigger", "steps"})
    if unknown:
        raise UsageError(f"{args.file}: unknown field(s) {', '.join(unknown)}")
    missing = [name for name in ("name", "trigger", "steps") if name not in spec]
    if missing:
        raise UsageError(f"{args.file}: missing field(s) {', '.join(missing)}")
    async with make_client(args) as client:
        workflow = await client.workflows.create(
            name=spec["name"],
            trigger=spec["trigger"],
            steps=spec["steps"],
            idempotency_key=args.idempotency_key,
        )
    if args.json:
        print_json(workflow)
    else:
        sys.stdout.write(f"Created workflow {workflow.id} ({workflow.name})\n")
    return 0


async def events_emit(args: argparse.Namespace) -> int:
    data = None if args.data is None else read_json_object(args.data, "--data")
    async with make_client(args) as client:
        event = await client.events.emit(
            type=args.type, data=data, idempotency_key=args.idempotency_key
        )
    if args.json:
        print_json(event)
    else:
        print_event(event)
    return 0
