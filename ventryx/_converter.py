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
    "constructor",
    "fast_structure",
    "format_datetime",
    "get_converter",
    "make_converter",
    "parse_datetime",
    "raw_response",
    "structure",
    "structure_answer",
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


def _known_fields(cls: type[Any]) -> frozenset[str]:
    """The JSON fields an open model reads itself (every field but ``extra``, ``raw_response``)."""
    return frozenset({a.name for a in attrs.fields(cls)} - {"extra", "raw_response"})


def _extra(value: dict[str, Any], known: frozenset[str]) -> dict[str, Any]:
    """The fields of ``value`` a model does not know (most answers have none)."""
    keys = value.keys()
    if keys <= known:  # a set operation in C
        return {}
    if known <= keys:  # every known field there: a C copy less those (the same order)
        extra = value.copy()
        for name in known:
            del extra[name]
        return extra
    return {k: v for k, v in value.items() if k not in known}


def _register_open_model(converter: cattrs.Converter, cls: type[Any]) -> None:
    """Hooks for a model whose unknown fields go to and come back from ``extra``."""
    from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override  # noqa: PLC0415

    has_raw = "raw_response" in {a.name for a in attrs.fields(cls)}
    known = _known_fields(cls)
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
        extra = _extra(fields, known)
        if extra:
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


def _builds_plainly(cls: type[Any], names: tuple[str, ...]) -> bool:
    """Whether ``cls(**values)`` does nothing but set each field's slot: no validator,
    converter, factory run for a given value, pre/post-init hook, or ``__init__`` of its own."""
    fields = attrs.fields(cls)
    return (
        tuple(a.name for a in fields) == names
        and all(
            a.init and a.validator is None and a.converter is None and a.alias == a.name
            for a in fields
        )
        and "__slots__" in cls.__dict__
        and not hasattr(cls, "__attrs_pre_init__")
        and not hasattr(cls, "__attrs_post_init__")
        and _attrs_made(cls.__init__)
    )


def _attrs_made(function: object) -> bool:
    code = getattr(function, "__code__", None)
    return getattr(code, "co_filename", "").startswith("<attrs generated")


def _slot_setter(cls: type[Any], name: str) -> Any:
    for klass in cls.__mro__:
        if name in klass.__dict__:
            return klass.__dict__[name].__set__
    raise AttributeError(name)  # pragma: no cover - every attrs slot has its descriptor


def constructor(cls: type[_T], *names: str) -> Callable[..., _T]:
    """A function taking every field of ``cls`` positionally, in ``names`` order, that returns
    what ``cls(name=value, ...)`` would, for a slotted frozen attrs model whose ``__init__``
    only sets its fields: it sets the slots directly, without the keyword matching and the
    frozen ``__setattr__`` detour of attrs' ``__init__`` (about half the cost). ``names`` must
    be the model's fields in attrs' order; for any other class the function calls ``cls``.
    """
    if not _builds_plainly(cls, names):
        return lambda *values: cls(**dict(zip(names, values, strict=True)))
    namespace: dict[str, Any] = {"_new": object.__new__, "_cls": cls}
    lines = [f"def make({', '.join(names)}):", "    obj = _new(_cls)"]
    for index, name in enumerate(names):
        namespace[f"_set{index}"] = _slot_setter(cls, name)
        lines.append(f"    _set{index}(obj, {name})")
    lines.append("    return obj")
    exec("\n".join(lines), namespace)  # noqa: S102 - fixed text from the field names, as attrs does
    made: Callable[..., _T] = namespace["make"]
    return made


_WORKFLOW = constructor(
    Workflow,
    "id",
    "name",
    "trigger",
    "steps",
    "created_at",
    "updated_at",
    "extra",
    "raw_response",
)
_EVENT = constructor(Event, "id", "type", "data", "created_at", "extra", "raw_response")
_DELETED = constructor(DeletedWorkflow, "id", "deleted", "extra", "raw_response")
_TRIGGER = constructor(Trigger, "event", "extra")
_STEP = constructor(Step, "type", "fields")
_META = constructor(PageMeta, "total", "page", "per_page", "extra")
raw_response = constructor(RawResponse, "http_response", "attempts")

# The fast paths of the models answers carry. Each builds exactly what the converter's hook
# would, for a value of the usual shape (a dict with every field of its exact JSON type), and
# returns ``None`` for anything else: the converter's hook then decides, and its errors name
# every field that does not fit. None of them collects errors or attaches notes on the way.
# Those of the models with a ``raw_response`` take it too (``None`` for an item of a page).
_WORKFLOW_FIELDS = _known_fields(Workflow)
_EVENT_FIELDS = _known_fields(Event)
_TRIGGER_FIELDS = _known_fields(Trigger)
_META_FIELDS = _known_fields(PageMeta)
_DELETED_FIELDS = _known_fields(DeletedWorkflow)


def _fast_datetime(value: Any) -> datetime | None:
    if type(value) is not str:
        return None
    try:
        # 2026-01-01T00:00:00Z, the API's own form: its separators at 4, 7, 10, 13, 16, 19.
        if len(value) == 20 and value[4::3] == "--T::Z" and _ISO_Z:
            # Where the pattern wants a digit, fromisoformat() wants an ASCII one.
            return datetime.fromisoformat(value)
        return parse_datetime(value)
    except ValueError:
        return None


def _fast_trigger(value: Any) -> Trigger | None:
    if type(value) is not dict:
        return None
    obj: dict[str, Any] = value  # pyright: ignore[reportUnknownVariableType]
    event = obj.get("event")
    if type(event) is not str:
        return None
    return _TRIGGER(event, _extra(obj, _TRIGGER_FIELDS))


def _fast_steps(value: Any) -> tuple[Step, ...] | None:
    if type(value) is not list:
        return None
    items: list[Any] = value  # pyright: ignore[reportUnknownVariableType]
    steps: list[Step] = []
    for item in items:
        if type(item) is not dict:
            return None
        fields: dict[str, Any] = item  # pyright: ignore[reportUnknownVariableType]
        step_type = fields.get("type")
        if type(step_type) is not str:
            return None
        rest = fields.copy()  # every field but the type, in order
        del rest["type"]
        steps.append(_STEP(step_type, rest))
    return tuple(steps)


def _fast_workflow(value: Any, raw: RawResponse | None = None) -> Workflow | None:
    if type(value) is not dict:
        return None
    obj: dict[str, Any] = value  # pyright: ignore[reportUnknownVariableType]
    get = obj.get
    wid, name = get("id"), get("name")
    if type(wid) is not str or type(name) is not str:
        return None
    trigger = _fast_trigger(get("trigger"))
    steps = _fast_steps(get("steps"))
    created = _fast_datetime(get("created_at"))
    if trigger is None or steps is None or created is None:
        return None
    updated = get("updated_at")  # absent and null alike: None
    if updated is not None:
        updated = _fast_datetime(updated)
        if updated is None:
            return None
    return _WORKFLOW(
        wid, name, trigger, steps, created, updated, _extra(obj, _WORKFLOW_FIELDS), raw
    )


def _fast_event(value: Any, raw: RawResponse | None = None) -> Event | None:
    if type(value) is not dict:
        return None
    obj: dict[str, Any] = value  # pyright: ignore[reportUnknownVariableType]
    get = obj.get
    eid, event_type, data = get("id"), get("type"), get("data")
    if type(eid) is not str or type(event_type) is not str or type(data) is not dict:
        return None
    created = _fast_datetime(get("created_at"))
    if created is None:
        return None
    payload: dict[str, Any] = data  # pyright: ignore[reportUnknownVariableType]
    return _EVENT(eid, event_type, payload, created, _extra(obj, _EVENT_FIELDS), raw)


def _fast_meta(value: Any) -> PageMeta | None:
    if type(value) is not dict:
        return None
    obj: dict[str, Any] = value  # pyright: ignore[reportUnknownVariableType]
    total, page, per_page = obj.get("total"), obj.get("page"), obj.get("per_page")
    if type(total) is int and type(page) is int and type(per_page) is int:  # never a bool
        return _META(total, page, per_page, _extra(obj, _META_FIELDS))
    return None


def _fast_deleted(value: Any, raw: RawResponse | None = None) -> DeletedWorkflow | None:
    if type(value) is not dict:
        return None
    obj: dict[str, Any] = value  # pyright: ignore[reportUnknownVariableType]
    wid, deleted = obj.get("id"), obj.get("deleted")
    if type(wid) is not str or type(deleted) is not bool:
        return None
    return _DELETED(wid, deleted, _extra(obj, _DELETED_FIELDS), raw)


_FAST: dict[Any, Callable[[Any], Any]] = {
    Workflow: _fast_workflow,
    Event: _fast_event,
    PageMeta: _fast_meta,
    DeletedWorkflow: _fast_deleted,
    Trigger: _fast_trigger,
}
# The models with a ``raw_response``, built with it.
_FAST_RAW: dict[Any, Callable[[Any, RawResponse], Any]] = {
    Workflow: _fast_workflow,
    Event: _fast_event,
    DeletedWorkflow: _fast_deleted,
}
_HOOKS: dict[Any, Callable[[Any, Any], Any]] = {}  # the converter's hook of each class


def structure(value: Any, cls: type[_T], *, path: str = "data") -> _T:
    """``value`` as a ``cls``, or ``ConversionError`` naming every field that does not fit."""
    fast = _FAST.get(cls)
    if fast is not None:
        done: _T | None = fast(value)
        if done is not None:
            return done
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


def fast_structure(cls: type[_T]) -> Callable[[Any], _T | None] | None:
    """The fast path of ``cls`` (``None`` for a value of another shape), if it has one."""
    return _FAST.get(cls)


def structure_answer(value: Any, cls: type[_T], raw: RawResponse, *, path: str = "data") -> _T:
    """``structure(value, cls)`` with ``raw_response`` set to ``raw`` where the model has it."""
    fast = _FAST_RAW.get(cls)
    if fast is not None:
        done: _T | None = fast(value, raw)
        if done is not None:
            return done
    return with_raw_response(structure(value, cls, path=path), raw)


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
