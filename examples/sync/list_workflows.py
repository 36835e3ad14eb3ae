"""List workflows (the first page) with the sync client."""

from ventryx_sync import Ventryx

# The key comes from VENTRYX_API_KEY, the URL from VENTRYX_BASE_URL (or the default).
with Ventryx() as client:
    page = client.workflows.list()
    for workflow in page.data:
        print(workflow.id, workflow.name)
    print(f"{len(page.data)} workflows on this page, {page.meta.total} in all")
