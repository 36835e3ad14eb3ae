"""Decode cost of a page of 100 workflows: the SDK's path against ``json.loads`` alone.

The SDK's path is what ``AsyncResource._page`` does with a list answer: ``json.loads`` of the
body, then the shared cattrs converter structures ``meta`` into ``PageMeta`` and every entry of
``data`` into a ``Workflow``. Both are timed in CPU time, alternately, in the same process.
"""

from __future__ import annotations

import gc
import json
import time
from typing import Any

from benchmarks._util import Config, Row, Stat, paired_ratio

__all__ = ["PAGE_SIZE", "page_body", "run"]

PAGE_SIZE = 100


def page_body(size: int = PAGE_SIZE) -> bytes:
    """A ``GET /v1/workflows?per_page=100`` answer as the API sends it."""
    workflows: list[dict[str, Any]] = [
        {
            "id": f"wf_{i:024x}",
            "name": f"Onboarding flow {i}",
            "trigger": {"event": "user.registered"},
            "steps": [
                {"type": "send_notification", "channel": "email", "template": "welcome"},
                {"type": "wait", "duration": "1d"},
                {"type": "send_notification", "channel": "sms", "template": "reminder"},
            ],
            "created_at": "2026-01-01T00:00:00Z",
            "updated_at": "2026-01-02T12:30:45.123456Z" if i % 2 else None,
        }
        for i in range(size)
    ]
    for wf in workflows:
        if wf["updated_at"] is None:
            del wf["updated_at"]
    document = {"data": workflows, "meta": {"total": 1000, "page": 1, "per_page": size}}
    return json.dumps(document).encode()


def run(cfg: Config) -> list[Row]:
    from ventryx._converter import get_converter
    from ventryx.models import PageMeta, Workflow

    body = page_body()
    converter = get_converter()

    def loads_only() -> object:
        return json.loads(body)

    def sdk_decode() -> object:
        document = json.loads(body)
        meta = converter.structure(document["meta"], PageMeta)
        return meta, [converter.structure(entry, Workflow) for entry in document["data"]]

    meta, items = sdk_decode()  # type: ignore[misc]
    if len(items) != PAGE_SIZE or meta.per_page != PAGE_SIZE:
        raise RuntimeError("the page did not decode into 100 workflows")

    def timed(fn: Any) -> float:
        """CPU microseconds per page, over ``cfg.decode_pages`` pages."""
        gc.collect()
        start = time.process_time()
        for _ in range(cfg.decode_pages):
            fn()
        return (time.process_time() - start) / cfg.decode_pages * 1e6

    timed(loads_only)
    timed(sdk_decode)
    sides: dict[str, list[float]] = {"sdk": [], "loads": []}
    # More repetitions than the request figures: a run lasts milliseconds.
    runs = max(cfg.runs * 3, 3)
    for i in range(runs):
        order = (("sdk", sdk_decode), ("loads", loads_only))
        for name, fn in order if i % 2 == 0 else order[::-1]:
            sides[name].append(timed(fn))
    return [
        Row(
            "decode",
            f"page of {PAGE_SIZE} workflows ({len(body):,} B)",
            ratio_label="SDK / json.loads",
            ratio=paired_ratio(sides["sdk"], sides["loads"]),
            measured={
                "us/page SDK": Stat.of(sides["sdk"]),
                "us/page json.loads": Stat.of(sides["loads"]),
                "us/page converter": Stat.of(
                    [a - b for a, b in zip(sides["sdk"], sides["loads"], strict=True)]
                ),
            },
        )
    ]
