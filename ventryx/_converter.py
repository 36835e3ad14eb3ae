"""The one cattrs converter between JSON values and the models, built by ``make_converter()``.

It is strict where the API is specific (a ``str`` field never turns ``123`` into ``"123"``) and
lenient where the API is open: unknown fields land in ``extra``, unknown step types are steps.
"""

from __future__ import annotations

import functools
import re
import sys
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

from ventryx._types import as_object
from ventryx.models import DeletedWorkflow, Event, PageMeta, RawResponse, Step, Trigger, Workflow

if TYPE_CHECKING:
    import cattrs

__all__ = [
    "ConversionError",
    "format_datetime",
    "get_converter",
    "make_converter",
    "parse_datetime",
    "structure",
    "with_raw_response",
]


class ConversionError(ValueError):
    """A JSON value does not fit a model; the message says where (``data.id: ...``)."""


_T = TypeVar("_T")

_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?"
    r"(?:([Zz])|([+-])(\d{2}):?(\d{2}))?"
)


_ISO_Z = sys.version_info >= (3, 11)  # datetime.fromisoformat() reads "Z" and any fraction


def parse_datetime(value: str) -> datetime:
    """An RFC 3339 timestamp as an aware datetime (a missing offset is read as UTC)."""
    m = _RFC3339.fullmatch(value)
    if m is None:
        raise ValueError(f"not an RFC 3339 timestamp: {value!r}")
    if _ISO_Z:  # 3.11+: the C parser reads every common form of what the pattern accepts
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            pass  # "t"/"z", or a second of 60: the fields below say what is wrong
        else:
            return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=timezone.utc)
    year, month, day, hour, minute, second = (int(g) for g in m.group(1, 2, 3, 4, 5, 6))
    frac = m.group(7) or ""
    micro = int((frac + "000000")[:6]) if frac else 0
    tz = timezone.utc
    if m.group(9):
        offset = timedelta(hours=int(m.group(10)), minutes=int(m.group(11)))
        tz = timezone(-offset if m.group(9) == "-" else offset)
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=tz)


def format_datetime(value: datetime) -> str:
    """An aware datetime as RFC 3339, UTC written as ``Z``."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _strict(kind: type[_T], name: str) -> Callable[[Any, Any], _T]:
    def structure(value: Any, _: Any) -> _T:
        # bool is an int subclass; a JSON true is never a count.
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise TypeError(f"expected {name}, got {type(value).__name__}")
        return value

    return structure


def _structure_float(value: Any, _: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"expected a number, got {type(value).__name__}")
    return float(value)


def _structure_object(value: Any, _: Any) -> Mapping[str, Any]:
    obj = as_object(value)
    if obj is None:
        raise TypeError(f"expected an object, got {type(value).__name__}")
    return obj


def _structure_datetime(value: Any, _: Any) -> datetime:
    if not isinstance(value, str):
        raise TypeError(f"expected an RFC 3339 string, got {type(value).__name__}")
    return parse_datetime(value)


def _structure_step(value: Any, _: Any) -> Step:
    obj = as_object(value)
    if obj is None:
        raise TypeError(f"expected a step object, got {type(value).__name__}")
    step_type = obj.get("type")
    if not isinstance(step_type, str):
        raise TypeError("a step needs a string 'type'")
    return Step(step_type, {k: v for k, v in obj.items() if k != "type"})


def _unstructure_step(step: Step) -> dict[str, Any]:
    data: dict[str, Any] = {"type": step.type}
    data.update(step.fields)
    data["type"] = step.type
    return data


def _register_open_model(converter: cattrs.Converter, cls: type[Any]) -> None:
    """Hooks for a model whose unknown fields go to and come back from ``extra``."""
    from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override  # noqa: PLC0415

    names = {a.name for a in attrs.fields(cls)}
    has_raw = "raw_response" in names
    known = frozenset(names - {"extra", "raw_response"})
    omit = {"extra": override(omit=True)}
    if has_raw:
        omit["raw_response"] = override(omit=True)
    base_structure = make_dict_structure_fn(cls, converter, **omit)  # type: ignore[arg-type]
    base_unstructure = make_dict_unstructure_fn(cls, converter, **omit)  # type: ignore[arg-type]

    def structure(value: Any, _: Any) -> Any:
        if not isinstance(value, dict):
            raise TypeError(f"expected a {cls.__name__} object, got {type(value).__name__}")
        fields: dict[str, Any] = value  # pyright: ignore[reportUnknownVariableType]
        obj = base_structure(fields, cls)
        if not fields.keys() <= known:  # a set operation in C: most answers have no extra
            extra = {k: v for k, v in fields.items() if k not in known}
            # The instance is new and seen by no one yet: set, not evolve (a copy).
            object.__setattr__(obj, "extra", extra)
        return obj

    def unstructure(obj: Any) -> dict[str, Any]:
        data: dict[str, Any] = base_unstructure(obj)
        if data.get("updated_at", 0) is None:
            del data["updated_at"]
        return {**obj.extra, **data} if obj.extra else data

    converter.register_structure_hook(cls, structure)
    converter.register_unstructure_hook(cls, unstructure)


def make_converter() -> cattrs.Converter:
    """A new converter configured for the Ventryx models."""
    # cattrs is imported here, on first use, so that `import ventryx` stays cheap.
    import cattrs  # noqa: PLC0415

    converter = cattrs.Converter(detailed_validation=True)
    configure_converter(converter)
    return converter


def configure_converter(converter: cattrs.Converter) -> None:
    """Register the Ventryx hooks on ``converter``."""
    converter.register_structure_hook(str, _strict(str, "a string"))
    converter.register_structure_hook(int, _strict(int, "an integer"))
    converter.register_structure_hook(bool, _strict(bool, "a boolean"))
    converter.register_structure_hook(float, _structure_float)
    converter.register_structure_hook_func(
        lambda t: t == Mapping[str, Any],
        _structure_object,
    )
    converter.register_structure_hook(datetime, _structure_datetime)
    converter.register_unstructure_hook(datetime, format_datetime)
    converter.register_structure_hook(Step, _structure_step)
    converter.register_unstructure_hook(Step, _unstructure_step)
    for cls in (Trigger, Workflow, Event, DeletedWorkflow, PageMeta):
        _register_open_model(converter, cls)


@functools.cache
def get_converter() -> cattrs.Converter:
    """The shared converter, built on first use so that ``import ventryx`` stays cheap."""
    return make_converter()


_HOOKS: dict[Any, Callable[[Any, Any], Any]] = {}  # the converter's hook of each class


def structure(value: Any, cls: type[_T], *, path: str = "data") -> _T:
    """``value`` as a ``cls``, or ``ConversionError`` naming every field that does not fit."""
    hook = _HOOKS.get(cls)
    if hook is None:
        hook = _HOOKS[cls] = get_converter().get_structure_hook(cls)
    try:
        result: _T = hook(value, cls)
    except Exception as exc:
        import cattrs  # noqa: PLC0415 - loaded already by get_converter()

        if isinstance(exc, cattrs.BaseValidationError):
            raise ConversionError("; ".join(cattrs.transform_error(exc, path=path))) from None
        if isinstance(exc, (TypeError, ValueError)):
            raise ConversionError(f"{path}: {exc}") from None
        raise
    return result


_CARRIES_RAW: dict[type[object], bool] = {}  # model class -> has a ``raw_response`` field


def with_raw_response(value: _T, raw: RawResponse) -> _T:
    """``value`` (just structured) with ``raw_response`` set, when its model has that field."""
    kind: type[object] = type(value)
    carries = _CARRIES_RAW.get(kind)
    if carries is None:
        carries = attrs.has(kind) and "raw_response" in attrs.fields_dict(kind)
        _CARRIES_RAW[kind] = carries
    if carries:  # a model structured for this answer, seen by no one yet: set, not copy
        object.__setattr__(value, "raw_response", raw)
    return value
