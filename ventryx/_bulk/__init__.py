"""Concurrent bulk event emission: ``client.events.emit_many`` and its blocking twin.

Roles: ``_input`` (item -> body and key), ``_gate`` (the shared rate gate), ``_engine`` (the
worker pool), ``_run`` (arguments, transport, cancellation),
``_blocking`` (the portal for sync code), ``_results`` (what a run reports).
"""

from ventryx._bulk._results import (
    BulkProgress,
    BulkSummary,
    BulkTransport,
    EventInput,
    EventOutcome,
    NewEvent,
    OutcomeStatus,
)

__all__ = [
    "BulkProgress",
    "BulkSummary",
    "BulkTransport",
    "EventInput",
    "EventOutcome",
    "NewEvent",
    "OutcomeStatus",
]
