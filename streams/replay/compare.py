"""What a backtest changes against the live run over the same window: stories split or
merged (by the articles they hold), alerts that would have fired and did not, and the
reverse. Plain Python over two assignments and two sets of alerted stories."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping
from typing import Any

__all__ = ["compare_runs"]

# Why 10: examples per kind in the summary; the counts say how many there are.
_EXAMPLES = 10


def _groups(assignment: Mapping[str, str]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = defaultdict(set)
    for article, story in assignment.items():
        found[story].add(article)
    return found


def compare_runs(
    replay: Mapping[str, str],
    live: Mapping[str, str],
    replay_alerted: set[str],
    live_alerted: set[str],
    headlines: Mapping[str, str],
) -> dict[str, Any]:
    """``replay``/``live``: article id -> story id over the same articles; ``*_alerted``:
    story ids an alert fired for. A live story whose articles the replay puts in several
    stories is *split*; a replay story holding articles of several live stories is *merged*.
    An alert is matched across runs through the live story holding most of the replay
    story's articles (story ids are the first article's, so they differ when the first
    article differs)."""
    common = set(replay) & set(live)
    replay_groups = _groups({a: replay[a] for a in common})
    live_groups = _groups({a: live[a] for a in common})
    split = [
        {
            "live_story": story,
            "headline": headlines.get(story, ""),
            "articles": len(articles),
            "into": sorted({replay[a] for a in articles}),
        }
        for story, articles in live_groups.items()
        if len({replay[a] for a in articles}) > 1
    ]
    merged = [
        {
            "replay_story": story,
            "headline": headlines.get(story, ""),
            "articles": len(articles),
            "from": sorted({live[a] for a in articles}),
        }
        for story, articles in replay_groups.items()
        if len({live[a] for a in articles}) > 1
    ]
    to_live = {
        story: Counter(live[a] for a in articles).most_common(1)[0][0]
        for story, articles in replay_groups.items()
    }
    replay_as_live = {to_live.get(s, s) for s in replay_alerted}
    only_replay = sorted(s for s in replay_alerted if to_live.get(s, s) not in live_alerted)
    only_live = sorted(s for s in live_alerted if s not in replay_as_live)
    split.sort(key=lambda x: -int(x["articles"]))  # type: ignore[call-overload]
    merged.sort(key=lambda x: -int(x["articles"]))  # type: ignore[call-overload]
    return {
        "articles_compared": len(common),
        "articles_only_in_replay": len(set(replay) - set(live)),
        "articles_only_live": len(set(live) - set(replay)),
        "same_story": sum(1 for a in common if to_live.get(replay[a], replay[a]) == live[a]),
        "stories_split": len(split),
        "stories_merged": len(merged),
        "split_examples": split[:_EXAMPLES],
        "merged_examples": merged[:_EXAMPLES],
        "alerts_only_in_replay": [
            {"story": s, "headline": headlines.get(s, "")} for s in only_replay
        ],
        "alerts_only_live": [{"story": s, "headline": headlines.get(s, "")} for s in only_live],
        "alerts_both": len(replay_as_live & live_alerted),
    }
