"""A story's state stays bounded as it grows: its profile (terms, names, outlets) is trimmed
to the heaviest entries, so the record written every batch keeps a stated size."""

from __future__ import annotations

import json

import numpy as np

from streams.engine.article import Article, stable_id
from streams.engine.clustering import ClusterParams, StoryEngine
from streams.engine.evidence import TextEvidence
from streams.engine.story_state import PROFILE_MAX, SOURCES_MAX, Story, story_keywords

# The stated bound of a story's state record, at any size (docs/RELIABILITY.md): 10,000
# articles measured ~52 KiB (bench/story_growth.py); the profile caps keep it below this.
RECORD_MAX_BYTES = 96 * 1024
ARTICLES = 10_000
OUTLETS = 3000
T0 = 1_700_000_000.0


def _grow(count: int) -> tuple[StoryEngine, Story, set[str]]:
    """One story fed ``count`` articles, each with new words, names and (mostly) outlets:
    the worst case for the profile. Each vector is the story's direction plus noise, so
    every article joins and starts its own near-duplicate group. Returns the engine, the
    story and every word the articles had."""
    rng = np.random.default_rng(3)
    dim = 384
    base = rng.standard_normal(dim).astype(np.float32)
    base /= np.linalg.norm(base)
    engine = StoryEngine(ClusterParams())
    words_seen: set[str] = {"quake"}
    for n in range(count):
        noise = rng.standard_normal(dim).astype(np.float32)
        words = [f"w{int(x)}" for x in rng.integers(0, 200_000, 8)]
        words_seen.update(words)
        names = {f"name{int(x)}" for x in rng.integers(0, 50_000, 5)}  # too few to veto
        article = Article(id=f"a{n}", title=" ".join(words), source=f"outlet-{n % OUTLETS}")
        evidence = TextEvidence({w: 1 for w in [*words, "quake"]}, frozenset(names), f"c{n}")
        engine.process(article, base + 0.5 * noise / np.linalg.norm(noise), T0 + n, evidence)
    story = engine.story(stable_id("st", "a0"))
    assert story is not None and engine.active_stories == 1
    return engine, story, words_seen


def test_a_10000_article_story_keeps_its_record_under_the_stated_size() -> None:
    engine, story, _ = _grow(ARTICLES)
    assert story.size == ARTICLES
    record = json.dumps(story.record())
    assert len(record) < RECORD_MAX_BYTES, f"{len(record)} bytes"
    assert len(story.terms) <= 2 * PROFILE_MAX and len(story.entities) <= 2 * PROFILE_MAX
    assert len(story.sources) <= 2 * SOURCES_MAX
    # The outlets trimmed are still counted: each of the 3,000 reported it.
    assert story.source_count >= OUTLETS
    # The heaviest terms survive the trims: the keywords are still the profile's top terms.
    assert story.keywords() == story_keywords(story.terms)
    # A trimmed term leaves the postings too (the story is listed only under terms it has).
    listed = {term for term in engine.postings if story.id in engine.postings.stories_with(term)}
    assert listed == set(story.terms)
    # A restored story goes on with the same bounded profile.
    again = Story.from_record(json.loads(record))
    assert again.terms == story.terms and again.source_count == story.source_count


def test_a_story_below_the_bounds_keeps_every_entry() -> None:
    _, story, words = _grow(40)
    assert story.size == 40
    assert set(story.terms) == words
    assert story.source_count == len(story.sources) == 40
