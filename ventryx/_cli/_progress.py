"""The live progress bar of bulk emission: rich when installed, one plain line otherwise."""

from __future__ import annotations

import importlib.util
import sys
from typing import Literal, TextIO

from ventryx._bulk._results import BulkProgress

__all__ = ["ProgressMode", "ProgressView", "make_progress"]

ProgressMode = Literal["auto", "rich", "plain", "none"]
PROGRESS_MODES: tuple[ProgressMode, ...] = ("auto", "rich", "plain", "none")


def settled(progress: BulkProgress, invalid: int = 0) -> int:
    """Events that have their outcome, plus the ``invalid`` input lines that were never sent."""
    p = progress
    return p.delivered + p.rejected + p.failed + p.not_sent + p.indeterminate + invalid


def status_text(progress: BulkProgress, invalid: int = 0) -> str:
    p = progress
    rate = p.delivered / p.elapsed if p.elapsed > 0 else 0.0
    text = f"delivered {p.delivered:,}  {rate:,.0f}/s  retries {p.retries:,}"
    if invalid:
        text += f"  invalid {invalid:,}"
    problems = p.rejected + p.failed + p.not_sent + p.indeterminate
    return text + (f"  not delivered {problems:,}" if problems else "")


class ProgressView:
    """Shows nothing; the base of the real views (``--progress none``).

    ``invalid`` counts input lines that were never sent (``emit-file``'s invalid lines): they
    move the bar, and are shown apart from the events not delivered.
    """

    def __init__(self, total: int | None, label: str) -> None:
        self.total = total
        self.label = label
        self.invalid = 0

    def update(self, progress: BulkProgress) -> None:
        """Show a snapshot (``emit_many``'s ``on_progress``)."""

    def __enter__(self) -> ProgressView:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None


class PlainProgress(ProgressView):
    """One line rewritten in place on a terminal; elsewhere, only the final line."""

    WIDTH = 30

    def __init__(self, total: int | None, label: str, stream: TextIO | None = None) -> None:
        super().__init__(total, label)
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty()
        self.shown = False

    def render(self, progress: BulkProgress) -> str:
        done = settled(progress, self.invalid)
        if self.total:
            filled = min(self.WIDTH, self.WIDTH * done // self.total)
            bar = "#" * filled + "." * (self.WIDTH - filled)
            count = f"[{bar}] {done:,}/{self.total:,}"
        else:
            count = f"{done:,}"
        status = status_text(progress, self.invalid)
        return f"{self.label} {count}  {status}  {progress.elapsed:.1f}s"

    def update(self, progress: BulkProgress) -> None:
        if self.live or progress.final:
            prefix = "\r" if self.live else ""
            self.stream.write(prefix + self.render(progress))
            self.stream.flush()
            self.shown = True

    def __exit__(self, *exc_info: object) -> None:
        if self.shown:
            self.stream.write("\n")
            self.stream.flush()


class RichProgress(ProgressView):
    """A rich progress bar on stderr."""

    def __init__(self, total: int | None, label: str) -> None:
        super().__init__(total, label)
        from rich.console import Console  # noqa: PLC0415 - rich is the optional `cli` extra
        from rich.progress import (  # noqa: PLC0415
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
        )
        self.task = self.progress.add_task(label, total=total, status="")

    def update(self, progress: BulkProgress) -> None:
        self.progress.update(
            self.task,
            completed=settled(progress, self.invalid),
            status=status_text(progress, self.invalid),
        )

    def __enter__(self) -> RichProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.progress.stop()


def make_progress(mode: ProgressMode, total: int | None, label: str) -> ProgressView:
    """The view for ``mode``; ``auto`` is rich when it is installed, else the plain line."""
    if mode == "none":
        return ProgressView(total, label)
    if mode == "rich" or (mode == "auto" and importlib.util.find_spec("rich") is not None):
        return RichProgress(total, label)
    return PlainProgress(total, label)
