"""``ventryx events emit-file``: every line of a JSONL file as an event, concurrently.

Each line is an object ``{"type": ..., "data": {...}}``, optionally with a key field (``key``
unless ``--key-field`` names another) that makes re-running the file safe: a line with the same
key is applied once however often it is sent. A line without one gets a key derived from the
file (its absolute path, or ``--key-namespace``), its line number and its text, so re-running
the same file never applies a line twice either (``--no-derived-keys`` turns that off). Other
fields of a line are ignored, with a warning.

Every line that was not delivered (invalid, refused, out of retries, or never sent because the
run was interrupted or stopped) goes to the failures file, ready to be sent again: verbatim,
plus the derived key when it had none, so re-sending the failures file applies nothing twice
and loses nothing. Why each line failed goes to ``FAILURES.reasons``, one JSON object per line
in the same order. Both files are written to a temporary name and renamed at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shlex
import signal
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO, cast

import anyio
import attrs

from ventryx._bulk._options import MAX_CONCURRENCY
from ventryx._bulk._results import BulkSummary, BulkTransport, EventOutcome, NewEvent
from ventryx._cli._commands import UsageError, make_client
from ventryx._cli._output import describe_error, error_fields, print_error, print_json
from ventryx._cli._progress import ProgressMode, make_progress
from ventryx._errors import APIError

__all__ = ["derived_key", "events_emit_file", "parse_line"]

MAX_PROBLEMS_SHOWN = 5
# Requests on the wire when Ctrl-C arrives get this long to be answered.
CANCEL_GRACE = 5.0
DERIVED_KEY_PREFIX = "vxf-"
EXIT_INTERRUPTED = 130
STATUS_TEXT = {
    "not_sent": "not sent: the run stopped before this line's turn",
    "indeterminate": "sent, but the run stopped before an answer (it may have been applied; "
    "re-sending it with its key is safe)",
}


@attrs.frozen
class Line:
    """A parsed line: the event to send, and the fields that were ignored."""

    event: NewEvent
    derived: bool
    ignored: tuple[str, ...]


def derived_key(namespace: str, line_number: int, line: str) -> str:
    """The key of a line without one: the same file, line number and text, the same key."""
    digest = hashlib.sha256(f"{namespace}\n{line_number}\n{line}".encode()).hexdigest()
    return DERIVED_KEY_PREFIX + digest[:40]


def parse_line(
    line: str, key_field: str, *, namespace: str | None = None, line_number: int = 0
) -> Line | str:
    """What a line describes, or why it cannot be sent.

    ``namespace`` (the file's identity) turns on derived keys for lines without a key field.
    """
    try:
        value: object = json.loads(line)
    except json.JSONDecodeError as exc:
        return f"invalid JSON ({exc.msg})"
    if not isinstance(value, dict):
        return f"not a JSON object ({type(value).__name__})"
    fields = cast("dict[str, Any]", value)
    event_type = fields.get("type")
    if not isinstance(event_type, str) or not event_type.strip():
        return "'type' must be a non-empty string"
    data = fields.get("data", {})
    if not isinstance(data, dict):
        return f"'data' must be an object, got {type(data).__name__}"
    key = fields.get(key_field)
    if key is not None and (not isinstance(key, (str, int)) or isinstance(key, bool) or key == ""):
        return f"{key_field!r} must be a non-empty string or an integer"
    ignored = tuple(sorted(set(fields) - {"type", "data", key_field}))
    derived = key is None and namespace is not None
    if derived:
        key = derived_key(cast("str", namespace), line_number, line)
    event = NewEvent(event_type, cast("dict[str, Any]", data), None if key is None else str(key))
    return Line(event, derived, ignored)


class AtomicFile:
    """A text file written under a temporary name next to ``path``, renamed there on commit."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        self.handle: TextIO = self.temporary.open("w", encoding="utf-8")

    def commit(self) -> None:
        self.handle.close()
        os.replace(self.temporary, self.path)

    def discard(self) -> None:
        self.handle.close()
        with contextlib.suppress(OSError):
            self.temporary.unlink()


@attrs.define
class FileRun:
    """The state of one run: which line each pulled event came from, and what failed."""

    failures: TextIO
    reasons: TextIO
    key_field: str
    namespace: str | None
    lines: Iterator[tuple[int, str]]
    pending: dict[int, tuple[int, str, bool]] = attrs.field(factory=lambda: {})
    written: Counter[str] = attrs.field(factory=Counter[str])  # failures file lines, by status
    ignored_lines: int = 0
    shown: int = 0
    interrupted: bool = False

    def problem(
        self,
        line_number: int,
        line: str,
        status: str,
        reason: str,
        *,
        key: str | None = None,
        error: BaseException | None = None,
    ) -> None:
        """Write the line to the failures file and why to the reasons file; show the first."""
        self.failures.write(line + "\n")
        self.written[status] += 1
        record: dict[str, Any] = {"line": line_number, "status": status, "reason": reason}
        if key is not None:
            record["key"] = key
        if error is not None:
            record["error"] = error_fields(error)
        self.reasons.write(json.dumps(record, ensure_ascii=False) + "\n")
        if status not in ("not_sent", "unread"):
            if self.shown < MAX_PROBLEMS_SHOWN:
                sys.stderr.write(f"line {line_number}: {reason}\n")
            self.shown += 1

    def parse(self, number: int, raw: str) -> tuple[str, Line | None]:
        """The line without its end, and the event (None: invalid, already recorded)."""
        line = raw.rstrip("\r\n")
        parsed = parse_line(line, self.key_field, namespace=self.namespace, line_number=number)
        if isinstance(parsed, str):
            self.problem(number, line, "invalid", parsed)
            return line, None
        if parsed.ignored:
            self.ignored_lines += 1
            if self.ignored_lines == 1:
                names = ", ".join(repr(name) for name in parsed.ignored)
                sys.stderr.write(
                    f"line {number}: ignoring field(s) {names} (only 'type', 'data' and "
                    f"{self.key_field!r} are sent); further lines like it are counted\n"
                )
        return line, parsed

    def events(self) -> Iterator[NewEvent]:
        """The valid lines as events; the invalid ones go straight to the failures file."""
        index = 0
        for number, raw in self.lines:
            if not raw.strip():
                continue
            line, parsed = self.parse(number, raw)
            if parsed is None:
                continue
            self.pending[index] = (number, line, parsed.derived)
            index += 1
            yield parsed.event

    def on_result(self, outcome: EventOutcome) -> None:
        number, line, derived = self.pending.pop(outcome.index)
        if outcome.status == "delivered":
            return
        if outcome.error is not None:
            reason = f"{outcome.status}: {describe_error(outcome.error)}"
        else:
            reason = STATUS_TEXT.get(outcome.status, outcome.status)
        self.undelivered(number, line, derived, outcome.status, reason, error=outcome.error)

    def undelivered(
        self,
        number: int,
        line: str,
        derived: bool,
        status: str,
        reason: str,
        *,
        error: BaseException | None = None,
    ) -> None:
        """Record a valid line that was not delivered, with its derived key written in (so
        re-sending the failures file sends the same key)."""
        key = None
        if derived:
            fields = cast("dict[str, Any]", json.loads(line))
            key = derived_key(cast("str", self.namespace), number, line)
            fields[self.key_field] = key
            line = json.dumps(fields, ensure_ascii=False)
        self.problem(number, line, status, reason, key=key, error=error)

    def finish(self) -> None:
        """Record what never got an outcome: pulled without a result (a crash), and unread."""
        for number, line, derived in self.pending.values():
            self.undelivered(number, line, derived, "indeterminate", STATUS_TEXT["indeterminate"])
        self.pending.clear()
        for number, raw in self.lines:
            if not raw.strip():
                continue
            line, parsed = self.parse(number, raw)
            if parsed is not None:
                reason = "not sent: the run stopped before this line was read"
                self.undelivered(number, line, parsed.derived, "unread", reason)


def count_lines(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(1 for line in handle if line.strip())


def failures_path(args: argparse.Namespace) -> Path:
    if args.failures:
        return Path(args.failures)
    return Path(args.file).with_name(Path(args.file).name + ".failures")


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def check_args(args: argparse.Namespace, source: Path, target: Path) -> None:
    if not 1 <= args.concurrency <= MAX_CONCURRENCY:
        raise UsageError(f"--concurrency must be from 1 to {MAX_CONCURRENCY}")
    if args.stop_after_connection_failures < 0:
        raise UsageError("--stop-after-connection-failures must be 0 (never) or more")
    reasons = reasons_path(target)
    for path, what in ((target, "--failures"), (reasons, "the reasons file")):
        if _same_file(source, path):
            raise UsageError(f"{what} ({path}) is the input file; name another file")
        if path.is_dir():
            raise UsageError(f"{what} ({path}) is a directory; name a file")


def reasons_path(target: Path) -> Path:
    return target.with_name(target.name + ".reasons")


def open_output(path: Path) -> AtomicFile:
    try:
        return AtomicFile(path)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None


def events_emit_file(args: argparse.Namespace) -> int:
    """Open the files, send the lines, report; 1 when any line was not delivered."""
    source = Path(args.file)
    target = failures_path(args)
    try:
        total = count_lines(source)
    except OSError as exc:
        raise UsageError(f"cannot read {args.file}: {exc.strerror or exc}") from None
    check_args(args, source, target)
    namespace = None
    if not args.no_derived_keys:
        namespace = args.key_namespace or f"file:{source.resolve()}"
    failures = open_output(target)
    try:
        reasons = open_output(reasons_path(target))
    except UsageError:
        failures.discard()
        raise
    stopped: APIError | None = None
    summary = BulkSummary()
    recorded = False  # every line not delivered is in the failures file
    try:
        with source.open(encoding="utf-8", errors="replace", newline="") as handle:
            run = FileRun(
                failures.handle,
                reasons.handle,
                args.key_field,
                namespace,
                enumerate(handle, start=1),
            )
            try:
                stopped = anyio.run(send, args, run, summary, total)
            finally:
                run.finish()  # also after a crash: every line not delivered is recorded
                recorded = True
    finally:
        if recorded:
            failures.commit()
            reasons.commit()
        else:  # an incomplete failures file would lose lines: keep the previous one
            failures.discard()
            reasons.discard()
            sys.stderr.write(f"ventryx: {target} was not written (stopped while writing it)\n")
    report(args, summary, run, target, stopped)
    if run.interrupted:
        return EXIT_INTERRUPTED
    return 1 if stopped or run.written.total() else 0


PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy")


def transport_for(args: argparse.Namespace) -> BulkTransport:
    """``--transport auto``: aiohttp when installed, unless a proxy is set in the environment
    (the aiohttp session does not use it; httpx does)."""
    choice: str = args.transport
    if choice == "auto":
        import importlib.util  # noqa: PLC0415

        available = importlib.util.find_spec("aiohttp") is not None
        proxied = any(
            name.lower() in PROXY_VARIABLES for name, value in os.environ.items() if value
        )
        return "aiohttp" if available and not proxied else "default"
    return cast("BulkTransport", choice)


async def send(
    args: argparse.Namespace, run: FileRun, summary: BulkSummary, total: int
) -> APIError | None:
    """Send the lines; Ctrl-C (or SIGTERM) stops the run and lets it settle."""
    mode: ProgressMode = "none" if args.json else args.progress
    breaker = args.stop_after_connection_failures or None
    emitting = anyio.CancelScope()
    stopped: APIError | None = None
    async with make_client(args) as client, anyio.create_task_group() as tg:
        tg.start_soon(_watch_signals, run, emitting)
        with make_progress(mode, total, f"emitting {Path(args.file).name}") as view:

            def show(progress: Any) -> None:
                view.invalid = run.written["invalid"]
                view.update(progress)

            with emitting:
                try:
                    await client.events.emit_many(
                        run.events(),
                        concurrency=args.concurrency,
                        on_result=run.on_result,
                        on_progress=show,
                        progress_interval=0.1,
                        transport=transport_for(args),
                        cancel_grace=CANCEL_GRACE,
                        stop_after_connection_failures=breaker,
                        summary=summary,
                    )
                except APIError as exc:  # a 401/403, or the circuit breaker, stopped the run
                    stopped = exc
        tg.cancel_scope.cancel()
    return stopped


async def _watch_signals(run: FileRun, emitting: anyio.CancelScope) -> None:
    kinds = [signal.SIGINT] + ([signal.SIGTERM] if hasattr(signal, "SIGTERM") else [])
    try:
        receiver = anyio.open_signal_receiver(*kinds)
    except NotImplementedError:  # Windows: Ctrl-C arrives as KeyboardInterrupt
        await anyio.sleep_forever()
        return
    with receiver as signals:
        async for _ in signals:
            if not run.interrupted:
                run.interrupted = True
                sys.stderr.write(
                    f"\nventryx: interrupted; waiting up to {CANCEL_GRACE:g}s for the requests "
                    "in flight\n"
                )
                emitting.cancel()


def report(
    args: argparse.Namespace,
    summary: BulkSummary,
    run: FileRun,
    target: Path,
    stopped: APIError | None,
) -> None:
    invalid, unread, failed = run.written["invalid"], run.written["unread"], run.written.total()
    not_delivered = failed - invalid
    lines = summary.pulled + invalid + unread
    reasons = reasons_path(target)
    if args.json:
        counts: dict[str, object] = dict(summary.counts.items())
        counts.update(
            lines=lines,
            invalid=invalid,
            unread=unread,
            ignored_fields=run.ignored_lines,
            retries=summary.retries,
            elapsed=round(summary.elapsed, 3),
            interrupted=run.interrupted,
            stopped_by=None if stopped is None else error_fields(stopped),
            failures_file=str(target),
            reasons_file=str(reasons),
        )
        print_json(counts)
        return
    if stopped is not None:
        print_error(stopped)
    hidden = run.shown - MAX_PROBLEMS_SHOWN
    if hidden > 0:
        sys.stderr.write(f"... and {hidden:,} more (every reason is in {reasons})\n")
    rate = summary.delivered / summary.elapsed if summary.elapsed > 0 else 0.0
    head = "Delivered"
    if run.interrupted:
        head = "Interrupted: delivered"
    elif stopped is not None:
        head = "Stopped: delivered"
    sys.stdout.write(
        f"{head} {summary.delivered:,} of {lines:,} lines in {summary.elapsed:.1f}s "
        f"({rate:,.0f}/s), {summary.retries:,} retries; "
        f"{invalid:,} invalid, {not_delivered:,} not delivered\n"
    )
    if not_delivered:
        parts = [
            (summary.rejected, "rejected"),
            (summary.failed, "out of retries"),
            (summary.not_sent + unread, "not sent"),
            (summary.indeterminate, "sent without an answer (may have been applied)"),
        ]
        shown = ", ".join(f"{count:,} {what}" for count, what in parts if count)
        sys.stdout.write(f"Not delivered: {shown}\n")
    if run.ignored_lines:
        sys.stdout.write(f"{run.ignored_lines:,} lines had other fields than type, data, key: ")
        sys.stdout.write("ignored\n")
    if failed:
        again = ["ventryx", "events", "emit-file", str(target)]
        if args.key_field != "key":
            again += ["--key-field", args.key_field]
        sys.stdout.write(
            f"Wrote the {failed:,} lines not delivered to {target} (why: {reasons}); "
            f"send them again with: {shlex.join(again)}\n"
        )
