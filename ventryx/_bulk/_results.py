"""What bulk emission reports: one ``EventOutcome`` per event pulled, progress, the summary."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, TypeAlias

import attrs

__all__ = [
    "BulkProgress",
    "BulkSummary",
    "BulkTransport",
    "EventInput",
    "EventOutcome",
    "NewEvent",
    "OutcomeStatus",
]

OutcomeStatus: TypeAlias = Literal["delivered", "rejected", "failed", "not_sent", "indeterminate"]
"""``delivered``: applied, ``event_id`` set. ``rejected``: the server refused it (4xx) or the
input was invalid; never applied. ``failed``: retries or the 429 wait budget ran out; it may
have been applied by an attempt whose answer was lost. ``not_sent``: pulled, never sent.
``indeterminate``: sent, but the run stopped before an answer; it may have been applied."""

BulkTransport: TypeAlias = Literal["default", "httpx", "aiohttp"]
"""``default``: the client's own transport and pool. ``httpx`` or ``aiohttp`` (asyncio only),
when it is not the client's: a pool of that transport made for the call."""

# What a kept problem keeps of each body (see BulkSummary.record).
PROBLEM_BODY_BYTES = 2048

STATUSES: tuple[OutcomeStatus, ...] = (
    "delivered",
    "rejected",
    "failed",
    "not_sent",
    "indeterminate",
)


def _empty() -> Mapping[str, Any]:
    return {}


def _no_problems() -> list[EventOutcome]:
    return []


@attrs.frozen
class NewEvent:
    """One event to emit in bulk; ``key`` makes re-running an import safe (see ``emit_many``)."""

    type: str
    data: Mapping[str, Any] = attrs.field(factory=_empty)
    key: str | None = None


EventInput: TypeAlias = NewEvent | Mapping[str, Any]
"""An event to emit: a ``NewEvent``, or a dict with ``type``, optional ``data`` and ``key``."""


@attrs.frozen(kw_only=True)
class EventOutcome:
    """What became of the input item at ``index`` (0-based position in the input)."""

    index: int
    status: OutcomeStatus
    idempotency_key: str | None
    event_id: str | None = None
    error: BaseException | None = None
    attempts: int = 0


@attrs.frozen(kw_only=True)
class BulkProgress:
    """A snapshot of a run; ``rate`` is the gate's send rate (events/s), ``None`` when unpaced."""

    pulled: int
    sent: int
    delivered: int
    rejected: int
    failed: int
    not_sent: int
    indeterminate: int
    in_flight: int
    attempts: int
    retries: int
    rate_limited: int
    rate: float | None
    elapsed: float
    final: bool = False


@attrs.define(kw_only=True)
class BulkSummary:
    """The tally of a run, filled in place while it goes (pass one in to read it after a cancel).

    The counts of the five outcomes sum to ``pulled``. ``problems`` keeps the first
    ``max_problems`` outcomes that were not delivered (``problems_dropped`` counts the rest);
    delivered outcomes go only to ``on_result``, so memory stays flat.
    """

    pulled: int = 0
    sent: int = 0
    delivered: int = 0
    rejected: int = 0
    failed: int = 0
    not_sent: int = 0
    indeterminate: int = 0
    attempts: int = 0
    rate_limited: int = 0
    max_in_flight: int = 0
    elapsed: float = 0.0
    cancelled: bool = False
    stopped_by: BaseException | None = None
    problems: list[EventOutcome] = attrs.field(factory=_no_problems)
    problems_dropped: int = 0
    max_problems: int = 1000

    @property
    def retries(self) -> int:
        """Attempts beyond each event's first."""
        return self.attempts - self.sent

    @property
    def settled(self) -> int:
        """Events that have their outcome (equals ``pulled`` once the run has returned)."""
        return self.delivered + self.rejected + self.failed + self.not_sent + self.indeterminate

    @property
    def counts(self) -> dict[OutcomeStatus, int]:
        """The number of events per outcome."""
        return {status: getattr(self, status) for status in STATUSES}

    def record(self, outcome: EventOutcome) -> None:
        """Count one outcome (the engine calls this exactly once per event).

        A kept problem's error keeps at most ``PROBLEM_BODY_BYTES`` of each body (the answer's
        and the request's), so ``problems`` stays small whatever the server sent.
        """
        setattr(self, outcome.status, getattr(self, outcome.status) + 1)
        if outcome.status != "delivered":
            if len(self.problems) < self.max_problems:
                compact = getattr(outcome.error, "compact", None)
                if compact is not None:
                    compact(PROBLEM_BODY_BYTES)
                self.problems.append(outcome)
            else:
                self.problems_dropped += 1
