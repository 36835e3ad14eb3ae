"""The argument parser, the dispatch to a command, and the error boundary around it."""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import anyio

from ventryx._cli import _commands, _emit_file, _outbox
from ventryx._cli._output import print_error
from ventryx._cli._progress import PROGRESS_MODES
from ventryx._cli_options import add_valued
from ventryx._constants import API_KEY_ENV, BASE_URL_ENV, DEFAULT_BASE_URL
from ventryx._errors import APIError, ConfigurationError, InvalidInputError
from ventryx._version import __version__

__all__ = ["build_parser", "main"]

Command = Callable[[argparse.Namespace], Awaitable[int]]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def _client_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    """``--base-url``, ``--api-key`` and ``--json``: accepted before or after the command."""
    default = argparse.SUPPRESS if suppress else None
    parser.add_argument(
        "--base-url",
        default=default,
        metavar="URL",
        help=f"API root (default: ${BASE_URL_ENV}, else {DEFAULT_BASE_URL})",
    )
    parser.add_argument(
        "--api-key", default=default, metavar="KEY", help=f"API key (default: ${API_KEY_ENV})"
    )
    parser.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS if suppress else False,
        help="print results as JSON, and errors as a JSON object on stderr",
    )


def _progress_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--progress",
        choices=PROGRESS_MODES,
        default="auto",
        help="progress bar on stderr: rich when installed (auto), plain, or none",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ventryx", description="The Ventryx API from the command line."
    )
    parser.add_argument("--version", action="version", version=f"ventryx {__version__}")
    _client_options(parser, suppress=False)
    common = argparse.ArgumentParser(add_help=False)
    _client_options(common, suppress=True)
    nouns = parser.add_subparsers(dest="noun", metavar="COMMAND", required=True)

    workflows = nouns.add_parser(
        "workflows", help="list, show, create, update and delete workflows"
    )
    verbs = workflows.add_subparsers(dest="verb", metavar="ACTION", required=True)
    listing = _list_parser(verbs, common, "workflows")
    listing.set_defaults(command=_commands.workflows_list)
    verb = functools.partial(_verb, verbs, common)
    verb("show", "show one workflow", _commands.workflows_show, "id=ID")
    verb(
        "create",
        "create a workflow from a JSON file ('-': stdin)",
        _commands.workflows_create,
        "file=FILE.json",
        keyed=True,
    )
    verb(
        "update",
        "change a workflow's name, trigger or steps from a JSON file ('-': stdin)",
        _commands.workflows_update,
        "id=ID",
        "file=FILE.json",
        keyed=True,
    )
    verb("delete", "delete a workflow", _commands.workflows_delete, "id=ID", keyed=True)

    events = nouns.add_parser("events", help="emit events (one or a file of them), list, show")
    verbs = events.add_subparsers(dest="verb", metavar="ACTION", required=True)
    listing = _list_parser(verbs, common, "events")
    listing.add_argument("--type", metavar="TYPE", help="only events of this type")
    listing.set_defaults(command=_commands.events_list)
    verb = functools.partial(_verb, verbs, common)
    verb("show", "show one event", _commands.events_show, "id=ID")
    emit = verb("emit", "emit one event", _commands.events_emit, "type=TYPE", keyed=True)
    emit.add_argument("--data", metavar="JSON", help="the event's data, a JSON object")
    emit_file = verbs.add_parser(
        "emit-file",
        parents=[common],
        help="emit every line of a JSONL file, concurrently",
        description=(
            'Each line is {"type": ..., "data": {...}} plus an optional key field; other fields '
            "are ignored (with a warning). A line without a key is sent with a key derived from "
            "the file's absolute path (or --key-namespace), its line number and its text, so "
            "running the same file again applies nothing twice. Every line not delivered "
            "(invalid, refused, out of retries, or not sent because the run was interrupted "
            "or stopped) is written to the failures file, with its derived key, ready to be "
            "sent again; why is in FAILURES.reasons (JSON lines, same order). Ctrl-C stops "
            "the run, waits briefly for the requests in flight and prints the summary. Exit "
            "status: 0 all delivered, 1 some not, 2 usage error, 130 interrupted."
        ),
    )
    emit_file.add_argument("file", metavar="FILE.jsonl")
    add_valued(emit_file, "--concurrency", 32, "requests in flight", metavar="N")
    emit_file.add_argument(
        "--failures",
        metavar="FILE",
        help="where the lines not delivered go (default: FILE.jsonl.failures)",
    )
    key_field = "the field whose value makes re-sending a line safe"
    add_valued(emit_file, "--key-field", "key", key_field, metavar="NAME")
    emit_file.add_argument(
        "--no-derived-keys",
        action="store_true",
        help="send lines without a key with a random key (a re-run may apply them again)",
    )
    emit_file.add_argument(
        "--key-namespace",
        metavar="TEXT",
        help="derive keys from TEXT instead of the file's path (e.g. when the file moves)",
    )
    emit_file.add_argument(
        "--transport",
        choices=("auto", "default", "aiohttp"),
        default="auto",
        help="aiohttp (fast; the `aiohttp` extra) or httpx; auto: aiohttp when installed",
    )
    no_answer = "stop after N attempts in a row got no answer (0: never)"
    add_valued(emit_file, "--stop-after-connection-failures", 50, no_answer, metavar="N")
    _progress_option(emit_file)
    emit_file.set_defaults(runner=_emit_file.events_emit_file)

    _outbox.add_parser(nouns, common)

    serve = nouns.add_parser(
        "serve", help="run the local Ventryx server (for offline development and tests)"
    )
    from ventryx.testing._cli import add_server_arguments  # noqa: PLC0415 - only for serve

    add_server_arguments(serve)
    serve.set_defaults(runner=_serve)

    demo = nouns.add_parser("demo", help="a tour of the SDK against an embedded local server")
    add_valued(demo, "--events", 10_000, "bulk events", metavar="N")
    demo.add_argument(
        "--concurrency",
        type=int,
        metavar="N",
        help="bulk concurrency (default: 32 with the aiohttp extra, else 8)",
    )
    _progress_option(demo)
    demo.set_defaults(runner=_demo)
    return parser


def _verb(
    verbs: Any,
    common: argparse.ArgumentParser,
    name: str,
    help: str,
    command: Callable[[argparse.Namespace], Any],
    *positionals: str,
    keyed: bool = False,
) -> argparse.ArgumentParser:
    """A verb under ``verbs``: positionals as ``dest=METAVAR``, ``--idempotency-key`` if keyed."""
    parser: argparse.ArgumentParser = verbs.add_parser(name, parents=[common], help=help)
    for positional in positionals:
        dest, _, metavar = positional.partition("=")
        parser.add_argument(dest, metavar=metavar)
    if keyed:
        parser.add_argument("--idempotency-key", metavar="KEY")
    parser.set_defaults(command=command)
    return parser


def _list_parser(verbs: Any, common: argparse.ArgumentParser, noun: str) -> argparse.ArgumentParser:
    """``list [--page N] [--per-page N] [--all]`` under ``verbs`` (argparse's subparsers)."""
    listing: argparse.ArgumentParser = verbs.add_parser(
        "list", parents=[common], help=f"list {noun}"
    )
    listing.add_argument("--page", type=int, help="page number, from 1")
    listing.add_argument("--per-page", type=int, metavar="N", help="page size, 1 to 100")
    listing.add_argument("--all", action="store_true", help=f"all {noun} of every page")
    return listing


def _serve(args: argparse.Namespace) -> int:
    from ventryx.testing._cli import config_from_args, serve_forever  # noqa: PLC0415

    if args.api_keys is None and args.api_key:
        args.api_keys = [args.api_key]  # `ventryx --api-key K serve`
    try:
        config = config_from_args(args)
    except (TypeError, ValueError) as exc:
        sys.stderr.write(f"ventryx serve: error: {exc}\n")
        return EXIT_USAGE
    try:
        serve_forever(config, args.host, args.port)
    except OSError as exc:
        sys.stderr.write(f"ventryx serve: cannot serve on {args.host}:{args.port}: {exc}\n")
        return EXIT_FAILED
    return EXIT_OK


def _demo(args: argparse.Namespace) -> int:
    from ventryx._cli._demo import run_demo  # noqa: PLC0415 - imports the local server

    return run_demo(args)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``ventryx`` with ``argv`` (default: the process's arguments); returns the exit status.

    API errors print one line (class, status, code, request id) on stderr, never a traceback;
    with ``--json`` that line is a JSON object ``{"error": {...}}``.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error already printed
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    as_json = bool(getattr(args, "json", False))
    try:
        if hasattr(args, "runner"):
            status: int = args.runner(args)
            return status
        command: Command = args.command
        return anyio.run(command, args)
    except APIError as exc:
        print_error(exc, as_json=as_json)
        return EXIT_FAILED
    except (ConfigurationError, InvalidInputError, _commands.UsageError) as exc:
        print_error(exc, as_json=as_json)
        return EXIT_USAGE
    except KeyboardInterrupt:
        sys.stderr.write("ventryx: interrupted\n")
        return EXIT_INTERRUPTED
