"""Pagination with the sync client: one page with its meta, then every workflow."""

from ventryx_sync import Ventryx

with Ventryx() as client:
    # GET /workflows?page=2&per_page=50
    page = client.workflows.list(page=2, per_page=50)
    meta = page.meta
    print(f"page {meta.page}, per_page {meta.per_page}, total {meta.total}: {len(page.data)}")

    # Iterating a list fetches the pages one by one, as it goes.
    count = sum(1 for _workflow in client.workflows.list(per_page=100))
    print(f"{count} workflows in all")
