"""The converter: JSON to models and back, losing nothing the API sent."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import attrs
import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ventryx import DeletedWorkflow, Event, PageMeta, RawResponse, Step, Trigger, Workflow
from ventryx._converter import (
    _FAST,  # pyright: ignore[reportPrivateUsage]
    ConversionError,
    constructor,
    format_datetime,
    get_converter,
    parse_datetime,
    structure,
    structure_answer,
)

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
KNOWN_WORKFLOW = {"id", "name", "trigger", "steps", "created_at", "updated_at"}
NAMES = st.text(min_size=1, max_size=10)
STAMP = st.datetimes(
    min_value=datetime(1970, 1, 2), max_value=datetime(2200, 1, 1), timezones=st.just(timezone.utc)
).map(format_datetime)


@st.composite
def workflows(draw: st.DrawFn) -> dict[str, Any]:
    steps = draw(
        st.lists(
            st.dictionaries(NAMES.filter(lambda k: k != "type"), JSON, max_size=3).map(
                lambda fields: fields
            ),
            max_size=4,
        )
    )
    body: dict[str, Any] = {
        "id": "wf_" + draw(st.text("0123456789abcdef", min_size=1, max_size=8)),
        "name": draw(NAMES),
        "trigger": {
            "event": draw(NAMES),
            **draw(st.dictionaries(NAMES.filter(lambda k: k != "event"), JSON, max_size=2)),
        },
        "steps": [{"type": draw(NAMES), **fields} for fields in steps],
        "created_at": draw(STAMP),
    }
    if draw(st.booleans()):
        body["updated_at"] = draw(STAMP)
    body.update(
        draw(st.dictionaries(NAMES.filter(lambda k: k not in KNOWN_WORKFLOW), JSON, max_size=3))
    )
    return body


@settings(max_examples=200, deadline=None)
@given(workflows())
def test_any_workflow_round_trips(body: dict[str, Any]) -> None:
    converter = get_converter()
    workflow = converter.structure(body, Workflow)
    assert converter.unstructure(workflow) == body
    assert converter.structure(converter.unstructure(workflow), Workflow) == workflow


def test_step_fields_and_accessors() -> None:
    step = get_converter().structure({"type": "send_notification", "channel": "email"}, Step)
    assert step == Step("send_notification", {"channel": "email"})
    assert step["channel"] == "email"
    assert step.get("template") is None
    with pytest.raises(KeyError):
        step["template"]


def test_a_step_field_named_type_cannot_override_the_type() -> None:
    data = get_converter().unstructure(Step("a", {"type": "b", "x": 1}))
    assert data == {"type": "a", "x": 1}


def test_unknown_field_literally_named_extra_is_kept() -> None:
    body = {"id": "e", "type": "t", "data": {}, "created_at": "2026-01-01T00:00:00Z", "extra": 1}
    event = get_converter().structure(body, Event)
    assert event.extra == {"extra": 1}
    assert get_converter().unstructure(event) == body


def test_trigger_extra_round_trip() -> None:
    trigger = get_converter().structure({"event": "e", "filter": {"a": 1}}, Trigger)
    assert trigger == Trigger(event="e", extra={"filter": {"a": 1}})


@given(
    st.datetimes(
        timezones=st.sampled_from([timezone.utc, timezone(timedelta(hours=-7, minutes=-30))])
    )
)
def test_datetime_round_trip(value: datetime) -> None:
    assert parse_datetime(format_datetime(value)) == value


@pytest.mark.parametrize(
    "text", ["", "2026-01-01", "2026-13-01T00:00:00Z", "yesterday", "2026-01-01T00:00:00+2"]
)
def test_bad_timestamps(text: str) -> None:
    with pytest.raises(ValueError):
        parse_datetime(text)


@st.composite
def answers(draw: st.DrawFn) -> tuple[type[Any], Any]:
    """A model and a value for it: usually of the API's shape, often with a field gone wrong."""
    stamp = draw(
        STAMP | st.sampled_from(["2026-01-01", "2026-02-30T00:00:00Z", "2026-01-01T00:00:00"])
    )
    count = st.integers(-1, 5) | st.booleans() | st.floats(0, 5) | st.none()
    kind, body = draw(
        st.sampled_from(
            [
                (Workflow, None),
                (Event, {"id": "ev_1", "type": "t", "data": {"a": [1]}, "created_at": stamp}),
                (PageMeta, {"total": draw(count), "page": 1, "per_page": draw(count)}),
                (
                    DeletedWorkflow,
                    {"id": "wf_1", "deleted": draw(st.booleans() | st.integers(0, 1))},
                ),
                (Trigger, {"event": draw(NAMES | st.integers())}),
            ]
        )
    )
    if body is None:
        body = draw(workflows())
    body = dict(body)
    for name in draw(st.lists(st.sampled_from(sorted(body)), max_size=2)):
        if draw(st.booleans()):
            body.pop(name, None)
        else:
            body[name] = draw(JSON | st.just(stamp) | st.lists(st.just({"type": 1})))
    return kind, draw(st.just(body) | JSON)


def _outcome(value: Any, kind: type[Any]) -> tuple[str, str]:
    try:
        decoded = structure(value, kind)
    except ConversionError as exc:
        return "error", str(exc)
    return type(decoded).__name__, repr(decoded)


@settings(max_examples=400, deadline=None)
@given(answers())
def test_fast_decoders_build_what_the_converter_builds(answer: tuple[type[Any], Any]) -> None:
    """The hand-written decoders of the models answers carry agree with the cattrs hooks."""
    kind, value = answer
    fast = _outcome(value, kind)
    saved = dict(_FAST)
    _FAST.clear()  # the converter's hook alone
    try:
        slow = _outcome(value, kind)
    finally:
        _FAST.update(saved)
    assert fast == slow


def test_a_field_of_the_wrong_type_is_named_in_the_error() -> None:
    body = {"id": "ev_1", "type": 7, "data": {}, "created_at": "2026-01-01T00:00:00Z"}
    with pytest.raises(ConversionError, match=r"invalid value for type, expected str @ data\.type"):
        structure(body, Event)


def _slots(obj: object) -> dict[str, Any]:
    return {a.name: getattr(obj, a.name) for a in attrs.fields(type(obj))}


_STAMP = datetime(2026, 1, 1, tzinfo=timezone.utc)
_RAW = RawResponse(http_response=httpx.Response(200), attempts=2)
_MODELS: list[tuple[type[Any], dict[str, Any]]] = [
    (
        Workflow,
        {
            "id": "wf_1",
            "name": "n",
            "trigger": Trigger(event="e"),
            "steps": (Step("wait", {"for": 1}),),
            "created_at": _STAMP,
            "updated_at": None,
            "extra": {"x": 1},
            "raw_response": _RAW,
        },
    ),
    (
        Event,
        {
            "id": "ev_1",
            "type": "t",
            "data": {},
            "created_at": _STAMP,
            "extra": {},
            "raw_response": None,
        },
    ),
    (DeletedWorkflow, {"id": "wf_1", "deleted": True, "extra": {}, "raw_response": _RAW}),
    (Trigger, {"event": "e", "extra": {"type": "event"}}),
    (Step, {"type": "wait", "fields": {"for": 1}}),
    (PageMeta, {"total": 1, "page": 1, "per_page": 5, "extra": {}}),
    (RawResponse, {"http_response": _RAW.http_response, "attempts": 3}),
]


@pytest.mark.parametrize(("cls", "values"), _MODELS, ids=lambda v: getattr(v, "__name__", ""))
def test_the_fast_constructors_build_what_the_models_build(
    cls: type[Any], values: dict[str, Any]
) -> None:
    """``constructor()`` sets the slots directly; the object is the one ``cls(...)`` makes."""
    make = constructor(cls, *values)
    made, expected = make(*values.values()), cls(**values)
    assert type(made) is cls
    assert _slots(made) == _slots(expected) == values
    assert made == expected
    assert repr(made) == repr(expected)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        made.extra = {}  # frozen like any other instance
    assert make.__name__ == "make"  # not the fallback that calls the class


def test_a_constructor_calls_the_class_when_its_init_does_more_than_set_slots() -> None:
    seen: list[int] = []

    @attrs.frozen
    class Checked:
        value: int = attrs.field(validator=lambda _, __, v: seen.append(v))

    @attrs.frozen
    class Hooked:
        value: int

        def __attrs_post_init__(self) -> None:
            seen.append(-self.value)

    assert constructor(Checked, "value")(1) == Checked(1)
    assert constructor(Hooked, "value")(2) == Hooked(2)
    assert seen == [1, 1, -2, -2]  # the validator and the hook ran for both
    with pytest.raises(TypeError):  # the names must be the fields, in attrs' order
        constructor(Checked, "other")(1)


@pytest.mark.parametrize(
    "value",
    [
        {"id": "ev_1", "type": "t", "data": {}, "created_at": "2026-01-01T00:00:00Z"},
        # Not of the usual shape (an offset): decoded by the converter's hook, raw set after.
        {"id": "ev_1", "type": "t", "data": {}, "created_at": "2026-01-01T00:00:00+02:00"},
    ],
)
def test_structure_answer_sets_the_raw_response(value: dict[str, Any]) -> None:
    event = structure_answer(value, Event, _RAW)
    assert event.raw_response is _RAW
    assert event == structure(value, Event)  # raw_response is not compared
    page_meta = structure_answer({"total": 1, "page": 1, "per_page": 1}, PageMeta, _RAW)
    assert not hasattr(page_meta, "raw_response")
