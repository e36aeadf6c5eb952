"""Pure parts of replay: --set and --rules validation, the live/replay comparison."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from config.exceptions import SettingsError
from config.settings import Settings
from streams.replay.compare import compare_runs
from streams.replay.overrides import apply_overrides, load_rules, parse_overrides


def test_overrides_accept_both_spellings_and_validate_like_settings() -> None:
    found = parse_overrides(["story_threshold=0.5", "STORYWATCH_EMERGING_MIN_ARTICLES=3"])
    assert found == {"story_threshold": "0.5", "emerging_min_articles": "3"}
    run = apply_overrides(Settings(), found)
    assert run.story_threshold == 0.5 and run.emerging_min_articles == 3
    assert Settings().story_threshold != 0.5  # the live settings stay as they were


@pytest.mark.parametrize(
    ("pairs", "says"),
    [
        (["story_threshold"], "write NAME=VALUE"),
        (["story_treshold=0.5"], "no such setting"),
        (["story_threshold=3"], "--set story_threshold=3: Input should be less than"),
        (["emerging_min_articles=many"], "--set emerging_min_articles=many"),
    ],
)
def test_bad_overrides_are_clean_messages(pairs: list[str], says: str) -> None:
    with pytest.raises(SettingsError, match=says):
        apply_overrides(Settings(), parse_overrides(pairs))


def test_rules_file(tmp_path: Path) -> None:
    path = tmp_path / "rules.json"
    path.write_text(
        json.dumps(
            {
                "rules": [
                    {"name": "fast", "min_articles": 3, "min_sources": 2, "window_hours": 1},
                    {"name": "slow", "min_articles": 8, "min_sources": 4, "window_hours": 12},
                ]
            }
        )
    )
    fast, slow = load_rules(path)
    assert (fast.name, fast.min_articles, fast.window_s) == ("fast", 3, 3600.0)
    assert slow.min_sources == 4
    path.write_text('{"rules": [{"name": "x", "min_articles": 0}]}')
    with pytest.raises(SettingsError, match="min_articles"):
        load_rules(path)
    with pytest.raises(SettingsError, match="no such file"):
        load_rules(tmp_path / "missing.json")


def test_compare_finds_splits_merges_and_alert_differences() -> None:
    live = {"a": "L1", "b": "L1", "c": "L1", "d": "L2", "e": "L3", "f": "L3"}
    replay = {"a": "R1", "b": "R1", "c": "R2", "d": "R3", "e": "R3", "f": "R3"}
    diff = compare_runs(replay, live, {"R1", "R3"}, {"L1", "L2"}, {"L2": "two"})
    assert diff["stories_split"] == 1 and diff["split_examples"][0]["live_story"] == "L1"
    assert diff["split_examples"][0]["into"] == ["R1", "R2"]
    assert diff["stories_merged"] == 1 and diff["merged_examples"][0]["from"] == ["L2", "L3"]
    assert diff["same_story"] == 5  # all but d: R3 stands for L3, which holds most of it
    assert diff["alerts_both"] == 1  # R1 is L1
    assert diff["alerts_only_in_replay"] == [{"story": "R3", "headline": ""}]
    assert diff["alerts_only_live"] == [{"story": "L2", "headline": "two"}]


def test_progress_is_a_bar_on_a_terminal_and_lines_otherwise() -> None:
    import io

    from streams.replay.progress import Progress

    lines: list[str] = []
    plain = Progress(3, "replay", tty=False, echo=lines.append)
    plain.update()
    plain.update(2)
    plain.close()
    assert lines and lines[-1].startswith("replay: 3/3 articles")
    screen = io.StringIO()
    bar = Progress(3, "replay", stream=screen, tty=True)
    bar.update(3)
    bar.close()
    assert "3/3" in screen.getvalue() and "article/s" in screen.getvalue()
