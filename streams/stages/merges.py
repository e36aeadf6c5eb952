"""The one fold of story merges: every reader of ``stories`` follows a merge with this.

A ``merged`` event says ``absorbed_id`` now lives on as ``story_id``. Every reader (the alert
and match stages, the read model, replay and the offline ``cluster``/``eval``) resolves ids
through the redirects it has seen (:func:`resolve`) and folds a merge only when the two ids
still resolve apart (:func:`merge_pair`): a replayed ``merged`` event finds nothing to fold.

The stages after clustering keep per-story state in a table keyed by story id
(:class:`MergedStates`): a merge folds the absorbed story's state into the survivor's (what
already fired stays fired) and leaves a redirect record in place of the absorbed story's, so
a late or replayed event of the absorbed id lands on the survivor.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any, Generic, TypeVar

from streams.engine.emerging import EmergingState
from streams.engine.expiry import InactiveKeys

__all__ = [
    "MERGED_INTO",
    "MergedStates",
    "absorb_emerging",
    "merge_pair",
    "redirect_record",
    "resolve",
]

#: The field of a redirect record: the story the record's key was merged into.
MERGED_INTO = "merged_into"
# Why 64: a chain is a few hops (a story absorbed, its survivor absorbed later); more than
# this is a loop in a damaged table, stopped rather than spun.
_MAX_HOPS = 64

S = TypeVar("S")
Lookup = Callable[[str], "str | None"]


def resolve(story_id: str, merged_into: Lookup) -> str:
    """The story ``story_id`` lives on as: ``merged_into`` followed (it answers the story an
    id was merged into, None for one that was not), at most :data:`_MAX_HOPS` hops."""
    for _ in range(_MAX_HOPS):
        into = merged_into(story_id)
        if into is None:
            return story_id
        story_id = str(into)
    return story_id


def merge_pair(survivor_id: str, absorbed_id: str, merged_into: Lookup) -> tuple[str, str] | None:
    """(survivor, absorbed) as they live on now, or None when they are one story already
    (a replayed ``merged`` event): the merge folds nothing then."""
    survivor, absorbed = resolve(survivor_id, merged_into), resolve(absorbed_id, merged_into)
    return None if survivor == absorbed else (survivor, absorbed)


def redirect_record(survivor_id: str, last_seen: float | None) -> dict[str, Any]:
    """The record left in place of an absorbed story's state (expires like any other)."""
    return {MERGED_INTO: survivor_id, "last_seen": last_seen}


class MergedStates(Generic[S]):
    """One batch's per-story states over ``table`` (read, never written here: the agent
    writes :attr:`states` and :attr:`redirects` back once per batch).

    ``load`` makes a state from a table record (``None``: a story not seen yet).
    """

    def __init__(self, table: Mapping[str, Any], load: Callable[[Any], S]):
        self._table = table
        self._load = load
        self.states: dict[str, S] = {}
        self.redirects: dict[str, str] = {}  # absorbed story id -> survivor, this batch

    def resolve(self, story_id: str) -> str:
        """The story ``story_id`` lives on as (itself unless it was merged)."""
        return resolve(story_id, self._merged_into)

    def _merged_into(self, story_id: str) -> str | None:
        into = self.redirects.get(story_id)
        if into is None and story_id not in self.states:
            record = self._table.get(story_id)
            into = record.get(MERGED_INTO) if isinstance(record, Mapping) else None
        return None if into is None else str(into)

    def get(self, story_id: str) -> tuple[str, S]:
        """(the story ``story_id`` lives on as, its state)."""
        resolved = self.resolve(story_id)
        state = self.states.get(resolved)
        if state is None:
            state = self.states[resolved] = self._load(self._table.get(resolved))
        return resolved, state

    def merge(self, survivor_id: str, absorbed_id: str, fold: Callable[[S, S], None]) -> bool:
        """Fold the absorbed story's state into the survivor's (``fold(into, other)``) and
        redirect the absorbed id. False when it already lives on as the survivor (a
        replayed ``merged`` event): nothing folds twice."""
        survivor, state = self.get(survivor_id)  # loaded (and written back) either way
        pair = merge_pair(survivor, absorbed_id, self._merged_into)
        if pair is None:
            return False
        absorbed = pair[1]
        _, other = self.get(absorbed)
        fold(state, other)
        del self.states[absorbed]
        self.redirects[absorbed] = survivor
        return True

    def follow_merge(
        self,
        survivor_id: str,
        absorbed_id: str,
        fold: Callable[[S, S], None],
        quiet: InactiveKeys,
        when: float,
    ) -> tuple[str, S]:
        """A ``merged`` event in a stage: :meth:`merge`, both stories active at ``when``
        (the absorbed id's redirect expires like a story); (the survivor, its state)."""
        if self.merge(survivor_id, absorbed_id, fold):
            quiet.touch(absorbed_id, when)
        story_id, state = self.get(survivor_id)
        quiet.touch(story_id, when)
        return story_id, state

    def write_back(
        self,
        table: MutableMapping[str, Any],
        quiet: InactiveKeys,
        record: Callable[[S], dict[str, Any]],
    ) -> None:
        """Once per batch: each state as ``record(state)`` with its last activity, each
        absorbed id as a redirect, and the stories quiet past the window dropped."""
        for story_id, state in self.states.items():
            table[story_id] = {**record(state), "last_seen": quiet.last_activity(story_id)}
        for absorbed, survivor in self.redirects.items():
            table[absorbed] = redirect_record(survivor, quiet.last_activity(absorbed))
        for story_id in quiet.pop_expired():
            table.pop(story_id, None)


def absorb_emerging(into: EmergingState, other: EmergingState) -> None:
    """The emerging rule's memory of a merged story: fired if either part fired (one alert
    per story, and the two are one story now); the recent articles of both otherwise (the
    rule's window is applied again at the next article), sample links of both."""
    into.fired = into.fired or other.fired
    if into.fired:
        into.recent.clear()
    else:
        held = {article for _, _, article in into.recent}
        merged = list(into.recent) + [x for x in other.recent if x[2] not in held]
        into.recent = deque(sorted(merged, key=lambda x: x[0]))
    into.urls += [url for url in other.urls if url not in into.urls]
