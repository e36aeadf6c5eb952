"""The alert readers serve a CloudEvent id once: what they remember, and for how long."""

from __future__ import annotations

from typing import Any

from streams.alert_history import ServedIds


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
