"""``models``: ``ventryx.models`` as the resources read it, imported on the first read.

``import ventryx`` does not load the models (nor attrs and cattrs behind them); a method that
needs one used to import it in its body, and an import statement costs a microsecond on every
call even when the module is loaded. Each name read here is looked up once, then kept as a
plain attribute. To the type checkers it is the module itself.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = ["models"]


class _OnFirstUse:
    """A module's names, each looked up on its first read and kept."""

    def __init__(self, module: str) -> None:
        self.__module = module

    def __getattr__(self, name: str) -> Any:  # only for a name not kept yet
        value = getattr(importlib.import_module(self.__module), name)
        setattr(self, name, value)
        return value


if TYPE_CHECKING:
    from ventryx import models
else:
    models = _OnFirstUse("ventryx.models")
