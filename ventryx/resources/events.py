"""``client.events``: emit events, and list or retrieve the ones emitted."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ventryx._pagination import AsyncPage, AsyncPager, check_page_params
from ventryx._types import NOT_GIVEN, Headers, NotGiven, Query, TimeoutTypes
from ventryx.models import Event
from ventryx.resources._base import AsyncResource, mapping_of, non_empty_str, path_segment

__all__ = ["AsyncEvents"]


def event_body(type: object, data: object) -> dict[str, Any]:
    """The JSON body of one event, checked: a non-empty ``type`` and an object ``data``."""
    body: dict[str, Any] = {"type": non_empty_str(type, "type")}
    if data is not None:
        body["data"] = mapping_of(data, "data")
    return body


class AsyncEvents(AsyncResource):
    """Events: what triggers workflows."""

    async def emit(
        self,
        *,
        type: str,
        data: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
        extra_headers: Headers | None = None,
        extra_query: Query | None = None,
        timeout: TimeoutTypes | NotGiven = NOT_GIVEN,
        max_retries: int | None = None,
    ) -> Event:
        """Emit one event of ``type`` with free-form ``data``; returns it with its new id.

        Retries are safe: every attempt carries the same ``Idempotency-Key`` (generated unless
        given), so the event is applied once.
        """
        response = await self._pipeline.request(
            "POST",
            "/events",
            body=event_body(type, data),
            idempotency_key=idempotency_key,
            timeout=timeout,
            max_retries=max_retries,
            extra_headers=extra_headers,
            extra_query=extra_query,
        )
        return self._pipeline.decode(Event, response)

    def list(
        self,
        *,
        page: int | None = None,
        per_page: int | None = None,
        type: str | None = None,
        extra_headers: Headers | None = None,
        extra_query: Query | None = None,
        timeout: TimeoutTypes | NotGiven = NOT_GIVEN,
        max_retries: int | None = None,
    ) -> AsyncPager[Event]:
        """List events, optionally only those of one ``type``: await for a page, iterate for all."""
        first, size = check_page_params(page, per_page)
        event_type = None if type is None else non_empty_str(type, "type")

        async def fetch(number: int) -> AsyncPage[Event]:
            params: dict[str, int | str] = {"page": number}
            if size is not None:
                params["per_page"] = size
            if event_type is not None:
                params["type"] = event_type
            response = await self._pipeline.request(
                "GET",
                "/events",
                params=params,
                timeout=timeout,
                max_retries=max_retries,
                extra_headers=extra_headers,
                extra_query=extra_query,
            )
            return self._page(response, Event, fetch)

        return AsyncPager(fetch, first or 1)

    async def retrieve(
        self,
        event_id: str,
        *,
        extra_headers: Headers | None = None,
        extra_query: Query | None = None,
        timeout: TimeoutTypes | NotGiven = NOT_GIVEN,
        max_retries: int | None = None,
    ) -> Event:
        """Fetch one event by id (``NotFoundError`` when there is none)."""
        response = await self._pipeline.request(
            "GET",
            f"/events/{path_segment(event_id, 'event_id')}",
            timeout=timeout,
            max_retries=max_retries,
            extra_headers=extra_headers,
            extra_query=extra_query,
        )
        return self._pipeline.decode(Event, response)
