"""Small shared types: the NOT_GIVEN sentinel and the accepted forms of common arguments."""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from typing import Any, Final, Literal, TypeAlias, TypeVar, cast

import httpx


class NotGiven(enum.Enum):
    """Marks an argument the caller did not pass, where ``None`` has a meaning of its own."""

    NOT_GIVEN = "NOT_GIVEN"

    def __repr__(self) -> str:
        return "NOT_GIVEN"

    def __bool__(self) -> Literal[False]:
        return False


NOT_GIVEN: Final = NotGiven.NOT_GIVEN

JSONObject: TypeAlias = dict[str, Any]
_I = TypeVar("_I", bound="Immutable")


class Immutable:  # noqa: PLW1641 - __eq__ alone leaves it unhashable, as meant
    """Base of the plain slotted value classes: fields are set once, by ``_freeze``.

    They stand in for attrs' frozen classes where ``import ventryx`` must not load attrs.
    Equal when of the same class with equal fields; unhashable unless a subclass defines
    ``__hash__`` (over ``_fields()``).
    """

    __slots__ = ()

    def _freeze(self, values: Mapping[str, object]) -> None:
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def _fields(self) -> tuple[Any, ...]:
        slots: tuple[str, ...] = self.__slots__
        return tuple(getattr(self, name) for name in slots)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, type(self)):
            return NotImplemented
        return self._fields() == other._fields()

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable: cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable: cannot delete {name!r}")

    def __reduce__(self) -> tuple[Callable[..., object], tuple[type[Immutable], dict[str, object]]]:
        # copy, deepcopy and pickle: the default would set the slots one by one, and be refused.
        return (_thaw, (type(self), dict(zip(self.__slots__, self._fields(), strict=True))))


def _thaw(cls: type[_I], fields: Mapping[str, object]) -> _I:
    value = cls.__new__(cls)
    value._freeze(fields)  # pyright: ignore[reportPrivateUsage]  # the class's own unpickler
    return value


def as_object(value: object) -> JSONObject | None:
    """``value`` typed as a JSON object when it is a dict, else ``None``."""
    return cast(JSONObject, value) if isinstance(value, dict) else None


TimeoutTypes: TypeAlias = float | httpx.Timeout | None
Headers: TypeAlias = Mapping[str, str]
Query: TypeAlias = Mapping[str, str | int | float | bool]
