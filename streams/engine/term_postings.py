"""Term postings: for each term, the active stories whose term profile holds it.

A second source of candidates once the dense index is partitioned (approximate): the
stories sharing an article's rarest terms.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

__all__ = ["TermPostings"]

# Why the article's 4 heaviest terms, skipping terms held by more than 64 stories: a
# partitioned index can miss a story that a headline joins at cosine 0.35-0.5 (10% of UCI
# joins); 99% of joins share terms with their story, and an article's rarest terms name few
# stories. A term in more stories than that does not single one out.
POSTING_TERMS = 4
POSTING_MAX_LIST = 64
# Why at most 16 extra stories: each extra cosine reads one centroid from a random place in
# memory (a cache miss per row, ~1.3 us each at 100k stories, where 64 cost a tenth of the
# whole decision); forced on UCI dev, 16 instead of 64 changes F1 by 0.0003 (BENCHMARKS).
POSTING_STORIES = 16


def _weight_then_term(item: tuple[str, float]) -> tuple[float, str]:
    return item[1], item[0]


class TermPostings:
    """term -> ids of the active stories whose profile has it (no empty lists kept)."""

    def __init__(self) -> None:
        self._holders: dict[str, set[str]] = {}

    def __contains__(self, term: object) -> bool:
        return term in self._holders

    def __len__(self) -> int:
        return len(self._holders)

    def __iter__(self) -> Iterator[str]:
        return iter(self._holders)

    def stories_with(self, term: str) -> frozenset[str]:
        return frozenset(self._holders.get(term, ()))

    def add(self, story_id: str, terms: Iterable[str]) -> None:
        holders = self._holders
        for term in terms:
            found = holders.get(term)
            if found is None:
                holders[term] = {story_id}
            else:
                found.add(story_id)

    def remove(self, story_id: str, terms: Iterable[str]) -> None:
        for term in terms:
            found = self._holders.get(term)
            if found is not None:
                found.discard(story_id)
                if not found:
                    del self._holders[term]

    def extra_candidates(self, term_vec: dict[str, float], have: set[str]) -> list[str]:
        """Up to :data:`POSTING_STORIES` story ids not in ``have`` that hold one of the
        article's heaviest terms (``have`` is extended with every holder looked at)."""
        extra: list[str] = []
        # sorted()[:n] is what heapq.nlargest documents itself to equal, cheaper for ~10 terms
        heaviest = sorted(term_vec.items(), key=_weight_then_term, reverse=True)[:POSTING_TERMS]
        for term, _ in heaviest:
            holders = self._holders.get(term, ())
            if len(holders) > POSTING_MAX_LIST:
                continue
            extra.extend(sorted(sid for sid in holders if sid not in have))
            have.update(holders)
            if len(extra) >= POSTING_STORIES:
                break
        return extra[:POSTING_STORIES]
