"""Small shared types: the NOT_GIVEN sentinel and the accepted forms of common arguments."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any, Final, Literal, TypeAlias, cast

import httpx


class NotGiven(enum.Enum):
    """Marks an argument the caller did not pass, where ``None`` has a meaning of its own."""

    NOT_GIVEN = "NOT_GIVEN"

    def __repr__(self) -> str:
        return "NOT_GIVEN"

    def __bool__(self) -> Literal[False]:
        return False


NOT_GIVEN: Final = NotGiven.NOT_GIVEN

JSONObject: TypeAlias = dict[str, Any]


def as_object(value: object) -> JSONObject | None:
    """``value`` typed as a JSON object when it is a dict, else ``None``."""
    return cast(JSONObject, value) if isinstance(value, dict) else None


# `Union` rather than `|`: these aliases are evaluated at runtime on Python 3.10.
TimeoutTypes: TypeAlias = float | httpx.Timeout | None
Headers: TypeAlias = Mapping[str, str]
Query: TypeAlias = Mapping[str, str | int | float | bool]
