"""The ``ventryx`` logger; ``VENTRYX_LOG=debug|info`` turns on a stderr handler for it.

Log lines name the method, URL path, status, request id, attempt and retry waits; they never
contain headers, so the API key cannot leak through them.
"""

from __future__ import annotations

import logging
import os

from ventryx._constants import LOG_ENV

__all__ = ["logger", "setup_from_env"]

logger = logging.getLogger("ventryx")
_configured = False


def setup_from_env() -> None:
    """Attach a stderr handler at the level named by ``VENTRYX_LOG`` (once per process)."""
    global _configured  # noqa: PLW0603 - configured once per process, like logging itself
    if _configured:
        return
    _configured = True
    level = {"debug": logging.DEBUG, "info": logging.INFO}.get(
        os.environ.get(LOG_ENV, "").strip().lower()
    )
    if level is None:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("[%(asctime)s %(levelname)s %(name)s] %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(level)
