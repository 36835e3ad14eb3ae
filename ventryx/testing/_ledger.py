"""What the server saw and did, so a test can prove nothing was lost or duplicated."""

from __future__ import annotations

import collections
import json
import threading
from collections.abc import Iterator, Mapping
from typing import Any, Literal, cast

import attrs

REQUEST_RECORD_CAP = 200_000
_CANONICAL = json.JSONEncoder(separators=(",", ":"), sort_keys=True)


class _ReadByKey(Mapping[str, Any]):
    """Field access by name as well (``record["type"]``, ``dict(record)``): ledger entries were
    plain dicts before they were typed, and tests written then keep working."""

    __slots__ = ()

    def _names(self) -> dict[str, Any]:
        return attrs.fields_dict(cast("Any", type(self)))

    def __getitem__(self, key: str) -> Any:
        if key not in self._names():
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __len__(self) -> int:
        return len(self._names())


@attrs.frozen(eq=False)
class EventRecord(_ReadByKey):
    """One applied event as stored, with the Idempotency-Key it came with."""

    id: str
    type: str
    data: dict[str, Any]
    created_at: str
    idempotency_key: str | None


@attrs.frozen(eq=False)
class WorkflowWrite(_ReadByKey):
    """One applied workflow write."""

    op: Literal["create", "update", "delete"]
    id: str
    idempotency_key: str | None


@attrs.frozen
class RequestRecord:
    """One request as received (keys redacted) and how it was answered (status 0: reset)."""

    method: str
    path: str
    query: str
    idempotency_key: str | None
    headers: dict[str, str]
    status: int
    fault: str | None


class Ledger:
    """Counts and logs of the server's work; every read returns a copy taken under a lock."""

    def __init__(self, record_requests: bool = True) -> None:
        self.record_requests = record_requests
        self._lock = threading.Lock()
        self._events: list[EventRecord] = []
        self._workflow_writes: list[WorkflowWrite] = []
        self._attempts: collections.Counter[str] = collections.Counter()
        self._faults: collections.Counter[str] = collections.Counter()
        self._requests: collections.deque[RequestRecord] = collections.deque(
            maxlen=REQUEST_RECORD_CAP
        )
        self._event_fingerprints: set[str] = set()
        self._replays = 0
        self._duplicates = 0
        self._rate_limited = 0

    # -- reads ---------------------------------------------------------------------------
    @property
    def events(self) -> list[EventRecord]:
        """Every applied event: id, type, data, created_at, idempotency_key."""
        with self._lock:
            return list(self._events)

    @property
    def workflow_writes(self) -> list[WorkflowWrite]:
        """Every applied workflow write: op (create/update/delete), id, idempotency_key."""
        with self._lock:
            return list(self._workflow_writes)

    @property
    def attempts(self) -> collections.Counter[str]:
        """Requests per route key ("POST /v1/events"), 429s and faults included."""
        with self._lock:
            return collections.Counter(self._attempts)

    @property
    def faults(self) -> collections.Counter[str]:
        """Injected faults by kind."""
        with self._lock:
            return collections.Counter(self._faults)

    @property
    def requests(self) -> list[RequestRecord]:
        """The most recent requests (up to 200,000) when recording is on."""
        with self._lock:
            return list(self._requests)

    @property
    def replays(self) -> int:
        """Idempotent replays served."""
        return self._replays

    @property
    def duplicates(self) -> int:
        """Applied events whose (type, data) equals an earlier applied event's."""
        return self._duplicates

    @property
    def rate_limited(self) -> int:
        """Requests refused by the rate limiter (429)."""
        return self._rate_limited

    def snapshot(self) -> dict[str, Any]:
        """All counts as plain JSON-ready values."""
        with self._lock:
            return {
                "events": len(self._events),
                "workflow_writes": len(self._workflow_writes),
                "attempts": dict(self._attempts),
                "faults": dict(self._faults),
                "replays": self._replays,
                "duplicates": self._duplicates,
                "rate_limited": self._rate_limited,
                "requests_recorded": len(self._requests),
            }

    # -- writes (by the app) -------------------------------------------------------------
    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self._events.clear()
            self._workflow_writes.clear()
            self._attempts.clear()
            self._faults.clear()
            self._requests.clear()
            self._event_fingerprints.clear()
            self._replays = self._duplicates = self._rate_limited = 0

    def attempt(self, route_key: str) -> None:
        with self._lock:
            self._attempts[route_key] += 1

    def add_event(self, event: dict[str, Any], idempotency_key: str | None) -> None:
        fingerprint = _CANONICAL.encode([event["type"], event["data"]])
        with self._lock:
            self._events.append(
                EventRecord(
                    event["id"], event["type"], event["data"], event["created_at"], idempotency_key
                )
            )
            if fingerprint in self._event_fingerprints:
                self._duplicates += 1
            else:
                self._event_fingerprints.add(fingerprint)

    def add_workflow_write(
        self,
        op: Literal["create", "update", "delete"],
        workflow_id: str,
        idempotency_key: str | None,
    ) -> None:
        with self._lock:
            self._workflow_writes.append(WorkflowWrite(op, workflow_id, idempotency_key))

    def add_replay(self) -> None:
        with self._lock:
            self._replays += 1

    def add_fault(self, kind: str) -> None:
        with self._lock:
            self._faults[kind] += 1

    def add_rate_limited(self) -> None:
        with self._lock:
            self._rate_limited += 1

    def record(self, record: RequestRecord) -> None:
        if self.record_requests:
            with self._lock:
                self._requests.append(record)
