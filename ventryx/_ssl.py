"""One SSL context for every client the SDK creates, built once and shared.

Building a context loads a CA bundle: about 20 ms, which ``httpx.AsyncClient()`` pays on every
construction when it builds its own. An ``SSLContext`` is safe to share between clients,
threads and transports (httpx and aiohttp only read it; httpcore sets the same ALPN list on it
for HTTP/1.1 every time). The cache is keyed by ``verify`` and by ``SSL_CERT_FILE`` /
``SSL_CERT_DIR`` as they are when a client is made, so changing them takes effect for the next
client, as with httpx's own.
"""

from __future__ import annotations

import os
import ssl
import threading

__all__ = ["VerifyTypes", "ssl_context"]

VerifyTypes = ssl.SSLContext | str | bool
"""What ``verify`` may be: a context (used as is), a CA file or directory, or True/False."""

_lock = threading.Lock()
_contexts: dict[tuple[str | bool, str | None, str | None], ssl.SSLContext] = {}


def ssl_context(verify: VerifyTypes = True) -> ssl.SSLContext:
    """The shared context for ``verify`` (an ``SSLContext`` is returned unchanged)."""
    if isinstance(verify, ssl.SSLContext):
        return verify
    key = (verify, os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))
    context = _contexts.get(key)
    if context is None:
        with _lock:  # two threads making their first clients build one context, not two
            context = _contexts.get(key)
            if context is None:
                context = _contexts[key] = _build(verify)
    return context


def _build(verify: str | bool) -> ssl.SSLContext:
    if isinstance(verify, str):  # a CA bundle or a directory of hashed certificates
        if os.path.isdir(verify):
            return ssl.create_default_context(capath=verify)
        return ssl.create_default_context(cafile=verify)
    import httpx  # noqa: PLC0415 - already loaded by any client; kept off this module's import

    # httpx's own recipe: SSL_CERT_FILE, then SSL_CERT_DIR, then certifi; False: no checks.
    return httpx.create_ssl_context(verify=verify, trust_env=True)
