"""Turning one input item into the body and the idempotency key it is sent with."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, cast

from ventryx._bulk._results import NewEvent
from ventryx._errors import InvalidInputError
from ventryx._pipeline import new_idempotency_key
from ventryx._validation import event_body

__all__ = ["fresh_key", "idempotency_key_for", "prepare"]

_ALLOWED = frozenset({"type", "data", "key"})
KEY_PREFIX = "vxb-"


def idempotency_key_for(user_key: object) -> str:
    """The Idempotency-Key of an event with a user ``key``: the same key, the same header.

    A hash rather than the key itself, so any non-empty string (long, non-ASCII) is usable and
    keys of other tools cannot collide with ours.
    """
    if not isinstance(user_key, str) or not user_key:
        raise InvalidInputError("key", "must be a non-empty string")
    return KEY_PREFIX + hashlib.sha256(user_key.encode()).hexdigest()[:40]


def prepare(item: object) -> tuple[dict[str, Any], str | None]:
    """The checked JSON body and the derived key (``None``: use a fresh random one)."""
    type_: object
    data: object
    key: object
    if isinstance(item, NewEvent):
        type_, data, key = item.type, item.data, item.key
    elif isinstance(item, Mapping):
        fields = cast("Mapping[str, Any]", item)
        unknown = [repr(name) for name in fields if name not in _ALLOWED]
        if unknown:
            names = ", ".join(sorted(unknown))
            raise InvalidInputError("event", f"unknown field(s) {names}; expected type, data, key")
        type_, data, key = fields.get("type"), fields.get("data"), fields.get("key")
    else:
        raise InvalidInputError("event", f"must be a NewEvent or a dict, got {type(item).__name__}")
    body = event_body(type_, data)
    return body, None if key is None else idempotency_key_for(key)


def fresh_key() -> str:
    """A random key for an event without a user key, kept for all its attempts."""
    return new_idempotency_key()
