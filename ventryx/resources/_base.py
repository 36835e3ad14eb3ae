"""What every resource shares: the pipeline, one call, one list, and the checks."""

from __future__ import annotations

from collections.abc import Coroutine, Mapping
from typing import Any, TypeVar, cast

from ventryx._options import RequestOptions
from ventryx._pagination import AsyncPage, AsyncPager, check_page_params
from ventryx._pipeline import Pipeline, Response
from ventryx._types import as_object
from ventryx._validation import mapping_of, non_empty_str, path_segment

__all__ = ["AsyncResource", "mapping_of", "non_empty_str", "path_segment"]

_T = TypeVar("_T")


class AsyncResource:
    """Base of the resource classes; holds the client's request pipeline."""

    def __init__(self, pipeline: Pipeline) -> None:
        self._pipeline = pipeline

    def _call(
        self,
        model: type[_T],
        method: str,
        path: str,
        options: RequestOptions,
        *,
        body: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Coroutine[Any, Any, _T]:
        """One call with the method's ``**options``: its answer's ``data`` as a ``model``.

        The pipeline's coroutine itself (to be awaited): no coroutine of its own on the way.
        """
        pipeline = self._pipeline
        return pipeline.request(
            method,
            path,
            pipeline.call_options(options),
            body=body,
            idempotency_key=idempotency_key,
            model=model,
        )

    def _list(
        self,
        item: type[_T],
        path: str,
        options: RequestOptions,
        page: int | None,
        per_page: int | None,
        **filters: str | None,
    ) -> AsyncPager[_T]:
        """A pager over ``path``: options and page parameters checked now, pages fetched lazily."""
        first, size = check_page_params(page, per_page)
        call = self._pipeline.call_options(options)
        sizing = {} if size is None else {"per_page": size}
        given = {name: value for name, value in filters.items() if value is not None}

        async def fetch(number: int) -> AsyncPage[_T]:
            params = {"page": number, **sizing, **given}
            response = await self._pipeline.request("GET", path, call, params=params)
            return self._page(response, item, fetch)

        return AsyncPager(fetch, first or 1)

    def _page(self, response: Response, item: type[_T], fetch: Any) -> AsyncPage[_T]:
        from ventryx._converter import (  # noqa: PLC0415 - see decode()
            ConversionError,
            fast_structure,
            structure,
        )
        from ventryx.models import PageMeta  # noqa: PLC0415

        pipeline = self._pipeline
        document = as_object(response.document)
        entries = document.get("data") if document is not None else None
        if not isinstance(entries, list):
            raise pipeline.invalid(response, "a list response needs a 'data' array")
        meta = pipeline.decode(PageMeta, response, key="meta")
        fast = fast_structure(item)
        items: list[_T] = []
        for index, entry in enumerate(cast("list[object]", entries)):
            value = None if fast is None else fast(entry)
            if value is None:  # not of the usual shape: the converter decides, and says where
                try:
                    value = structure(entry, item, path=f"data[{index}]")
                except ConversionError as exc:
                    problem = f"item {index} is not a {item.__name__}: {exc}"
                    raise pipeline.invalid(response, problem) from None
            items.append(value)
        return AsyncPage(items, meta, fetch=fetch, raw_response=response.raw)
