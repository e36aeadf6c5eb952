from __future__ import annotations

from streams.engine.expiry import InactiveKeys


def test_keys_expire_once_the_clock_passes_their_window() -> None:
    keys = InactiveKeys(window_s=10)
    keys.touch("a", 0)
    keys.touch("b", 5)
    assert keys.pop_expired() == []
    keys.touch("c", 12)  # clock 12: "a" (0) is 12 s behind, "b" (5) only 7
    assert keys.pop_expired() == ["a"]
    assert "a" not in keys and "b" in keys
    keys.touch("c", 16)
    assert keys.pop_expired() == ["b"]
    assert len(keys) == 1


def test_a_touched_key_lives_on_and_an_old_time_does_not_rewind_it() -> None:
    keys = InactiveKeys(window_s=10)
    keys.touch("a", 0)
    keys.touch("a", 9)
    keys.touch("a", 3)  # out of order: the later activity counts
    keys.touch("b", 15)
    assert keys.pop_expired() == []
    keys.touch("b", 20)
    assert keys.pop_expired() == ["a"]


def test_forgotten_keys_never_come_back_and_the_heap_stays_bounded() -> None:
    keys = InactiveKeys(window_s=1e9)
    for t in range(20_000):
        keys.touch("hot", float(t))
    assert len(keys._heap) <= 2 * len(keys) + 1024
    keys.forget("hot")
    keys.touch("x", 3e9)
    assert keys.pop_expired() == []
    assert len(keys) == 1


def test_reload_from_table_records() -> None:
    keys = InactiveKeys(window_s=10)
    keys.touch("stale", 1.0)
    keys.reload([("a", {"last_seen": 100.0}), ("b", None), ("legacy", {"fired": True})])
    assert "stale" not in keys and "b" not in keys
    assert keys.last_activity("a") == 100.0
    assert keys.pop_expired() == ["legacy"]  # no time: inactive since the epoch
