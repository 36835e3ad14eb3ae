"""The idempotency store: a key is claimed while its request runs, then holds the 2xx answer
for replay (24 hours); a failed request releases it. Not thread-safe: the app holds its lock."""

from __future__ import annotations

from typing import Literal

import attrs

__all__ = ["IDEMPOTENCY_TTL", "IDEMPOTENT_METHODS", "Entry", "IdempotencyStore", "fingerprint"]

IDEMPOTENCY_TTL = 24 * 3600.0
IDEMPOTENT_METHODS = frozenset({"POST", "PATCH", "DELETE"})


def fingerprint(method: str, path: str, canonical_body: str) -> str:
    """What a replay must match: the same method, raw path and (canonical) body."""
    return f"{method} {path}\n{canonical_body}"


@attrs.define
class Entry:
    """One key's state: in flight until ``status`` is set."""

    fingerprint: str
    expires: float
    status: int = 0
    body: bytes = b""


class IdempotencyStore:
    """Entries by (API key, Idempotency-Key)."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str], Entry] = {}

    def claim(
        self, key: tuple[str, str], print_: str, now: float
    ) -> tuple[Literal["claimed", "reused", "in_flight", "replay"], Entry]:
        """Claim ``key`` at time ``now``, or say why not (another body, in flight, done)."""
        entry = self._entries.get(key)
        if entry is not None and entry.expires > now:
            if entry.fingerprint != print_:
                return "reused", entry
            return ("in_flight" if entry.status == 0 else "replay"), entry
        entry = Entry(print_, now + IDEMPOTENCY_TTL)
        self._entries[key] = entry
        return "claimed", entry

    def release(self, key: tuple[str, str], entry: Entry) -> None:
        """Forget a claim whose request did not succeed (unless replaced meanwhile)."""
        if self._entries.get(key) is entry:
            del self._entries[key]

    def clear(self) -> None:
        self._entries.clear()
