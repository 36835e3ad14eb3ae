"""Checks on caller input shared by the resources and the bulk engine: pure, no I/O.

Each check returns the value (converted where the API needs it) or raises
``InvalidInputError`` naming the parameter. Both ``ventryx.resources`` and ``ventryx._bulk``
import this module and nothing here imports either, so neither layer reaches into the other.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast
from urllib.parse import quote

from ventryx._errors import InvalidInputError
from ventryx._options import check_text

__all__ = ["MAX_ID_LENGTH", "event_body", "mapping_of", "non_empty_str", "path_segment"]

MAX_ID_LENGTH = 1024


def non_empty_str(value: object, param: str) -> str:
    if not isinstance(value, str):
        raise InvalidInputError(param, f"must be a string, got {type(value).__name__}")
    if not value.strip():
        raise InvalidInputError(param, "must not be empty")
    return value


def path_segment(value: object, param: str) -> str:
    """An id as exactly one percent-encoded path segment: it can never reach another route."""
    text = non_empty_str(value, param)
    check_text(text, param, "the id", MAX_ID_LENGTH)
    segment = quote(text, safe="")
    # "." and ".." survive quote() and would be collapsed by URL normalisation.
    return segment.replace(".", "%2E") if set(segment) == {"."} else segment


def mapping_of(value: object, param: str) -> Mapping[str, Any]:
    """``value`` as a JSON object: a mapping whose keys are all strings."""
    given = value
    if type(given) is dict:  # the usual case, checked without a generator
        plain: dict[object, Any] = given  # pyright: ignore[reportUnknownVariableType]
        for key in plain:
            if type(key) is not str:
                break
        else:
            return cast("dict[str, Any]", plain)
    kind = type(value).__name__
    if isinstance(value, Mapping):
        mapping = cast("Mapping[object, Any]", value)
        if all(isinstance(k, str) for k in mapping):
            return cast("Mapping[str, Any]", mapping)
    raise InvalidInputError(param, f"must be an object (a dict with string keys), got {kind}")


def event_body(type: object, data: object) -> dict[str, Any]:
    """The JSON body of one event, checked: a non-empty ``type`` and an object ``data``."""
    body: dict[str, Any] = {"type": non_empty_str(type, "type")}
    if data is not None:
        body["data"] = mapping_of(data, "data")
    return body
