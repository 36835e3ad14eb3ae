"""``ventryx events emit-file``: every line of a JSONL file as an event, concurrently.

Each line is an object ``{"type": ..., "data": {...}}``, optionally with a key field (``key``
unless ``--key-field`` names another) that makes re-running the file safe: a line with the same
key is applied once however often it is sent. The lines that were not delivered (invalid ones
and the ones the API refused or that ran out of retries) are written verbatim to the failures
file, ready to be sent again.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO, cast

import anyio
import attrs

from ventryx._bulk import BulkSummary, EventOutcome, NewEvent
from ventryx._cli._commands import UsageError, make_client
from ventryx._cli._output import describe_error, print_json
from ventryx._cli._progress import ProgressMode, make_progress

__all__ = ["events_emit_file", "parse_line"]

MAX_PROBLEMS_SHOWN = 5


def parse_line(line: str, key_field: str) -> NewEvent | str:
    """The event a line describes, or why it cannot be sent."""
    try:
        value: object = json.loads(line)
    except json.JSONDecodeError as exc:
        return f"invalid JSON ({exc.msg})"
    if not isinstance(value, dict):
        return f"not a JSON object ({type(value).__name__})"
    fields = cast("dict[str, Any]", value)
    unknown = sorted(set(fields) - {"type", "data", key_field})
    if unknown:
        return f"unknown field(s) {', '.join(unknown)}"
    event_type = fields.get("type")
    if not isinstance(event_type, str) or not event_type.strip():
        return "'type' must be a non-empty string"
    data = fields.get("data", {})
    if not isinstance(data, dict):
        return f"'data' must be an object, got {type(data).__name__}"
    key = fields.get(key_field)
    if key is not None and (not isinstance(key, (str, int)) or isinstance(key, bool) or key == ""):
        return f"{key_field!r} must be a non-empty string or an integer"
    return NewEvent(event_type, cast("dict[str, Any]", data), None if key is None else str(key))


@attrs.define
class FileRun:
    """The state of one run: which line each pulled event came from, and what failed."""

    failures: TextIO
    key_field: str
    pending: dict[int, tuple[int, str]] = attrs.field(factory=lambda: {})
    invalid: int = 0
    not_delivered: int = 0
    shown: int = 0

    def problem(self, line_number: int, line: str, reason: str) -> None:
        self.failures.write(line + "\n")
        if self.shown < MAX_PROBLEMS_SHOWN:
            sys.stderr.write(f"line {line_number}: {reason}\n")
        self.shown += 1

    def events(self, lines: Iterator[str]) -> Iterator[NewEvent]:
        """The valid lines as events; the invalid ones go straight to the failures file."""
        index = 0
        for number, raw in enumerate(lines, start=1):
            line = raw.rstrip("\r\n")
            if not line.strip():
                continue
            parsed = parse_line(line, self.key_field)
            if isinstance(parsed, str):
                self.invalid += 1
                self.problem(number, line, parsed)
                continue
            self.pending[index] = (number, line)
            index += 1
            yield parsed

    def on_result(self, outcome: EventOutcome) -> None:
        number, line = self.pending.pop(outcome.index)
        if outcome.status != "delivered":
            self.not_delivered += 1
            reason = describe_error(outcome.error) if outcome.error else outcome.status
            self.problem(number, line, f"{outcome.status}: {reason}")


def count_lines(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(1 for line in handle if line.strip())


def failures_path(args: argparse.Namespace) -> Path:
    if args.failures:
        return Path(args.failures)
    return Path(args.file).with_name(Path(args.file).name + ".failures")


def events_emit_file(args: argparse.Namespace) -> int:
    """Open the files, send the lines, report; 1 when any line was not delivered."""
    source = Path(args.file)
    try:
        total = count_lines(source)
    except OSError as exc:
        raise UsageError(f"cannot read {args.file}: {exc.strerror or exc}") from None
    if args.concurrency < 1:
        raise UsageError("--concurrency must be at least 1")
    target = failures_path(args)
    with (
        source.open(encoding="utf-8", errors="replace", newline="") as lines,
        target.open("w", encoding="utf-8") as failures,
    ):
        run = FileRun(failures, args.key_field)
        summary = anyio.run(send, args, run, run.events(lines), total)
    report(args, summary, run, target)
    return 1 if run.invalid or run.not_delivered else 0


async def send(
    args: argparse.Namespace, run: FileRun, events: Iterator[NewEvent], total: int
) -> BulkSummary:
    mode: ProgressMode = "none" if args.json else args.progress
    async with make_client(args) as client:
        with make_progress(mode, total, f"emitting {Path(args.file).name}") as view:
            return await client.events.emit_many(
                events,
                concurrency=args.concurrency,
                on_result=run.on_result,
                # Invalid lines were never sent: count them as settled, not delivered.
                on_progress=lambda p: view.update(
                    attrs.evolve(p, rejected=p.rejected + run.invalid)
                ),
                progress_interval=0.1,
            )


def report(args: argparse.Namespace, summary: BulkSummary, run: FileRun, target: Path) -> None:
    failed = run.invalid + run.not_delivered
    if args.json:
        counts: dict[str, object] = dict(summary.counts.items())
        counts.update(
            invalid=run.invalid,
            retries=summary.retries,
            elapsed=round(summary.elapsed, 3),
            failures_file=str(target),
        )
        print_json(counts)
        return
    rate = summary.delivered / summary.elapsed if summary.elapsed > 0 else 0.0
    hidden = run.shown - MAX_PROBLEMS_SHOWN
    if hidden > 0:
        sys.stderr.write(f"... and {hidden} more\n")
    sys.stdout.write(
        f"Delivered {summary.delivered:,} of {summary.pulled + run.invalid:,} events in "
        f"{summary.elapsed:.1f}s ({rate:,.0f}/s), {summary.retries:,} retries; "
        f"{run.invalid:,} invalid, {run.not_delivered:,} not delivered\n"
    )
    if failed:
        sys.stdout.write(f"Wrote the {failed:,} failed lines to {target}\n")
