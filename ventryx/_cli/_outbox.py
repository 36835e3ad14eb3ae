"""``ventryx outbox status|drain|failed|retry PATH``: look into an emitter's outbox file.

``status`` counts what is stored; ``drain`` delivers it (with progress) and exits 1 if anything
is left or was refused; ``failed`` prints the dead letters (events the API refused with a 4xx)
as JSON lines; ``retry`` moves them back into the outbox, keys unchanged, for the next drain.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path
from typing import Any

import anyio

from ventryx._cli._commands import UsageError, make_client
from ventryx._cli._output import print_json
from ventryx._cli._progress import PROGRESS_MODES, ProgressMode, make_progress
from ventryx._errors import AuthenticationError, PermissionDeniedError

__all__ = ["add_parser"]


def add_parser(nouns: Any, common: argparse.ArgumentParser) -> None:
    """Register ``outbox`` and its four actions under the top-level parser's subcommands."""
    outbox = nouns.add_parser("outbox", help="inspect, drain and retry an emitter's outbox file")
    verbs = outbox.add_subparsers(dest="verb", metavar="ACTION", required=True)
    for name, runner, text in [
        ("status", status, "what is stored: pending, leased, dead letters, oldest"),
        ("drain", drain, "deliver every stored event now"),
        ("failed", failed, "the dead letters (refused by the API), as JSON lines"),
        ("retry", retry, "move the dead letters back into the outbox"),
    ]:
        verb = verbs.add_parser(name, parents=[common], help=text)
        verb.add_argument("path", metavar="PATH", help="the outbox file")
        verb.set_defaults(runner=runner)
        if name == "drain":
            verb.add_argument(
                "--timeout", type=float, metavar="SECONDS", help="give up after this long"
            )
            verb.add_argument(
                "--concurrency", type=int, default=32, metavar="N", help="requests in flight"
            )
            verb.add_argument("--progress", choices=PROGRESS_MODES, default="auto")


def _store(args: argparse.Namespace) -> Any:
    from ventryx._emitter._store import SQLiteStore  # noqa: PLC0415 - loads sqlite3

    if not Path(args.path).is_file():
        raise UsageError(f"no outbox file at {args.path}")
    return SQLiteStore(args.path)


def _age(created: float | None) -> float | None:
    return None if created is None else round(max(0.0, time.time() - created), 3)


def status(args: argparse.Namespace) -> int:
    with contextlib.closing(_store(args)) as store:
        counts, leased = store.counts(), store.leased()
    report = {
        "path": str(args.path),
        "pending": counts.pending,
        "leased": leased,
        "dead_letters": counts.dead,
        "oldest_pending_age": _age(counts.oldest_created),
        "bytes": Path(args.path).stat().st_size,
    }
    if args.json:
        print_json(report)
    else:
        for name, value in report.items():
            sys.stdout.write(f"{name:20} {'-' if value is None else value}\n")
    return 0


def failed(args: argparse.Namespace) -> int:
    with contextlib.closing(_store(args)) as store:
        letters = store.dead_letters()
    for letter in letters:
        record = {
            "type": letter.type,
            "data": letter.data,
            "key": letter.key,
            "idempotency_key": letter.idempotency_key,
            "status": letter.status,
            "error": letter.error,
            "created": letter.created,
            "failed": letter.failed,
        }
        sys.stdout.write(json.dumps(record, ensure_ascii=False) + "\n")
    return 0


def retry(args: argparse.Namespace) -> int:
    with contextlib.closing(_store(args)) as store:
        moved = store.retry_dead()
    if args.json:
        print_json({"moved": moved})
    else:
        sys.stdout.write(f"Moved {moved:,} dead letter{'s' * (moved != 1)} back into the outbox\n")
    return 0


def drain(args: argparse.Namespace) -> int:
    _store(args).close()  # the file must exist: draining never creates one
    if args.concurrency < 1:
        raise UsageError("--concurrency must be at least 1")
    if args.timeout is not None and not args.timeout >= 0:
        raise UsageError("--timeout must be a number of seconds >= 0")
    left, stats = anyio.run(_drain, args)
    if args.json:
        print_json({"delivered": stats.delivered, "rejected": stats.rejected, "left": left})
    else:
        sys.stdout.write(
            f"Delivered {stats.delivered:,}, rejected {stats.rejected:,} (dead letters), "
            f"{left:,} left in {args.path}\n"
        )
    return 1 if left or stats.rejected else 0


async def _drain(args: argparse.Namespace) -> tuple[int, Any]:
    from ventryx._bulk._results import BulkProgress  # noqa: PLC0415

    mode: ProgressMode = "none" if args.json else args.progress
    started = time.monotonic()
    async with make_client(args) as client:
        emitter = client.events.emitter(
            outbox=args.path, concurrency=args.concurrency, drain_timeout=0.0
        )
        total = emitter.stats.pending
        with make_progress(mode, total or None, f"draining {Path(args.path).name}") as view:

            def show(*, final: bool) -> None:
                s = emitter.stats
                view.update(
                    BulkProgress(
                        pulled=s.delivered + s.rejected + s.in_flight,
                        sent=s.delivered + s.rejected + s.in_flight,
                        delivered=s.delivered,
                        rejected=s.rejected,
                        failed=0,
                        not_sent=0,
                        indeterminate=0,
                        in_flight=s.in_flight,
                        attempts=s.delivered + s.rejected + s.retries,
                        retries=s.retries,
                        rate_limited=0,
                        rate=None,
                        elapsed=time.monotonic() - started,
                        final=final,
                    )
                )

            async with emitter:
                deadline = None if args.timeout is None else started + args.timeout
                while True:
                    remaining = None if deadline is None else deadline - time.monotonic()
                    step = 0.1 if remaining is None else max(0.0, min(0.1, remaining))
                    if await emitter.flush(timeout=step) or step == 0.0:
                        break
                    if isinstance(emitter.last_error, (AuthenticationError, PermissionDeniedError)):
                        raise emitter.last_error  # waiting would never end: the key is refused
                    show(final=False)
            show(final=True)
            stats = emitter.stats
    return stats.pending, stats
