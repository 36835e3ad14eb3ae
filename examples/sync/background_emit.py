"""Enqueue 100 events from "handlers" without waiting for the API; they are delivered behind.

The outbox file keeps every enqueued event until it is delivered: kill the process and the next
emitter on the same file delivers what is left (set VENTRYX_OUTBOX to keep it somewhere).
"""

import os
import tempfile
import time
from pathlib import Path

from ventryx_sync import Ventryx

OUTBOX = os.environ.get("VENTRYX_OUTBOX") or Path(tempfile.mkdtemp()) / "ventryx-outbox.db"

with Ventryx() as client, client.events.emitter(outbox=OUTBOX) as emitter:
    started = time.perf_counter()
    for n in range(100):  # what a request handler does: returns at once
        emitter.enqueue(type="page.viewed", data={"n": n}, key=f"view-{n}")
    took = (time.perf_counter() - started) * 1000
    emitter.flush(timeout=10)
    stats = emitter.stats
print(f"enqueued 100 events in {took:.1f} ms; delivered {stats.delivered}, pending {stats.pending}")
