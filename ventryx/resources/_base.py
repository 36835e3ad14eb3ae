"""What every resource shares: the pipeline, and (from ``ventryx._validation``) the checks."""

from __future__ import annotations

from typing import Any, TypeVar, cast

from ventryx._pagination import AsyncPage
from ventryx._pipeline import Pipeline, Response
from ventryx._types import as_object
from ventryx._validation import mapping_of, non_empty_str, path_segment

__all__ = ["AsyncResource", "mapping_of", "non_empty_str", "path_segment"]

_T = TypeVar("_T")


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
