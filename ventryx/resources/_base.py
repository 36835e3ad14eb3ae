"""What every resource shares: the pipeline, and the checks on ids and names."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast
from urllib.parse import quote

from ventryx._errors import InvalidInputError
from ventryx._options import check_text
from ventryx._pagination import AsyncPage
from ventryx._pipeline import Pipeline, Response
from ventryx._types import as_object

__all__ = ["AsyncResource", "mapping_of", "non_empty_str", "path_segment"]

_T = TypeVar("_T")


def non_empty_str(value: object, param: str) -> str:
    if not isinstance(value, str):
        raise InvalidInputError(param, f"must be a string, got {type(value).__name__}")
    if not value.strip():
        raise InvalidInputError(param, "must not be empty")
    return value


MAX_ID_LENGTH = 1024


def path_segment(value: object, param: str) -> str:
    """An id as exactly one percent-encoded path segment: it can never reach another route."""
    text = non_empty_str(value, param)
    check_text(text, param, "the id", MAX_ID_LENGTH)
    segment = quote(text, safe="")
    # "." and ".." survive quote() and would be collapsed by URL normalisation.
    return segment.replace(".", "%2E") if set(segment) == {"."} else segment


class AsyncResource:
    """Base of the resource classes; holds the client's request pipeline."""

    def __init__(self, pipeline: Pipeline) -> None:
        self._pipeline = pipeline

    def _page(self, response: Response, item: type[_T], fetch: Any) -> AsyncPage[_T]:
        from ventryx._converter import ConversionError, structure  # noqa: PLC0415 - see decode()
        from ventryx.models import PageMeta  # noqa: PLC0415

        pipeline = self._pipeline
        document = as_object(response.document)
        entries = document.get("data") if document is not None else None
        if not isinstance(entries, list):
            raise pipeline.invalid(response, "a list response needs a 'data' array")
        meta = pipeline.decode(PageMeta, response, key="meta")
        items: list[_T] = []
        for index, entry in enumerate(cast("list[object]", entries)):
            try:
                items.append(structure(entry, item, path=f"data[{index}]"))
            except ConversionError as exc:
                problem = f"item {index} is not a {item.__name__}: {exc}"
                raise pipeline.invalid(response, problem) from None
        return AsyncPage(items, meta, fetch=fetch, raw_response=response.raw)


def mapping_of(value: object, param: str) -> Mapping[str, Any]:
    """``value`` as a JSON object: a mapping whose keys are all strings."""
    kind = type(value).__name__
    if isinstance(value, Mapping):
        mapping = cast("Mapping[object, Any]", value)
        if all(isinstance(k, str) for k in mapping):
            return cast("Mapping[str, Any]", mapping)
    raise InvalidInputError(param, f"must be an object (a dict with string keys), got {kind}")
