"""Property: arbitrary workflows and event data survive the real server and back.

``tests/test_models.py`` checks the converter alone; this drives create -> retrieve -> update
with the retrieved steps -> retrieve over real HTTP (async and sync clients). The Retry-After
parser's property tests live in ``tests/test_retry.py``.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ventryx._converter import get_converter

pytestmark = [pytest.mark.reliability, pytest.mark.anyio, pytest.mark.timeout(120)]

TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)  # no lone surrogates
NAME = TEXT.filter(lambda s: s.strip() != "")
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=10,
)
STEPS = st.lists(
    st.builds(
        lambda kind, fields: {**fields, "type": kind},
        NAME,
        st.dictionaries(TEXT.filter(lambda k: k != "type"), JSON, max_size=4),
    ),
    max_size=4,
)
TRIGGERS = st.builds(
    lambda event, extra: {**extra, "event": event},
    NAME,
    st.dictionaries(TEXT.filter(lambda k: k != "event"), JSON, max_size=3),
)
PROPERTY = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def _plain(steps: Any) -> list[Any]:
    return [get_converter().unstructure(step) for step in steps]


@PROPERTY
@given(name=NAME, trigger=TRIGGERS, steps=STEPS)
async def test_workflows_round_trip_through_the_server(
    make_client, name: str, trigger: dict[str, Any], steps: list[dict[str, Any]]
) -> None:
    client = make_client()
    with anyio.fail_after(20):
        created = await client.workflows.create(name=name, trigger=trigger, steps=steps)
        fetched = await client.workflows.retrieve(created.id)
        assert fetched == created
        assert fetched.name == name
        assert _plain(fetched.steps) == steps
        assert {"event": fetched.trigger.event, **fetched.trigger.extra} == trigger
        await client.workflows.update(fetched.id, trigger=fetched.trigger, steps=fetched.steps)
        again = await client.workflows.retrieve(created.id)
    assert again.steps == fetched.steps
    assert again.trigger == fetched.trigger
    assert again.updated_at is not None


@PROPERTY
@given(kind=NAME, data=st.dictionaries(TEXT, JSON, max_size=5))
async def test_event_data_round_trips_through_the_server(
    make_client, kind: str, data: dict[str, Any]
) -> None:
    client = make_client()
    with anyio.fail_after(20):
        event = await client.events.emit(type=kind, data=data)
        fetched = await client.events.retrieve(event.id)
    assert fetched == event
    assert dict(fetched.data) == data
    assert fetched.type == kind
