"""Lexical evidence beside the embedding: IDF-weighted terms and named entities.

Dense similarity says two reports are about the same *kind* of event; the terms and entities
they share (who, where, how many) say whether it is the same event. Plain Python, no state:
the running document frequencies live in :class:`DocumentFrequencies`.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from streams.engine.article import content_key

__all__ = [
    "DocumentFrequencies",
    "TextEvidence",
    "entities",
    "is_title_case",
    "term_counts",
    "term_vector",
    "terms",
    "weigh_terms",
]

_STOPWORDS = frozenset(
    """a an the of to in on for and or but with by from at as is are was were be been has have
    had it its this that these those he she they them his her their we you i not no will would
    can could should may might do does did after before over under about into than then so if
    out up down new says said say more most also just amid""".split()
)
# Capitalised words that are not names: sentence starts, titles, weekdays, months, web chrome.
_NOT_NAMES = frozenset(
    """The A An In On At For And But Or Of To By From With As It Its This That These Those He
    She They We You I His Her Their Our Mr Mrs Ms Dr After Before When While If Then There Here
    What Who Why How Where Which Monday Tuesday Wednesday Thursday Friday Saturday Sunday January
    February March April May June July August September October November December Said Says New
    Update Updated Video Photos Watch Report Reports Breaking News UPDATE Read More Click
    Share""".split()
)
_FUNCTION_WORDS = frozenset(
    "a an the of to in on for and or but with by from at as is are was were be has have had it "
    "its this that not".split()
)
_TERM = re.compile(r"[A-Za-z][A-Za-z0-9'&.-]*|\d+(?:[.,]\d+)?")
_WORD = re.compile(r"[A-Za-z][A-Za-z'&.-]*|\d[\d,.]*")
_LETTER_WORD = re.compile(r"[A-Za-z][A-Za-z']*")

# Why the title counts twice: the headline states the event; the body also tells background.
TITLE_WEIGHT = 2
# Why 600 chars of body for terms: the lead paragraph names the event; later text drifts.
TERM_BODY_CHARS = 600
# Why 3,000 chars for entities: names and numbers of an event spread over the first paragraphs.
ENTITY_BODY_CHARS = 3000
# Why 60%: a segment where most content words are capitalised is Title Case (a headline
# style), so its capitals say nothing about names.
_TITLE_CASE_SHARE = 0.6


def terms(text: str) -> list[str]:
    """Lower-case content words and numbers (no stopwords, no possessive 's)."""
    out = []
    for raw in _TERM.findall(text):
        term = raw.strip(".'-").lower().removesuffix("'s")
        if len(term) < 2 or term in _STOPWORDS:
            continue
        out.append(term)
    return out


def is_title_case(segment: str) -> bool:
    """True for Title Case Text Like Many Headlines (at least three content words)."""
    words = [w for w in _LETTER_WORD.findall(segment) if w.lower() not in _FUNCTION_WORDS]
    return len(words) >= 3 and sum(w[0].isupper() for w in words) / len(words) >= _TITLE_CASE_SHARE


def _names_and_numbers(segment: str) -> list[str]:
    out = []
    for match in _WORD.finditer(segment):
        token = match.group().strip(".'-,")
        if not token:
            continue
        if token[0].isdigit():
            out.append("#" + token.replace(",", ""))
        elif token[0].isupper() and token not in _NOT_NAMES and len(token) > 1:
            out.append(token.removesuffix("'s").lower())
    return out


def entities(title: str, text: str) -> set[str]:
    """Names (capitalised words) and numbers (``#``-prefixed) of an article. A Title Case
    segment contributes its numbers only."""
    found: set[str] = set()
    for segment in (title, text[:ENTITY_BODY_CHARS]):
        names = _names_and_numbers(segment)
        if is_title_case(segment):
            names = [n for n in names if n.startswith("#")]
        found.update(names)
    return found


@dataclass(frozen=True, slots=True)
class TextEvidence:
    """What an article's own text holds: its term counts, its names and numbers, and the key
    of its normalized text (:func:`content_key`, which finds exact re-sends).

    Stateless (no frequencies, no stories), so it is computed where articles are embedded,
    in parallel, and travels with the vector: the one ordered clustering stage, whose
    per-article cost caps the pipeline, does not re-read the text.
    """

    term_counts: dict[str, int]
    entities: frozenset[str]
    content_key: str

    @classmethod
    def of(cls, title: str, text: str) -> TextEvidence:
        return cls(
            dict(term_counts(title, text)),
            frozenset(entities(title, text)),
            content_key(title, text),
        )


class DocumentFrequencies:
    """How many articles in the active window contain each term / entity."""

    def __init__(self) -> None:
        self.documents = 0
        self.counts: Counter[str] = Counter()

    def add(self, keys: Iterable[str]) -> None:
        self.documents += 1
        self.counts.update(set(keys))

    def remove(self, keys: Iterable[str]) -> None:
        self.documents = max(0, self.documents - 1)
        for key in set(keys):
            left = self.counts[key] - 1
            if left > 0:
                self.counts[key] = left
            else:
                del self.counts[key]

    def idf(self, key: str) -> float:
        """Smoothed inverse document frequency, > 0 for any key seen in fewer than all docs."""
        return math.log((self.documents + 1) / (self.counts.get(key, 0) + 0.5))


def term_counts(title: str, text: str) -> Counter[str]:
    """Term frequencies of the title (weighted) and the lead: what :func:`weigh_terms` reads."""
    return Counter(terms(title) * TITLE_WEIGHT + terms(text[:TERM_BODY_CHARS]))


def term_vector(title: str, text: str, frequencies: DocumentFrequencies) -> dict[str, float]:
    """Unit-length TF-IDF vector (sublinear tf) of the title (weighted) and the lead."""
    return weigh_terms(term_counts(title, text), frequencies)


def weigh_terms(counts: Mapping[str, int], frequencies: DocumentFrequencies) -> dict[str, float]:
    """Unit-length TF-IDF vector (sublinear tf) of term ``counts``."""
    # DocumentFrequencies.idf inlined (same expression): this runs for every article in the
    # ordered clustering stage.
    log, seen, documents = math.log, frequencies.counts.get, frequencies.documents + 1
    weights = {t: (1 + log(c)) * log(documents / (seen(t, 0) + 0.5)) for t, c in counts.items()}
    norm = math.sqrt(sum(w * w for w in weights.values())) or 1.0
    return {t: w / norm for t, w in weights.items()}
