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


# C0 and C1 controls, DEL, and the bidirectional overrides that reorder a terminal line.
_UNSAFE = dict.fromkeys(
    [*range(0x00, 0x20), *range(0x7F, 0xA0), *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
)


def escape_control(text: str) -> str:
    r"""``text`` safe for one log or terminal line: controls shown as ``\n``, ``\x1b``, ``\u202e``.

    For any text that came from the server (error codes, messages, request ids) before it is
    logged or printed; printable text, non-ASCII letters included, is unchanged.
    """
    if text.isprintable() and not any(ord(ch) in _UNSAFE for ch in text):
        return text
    out: list[str] = []
    for ch in text:
        if ord(ch) in _UNSAFE or (not ch.isprintable() and ch != " "):
            out.append(repr(ch)[1:-1] if ch not in "'\"" else ch)
        else:
            out.append(ch)
    return "".join(out)
