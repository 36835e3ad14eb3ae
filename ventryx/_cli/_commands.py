"""The commands that make one request (or walk one list): workflows and single events."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from ventryx._cli._output import UsageError, print_event, print_json, print_workflow
from ventryx._client import AsyncVentryx
from ventryx._constants import API_KEY_ENV
from ventryx._pagination import AsyncPager

__all__ = [
    "UsageError",
    "events_emit",
    "events_list",
    "events_show",
    "make_client",
    "workflows_create",
    "workflows_delete",
    "workflows_list",
    "workflows_show",
    "workflows_update",
]

# The key `ventryx serve` accepts by default (ventryx.testing's DEFAULT_TEST_KEY; not imported
# from there, which would load the whole local server for every command).
DEFAULT_TEST_KEY = "vx_test_local_key"


def make_client(args: argparse.Namespace) -> AsyncVentryx:
    """A client from ``--api-key``/``--base-url``, falling back to the environment."""
    if args.api_key is None and not os.environ.get(API_KEY_ENV, "").strip():
        raise UsageError(
            f"no API key: set {API_KEY_ENV} or pass --api-key KEY (the local server of "
            f"`ventryx serve` accepts {DEFAULT_TEST_KEY})"
        )
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


async def _print_listing(
    args: argparse.Namespace,
    pager: AsyncPager[Any],
    noun: str,
    print_item: Callable[[Any], None],
) -> int:
    """One page (or ``--all`` pages) of a list, as lines or JSON, with where the page stands."""
    if args.all:
        items: list[Any] = [item async for item in pager]
        if args.json:
            print_json({"data": items})
        else:
            for item in items:
                print_item(item)
            sys.stdout.write(f"{len(items)} {noun}{'s' * (len(items) != 1)}\n")
        return 0
    page = await pager
    if args.json:
        print_json({"data": page.data, "meta": page.meta})
        return 0
    for item in page:
        print_item(item)
    meta = page.meta
    pages = max(1, -(-meta.total // meta.per_page))
    if not page.data and meta.page > pages:
        sys.stdout.write(
            f"page {meta.page} is past the end: {meta.total} {noun}{'s' * (meta.total != 1)} "
            f"in all, on {pages} page{'s' * (pages != 1)} of {meta.per_page}\n"
        )
        return 0
    more = "  (--all for every page)" if page.has_next_page else ""
    sys.stdout.write(f"page {meta.page} of {pages}, {meta.total} in all{more}\n")
    return 0


def _answer(args: argparse.Namespace, value: object, human: Callable[[], object]) -> int:
    """Print ``value`` as JSON with ``--json``, else in its human form; exit status 0."""
    if args.json:
        print_json(value)
    else:
        human()
    return 0


async def workflows_list(args: argparse.Namespace) -> int:
    async with make_client(args) as client:
        pager = client.workflows.list(page=args.page, per_page=args.per_page)
        return await _print_listing(
            args, pager, "workflow", lambda wf: print_workflow(wf, detailed=False)
        )


async def events_list(args: argparse.Namespace) -> int:
    async with make_client(args) as client:
        pager = client.events.list(page=args.page, per_page=args.per_page, type=args.type)
        return await _print_listing(args, pager, "event", lambda ev: print_event(ev, listing=True))


async def events_show(args: argparse.Namespace) -> int:
    async with make_client(args) as client:
        event = await client.events.retrieve(args.id)
    return _answer(args, event, lambda: print_event(event, listing=True))


async def workflows_show(args: argparse.Namespace) -> int:
    async with make_client(args) as client:
        workflow = await client.workflows.retrieve(args.id)
    return _answer(args, workflow, lambda: print_workflow(workflow))


WORKFLOW_FIELDS = ("name", "trigger", "steps")


def read_workflow_spec(path: str, *, complete: bool) -> dict[str, Any]:
    """The fields of a workflow file: all three (``complete``), or at least one of them."""
    spec = read_json_object(read_text(path), path)
    unknown = sorted(set(spec) - set(WORKFLOW_FIELDS))
    if unknown:
        raise UsageError(f"{path}: unknown field(s) {', '.join(unknown)}")
    missing = [name for name in WORKFLOW_FIELDS if name not in spec]
    if complete and missing:
        raise UsageError(f"{path}: missing field(s) {', '.join(missing)}")
    if not spec:
        raise UsageError(f"{path}: nothing to change (give name, trigger or steps)")
    return spec


async def workflows_create(args: argparse.Namespace) -> int:
    spec = read_workflow_spec(args.file, complete=True)
    async with make_client(args) as client:
        workflow = await client.workflows.create(
            name=spec["name"],
            trigger=spec["trigger"],
            steps=spec["steps"],
            idempotency_key=args.idempotency_key,
        )
    return _answer(
        args,
        workflow,
        lambda: sys.stdout.write(f"Created workflow {workflow.id} ({workflow.name})\n"),
    )


async def workflows_update(args: argparse.Namespace) -> int:
    spec = read_workflow_spec(args.file, complete=False)
    async with make_client(args) as client:
        workflow = await client.workflows.update(
            args.id, **spec, idempotency_key=args.idempotency_key
        )
    return _answer(
        args,
        workflow,
        lambda: sys.stdout.write(f"Updated workflow {workflow.id} ({', '.join(sorted(spec))})\n"),
    )


async def workflows_delete(args: argparse.Namespace) -> int:
    async with make_client(args) as client:
        deleted = await client.workflows.delete(args.id, idempotency_key=args.idempotency_key)
    return _answer(args, deleted, lambda: sys.stdout.write(f"Deleted workflow {deleted.id}\n"))


async def events_emit(args: argparse.Namespace) -> int:
    data = None if args.data is None else read_json_object(args.data, "--data")
    async with make_client(args) as client:
        event = await client.events.emit(
            type=args.type, data=data, idempotency_key=args.idempotency_key
        )
    return _answer(args, event, lambda: print_event(event))
