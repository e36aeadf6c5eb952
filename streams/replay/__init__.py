"""Replaying topic history outside the live pipeline: time windows on topics, the isolated
backtest run (`storywatch replay`), the comparison with the live run, the history reader
(`storywatch history`) and the story-state rebuild (`storywatch rebuild`)."""

from __future__ import annotations

__all__: list[str] = []
