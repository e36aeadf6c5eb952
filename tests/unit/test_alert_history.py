"""The alert readers serve a CloudEvent id once: what they remember, and for how long; and
history pages with cursors: paging through a window serves what one large request does."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from aiokafka import ConsumerRecord

from streams.alert_history import (
    _RESUME_LOOKBACK as LOOKBACK,
)
from streams.alert_history import (
    AlertPage,
    OwnedAlert,
    ServedIds,
    decode_alert_cursor,
    encode_alert_cursor,
)
from streams.cursors import BadCursor, encode_cursor
from streams.web.alerts import cursor_offset
from streams.web.http import HttpError


def _alert(alert_id: Any) -> dict[str, Any]:
    return {"id": alert_id, "data": {"owner": "alice"}}


def test_a_copy_of_an_alert_already_served_is_dropped() -> None:
    served = ServedIds(100)
    stream = ["s:st-1:new_story", "s:st-2:new_story", "s:st-1:new_story", "s:st-1:growth:10"]
    kept = [alert_id for alert_id in stream if served.first(_alert(alert_id))]
    assert kept == ["s:st-1:new_story", "s:st-2:new_story", "s:st-1:growth:10"]


def test_memory_is_bounded_and_forgets_the_oldest_first() -> None:
    served = ServedIds(3)
    for alert_id in ("a", "b", "c", "d"):
        assert served.first(_alert(alert_id))
    assert len(served) == 3
    assert not served.first(_alert("d"))  # still remembered
    assert served.first(_alert("a"))  # forgotten: the oldest went first


def test_an_alert_without_an_id_is_never_taken_for_a_copy() -> None:
    served = ServedIds(10)
    assert served.first({"data": {}}) and served.first({"data": {}})
    assert served.first(_alert(None)) and served.first(_alert(7))
    assert len(served) == 0


# --- history pages and their cursors ----------------------------------------------------


def _record(offset: int, timestamp: int, value: dict[str, Any] | None) -> ConsumerRecord:
    raw = b"not json" if value is None else json.dumps(value).encode()
    return ConsumerRecord("alerts", 0, offset, timestamp, 0, None, raw, None, 0, len(raw), ())


def _topic(seed: int, n: int = 60) -> list[ConsumerRecord]:
    """Two owners' alerts (some not JSON), a few re-sent a few records later, as the topic
    holds them: offsets 0..n-1, times ascending with ties."""
    rng = random.Random(seed)
    values: list[dict[str, Any] | None] = []
    for i in range(n):
        roll = rng.random()
        if roll < 0.1:
            values.append(None)
        elif roll < 0.3 and values:
            values.append(rng.choice([v for v in values[-6:] if v is not None] or [None]))
        else:
            owner = rng.choice(["alice", "bob"])
            values.append({"id": f"s:st-{i}:new_story", "data": {"owner": owner}})
    times = sorted(rng.randrange(1_000, 1_000 + n // 2) for _ in range(n))
    return [_record(i, t, v) for i, (t, v) in enumerate(zip(times, values, strict=True))]


def _alice(alert: dict[str, Any]) -> bool:
    return bool(alert["data"]["owner"] == "alice")


def _read(
    topic: list[ConsumerRecord], first: int, until_ms: int | None, limit: int, after: int | None
) -> tuple[list[OwnedAlert], int | None]:
    """What AlertReader.history does with a topic (offset = index): the ids of the
    lookback before the resume point remembered, then one page."""
    start = first if after is None else after
    served = ServedIds(limit + LOOKBACK)
    for record in topic[max(first, start - LOOKBACK) : start]:
        alert = json.loads(record.value) if record.value != b"not json" else None
        if alert is not None and _alice(alert):
            served.first(alert)
    page = AlertPage(until_ms, limit, _alice, served, start)
    for record in topic[start:]:
        if not page.take(record):
            break
    return page.alerts, page.next_offset(len(topic))


@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize("limit", [1, 2, 3, 7])
def test_paging_with_cursors_serves_what_one_large_request_does(seed: int, limit: int) -> None:
    topic = _topic(seed)
    first = seed % 5
    until_ms = None if seed % 3 == 0 else topic[-(seed % 7) - 1].timestamp
    whole, rest = _read(topic, first, until_ms, 1000, None)
    assert rest is None
    paged: list[OwnedAlert] = []
    cursor: str | None = None
    for _ in range(len(topic) + 1):
        after = None if cursor is None else decode_alert_cursor(cursor)
        found, resume = _read(topic, first, until_ms, limit, after)
        assert len(found) <= limit
        paged += found
        cursor = None if resume is None else encode_alert_cursor(resume)
        if cursor is None:
            break
    assert cursor is None, "the cursor never ended"
    assert paged == whole
    ids = [alert["id"] for _, alert in paged]
    assert len(ids) == len(set(ids)), "a re-sent copy was served again on a later page"
    assert whole, "the sample topic should hold some of Alice's alerts"


def test_a_full_page_answers_a_cursor_only_while_another_alert_follows() -> None:
    alice = {"id": "a", "data": {"owner": "alice"}}
    bob = {"id": "b", "data": {"owner": "bob"}}
    topic = [_record(0, 1, alice), _record(1, 1, bob), _record(2, 1, bob)]
    assert _read(topic, 0, None, 1, None) == ([(0, alice)], None)  # only Bob's follow
    topic.append(_record(3, 2, alice | {"id": "c"}))
    assert _read(topic, 0, None, 1, None)[1] == 1  # after the last alert served
    assert _read(topic, 0, 2, 1, None)[1] is None  # the next alice is past until


def test_a_page_cut_short_answers_where_it_stopped_reading() -> None:
    bob = {"id": "b", "data": {"owner": "bob"}}
    page = AlertPage(None, 5, _alice, ServedIds(5), 10)
    for offset in range(10, 14):  # the scan limit or the deadline ends the read here
        assert page.take(_record(offset, 1, bob))
    assert page.alerts == [] and page.next_offset(end=20) == 14
    assert page.next_offset(end=14) is None  # read to the end: nothing left


def test_alert_cursors_round_trip_and_bad_ones_are_refused() -> None:
    for offset in (0, 1, 123_456_789_012):
        assert decode_alert_cursor(encode_alert_cursor(offset)) == offset
    bad = [
        "garbage!",
        "",
        encode_cursor("size", (3,)),  # another list's cursor
        encode_cursor("alerts", (-1,)),
        encode_cursor("alerts", (1.5,)),
        encode_cursor("alerts", ("7",)),
        encode_cursor("alerts", (1, 2)),
        encode_cursor("alerts", (True,)),
    ]
    for cursor in bad:
        with pytest.raises(BadCursor):
            decode_alert_cursor(cursor)
        if cursor:
            with pytest.raises(HttpError) as refused:
                cursor_offset(cursor)
            assert refused.value.status == 400 and refused.value.field == "cursor"
    assert cursor_offset(None) is None and cursor_offset("") is None
    assert cursor_offset(encode_alert_cursor(42)) == 42
