"""Research, not shipped: would real named entities (spaCy) tell sibling events apart?

Why: three rounds of issue 23 found that the engine joins sibling events (two earthquakes, two
DUI arrests of one team's players) because they share the topic's capitalised names, while
what differs (Jackson vs Williams, 5.6 vs 6.1, 2009 vs 2012) is not separated from ordinary
variation by a capitalisation heuristic. An NER model is a licence/provenance decision the
team has to take; this bench measures what it would buy, with the engine untouched:

* the entities come from a cache written by ``bench/ner_cache.py`` (spaCy ``en_core_web_sm``
  3.8.0, run in a scratch venv outside the project; ``--ner DIR``);
* the default engine runs as ``storywatch eval`` runs it (MiniLM embeddings from the cache of
  ``bench/encoder_quality.py``, ``--cache DIR``); a candidate rule is applied by wrapping the
  engine's decision hook (``clustering.weigh``) and its merge step for the run, or by handing
  the engine NER names instead of its capitalised spans (the ``TextEvidence`` the embed stage
  sends; nothing else changes).

Typed keys of an article: ``person`` (a PERSON's surname, so "Nichols" matches "Brian
Nichols"), ``place`` (GPE, LOC, FAC), ``org`` (ORG), ``norp``, ``event``/``product``/``work``/
``law``, ``year`` (a 4-digit year inside a DATE span) and ``decimal`` (a decimal number inside
a CARDINAL/QUANTITY span: magnitudes). Candidate rules (see ``RULES``):

* ``names=ner`` / ``names=both``: the engine's own names check (``entity_share``, at least
  ``entity_min`` names) reads the NER keys instead of (or beside) its capitalised spans;
* ``veto=T1+T2``: a join is refused when, for one of the types, the article has keys of that
  type and the story has some (``against=all``: any member's; ``core``: held by at least half
  its members) and they are disjoint; ``scope=title``: only the article's title entities;
  ``need=2``: at least two types in conflict; ``pen=X``: not a veto but the score lowered by
  X per conflicting type;
* ``merge=T1+T2``: a bridge between two stories is refused when their core keys of a type are
  disjoint (both non-empty).

Steps:

* ``speed``: the encoder's headlines/s, to set beside bench/ner_cache.py's;
* ``shadow``: the default run; every accepted join labeled right or wrong by the gold
  majority of the story it joined, and how many of each a veto of each type would remove;
* ``seeds``: every seed join of ECB+ (the article's event not in the story yet) with its
  typed keys and the story's;
* ``choose``: every rule of the grid on half 0 of both files (pick: the sum of the two h0
  F1s);
* ``table``: the rules on all four halves and the whole files: final B-cubed F1 /
  judged-pair accuracy / sibling-pair accuracy, plus precision and same-event pairs.

Run: .venv/bin/python bench/ner_evidence.py --cache /tmp/swq/cache --ner /tmp/ner-cache \
         shadow seeds choose
     .venv/bin/python bench/ner_evidence.py --cache /tmp/swq/cache --ner /tmp/ner-cache table \
         --rules default,names=ner/entity_min=3
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from encoder_quality import FILES, WHERE, Part, load  # noqa: E402

from streams.engine import clustering  # noqa: E402
from streams.engine.evaluation import score  # noqa: E402
from streams.engine.evidence import TextEvidence  # noqa: E402
from streams.engine.offline import ClusterRun  # noqa: E402
from streams.engine.pairs import score_pairs  # noqa: E402
from streams.engine.params import ClusterParams  # noqa: E402
from streams.engine.scoring import JoinEvidence  # noqa: E402
from streams.engine.story_state import StateChanges, Story  # noqa: E402

Typed = dict[str, frozenset[str]]

# spaCy label -> the type a conflict is judged on.
LABELS = {
    "PERSON": "person",
    "GPE": "place",
    "LOC": "place",
    "FAC": "place",
    "ORG": "org",
    "NORP": "norp",
    "EVENT": "event",
    "PRODUCT": "product",
    "WORK_OF_ART": "work",
    "LAW": "law",
}
TYPES = ("person", "place", "org", "norp", "event", "product", "year", "decimal")
_YEAR = re.compile(r"\b(1[89]\d\d|20\d\d)\b")
_DECIMAL = re.compile(r"\b\d+\.\d+\b")
_SPACE = re.compile(r"\s+")
# Pronouns an NER model tags as a PERSON or ORG ("He", "It"; CoreNLP's mentions): not names.
_PRONOUNS = frozenset(
    "he she his her him hers himself herself they them their it its i me my we us our you".split()
)
# Why half: a story's "core" entities are what most of its reports name (the event's own
# people and places), not a name one report quoted in passing.
CORE_SHARE = 0.5


def _key(text: str, label: str) -> str:
    key = _SPACE.sub(" ", text.lower().replace("\u2019", "'")).strip(" .,'\"")
    key = key.removeprefix("the ").removesuffix("'s")
    if label == "PERSON":
        key = key.split(" ")[-1] if key else key
    return key


def typed_keys(ents: list[list[Any]], title_chars: int, title_only: bool = False) -> Typed:
    out: dict[str, set[str]] = defaultdict(set)
    for text, label, _start, end in ents:
        if title_only and end > title_chars:
            continue
        if label in LABELS:
            key = _key(str(text), label)
            if key and key not in _PRONOUNS:
                out[LABELS[label]].add(key)
        elif label == "DATE":
            out["year"].update(_YEAR.findall(str(text)))
        elif label in ("CARDINAL", "QUANTITY"):
            out["decimal"].update(_DECIMAL.findall(str(text)))
    return {t: frozenset(v) for t, v in out.items() if v}


@dataclasses.dataclass(frozen=True)
class Ner:
    """An article's typed keys, over its whole embedded text and over its title only."""

    all: Typed
    title: Typed

    def size(self) -> int:
        return sum(len(keys) for keys in self.all.values())

    def names(self) -> frozenset[str]:
        return frozenset(f"{t}:{k}" for t, keys in self.all.items() for k in keys)


def read_ner(directory: Path) -> dict[str, Ner]:
    out: dict[str, Ner] = {}
    for stem in FILES.values():
        path = directory / f"{stem}.jsonl"
        if not path.is_file():
            raise SystemExit(f"{path}: missing; write it first with bench/ner_cache.py")
        for line in path.open():
            row = json.loads(line)
            ents, chars = row["ents"], row["title_chars"]
            out[str(row["id"])] = Ner(typed_keys(ents, chars), typed_keys(ents, chars, True))
    return out


class Profile:
    """How many of a story's members name each typed key."""

    def __init__(self) -> None:
        self.size = 0
        self.counts: dict[str, Counter[str]] = defaultdict(Counter)

    def add(self, keys: Typed) -> None:
        self.size += 1
        for t, found in keys.items():
            self.counts[t].update(found)

    def absorb(self, other: Profile) -> None:
        self.size += other.size
        for t, counts in other.counts.items():
            self.counts[t].update(counts)

    def keys(self, t: str, core: bool) -> set[str]:
        counts = self.counts.get(t)
        if not counts:
            return set()
        if not core:
            return set(counts)
        return {k for k, c in counts.items() if c >= CORE_SHARE * self.size}


def conflicts(article: Typed, profile: Profile | None, types: tuple[str, ...], core: bool) -> int:
    """How many of ``types`` the article and the story both name, with no key in common."""
    if profile is None:
        return 0
    n = 0
    for t in types:
        mine = article.get(t)
        if not mine:
            continue
        theirs = profile.keys(t, core)
        n += bool(theirs) and mine.isdisjoint(theirs)
    return n


@dataclasses.dataclass(frozen=True)
class Rule:
    names: str = "caps"  # caps (the engine's own) | ner | both
    veto: tuple[str, ...] = ()
    scope: str = "all"  # the article's entities: all | title
    against: str = "all"  # the story's: all (any member's) | core
    need: int = 1
    pen: float = 0.0
    min: int = 0  # the veto judges only an article with at least this many typed keys
    # The ceiling, gold labels used as evidence (never a candidate): "seed" refuses every join
    # of an article whose event is not in the story yet, "wrong" every join against the
    # story's majority event.
    oracle: str = ""
    merge: tuple[str, ...] = ()
    params: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def parse(cls, text: str) -> Rule:
        if text == "default":
            return cls()
        fields: dict[str, Any] = {}
        params: list[tuple[str, Any]] = []
        for item in text.split("/"):
            key, _, value = item.partition("=")
            if key in ("veto", "merge"):
                fields[key] = tuple(value.split("+"))
            elif key in ("names", "scope", "against", "oracle"):
                fields[key] = value
            elif key in ("need", "min"):
                fields[key] = int(value)
            elif key == "pen":
                fields[key] = float(value)
            elif key in ("entity_min", "merge_bridges"):
                params.append((key, int(value)))
            elif key == "window_both_ways":
                params.append((key, value in ("1", "true")))
            else:
                params.append((key, float(value)))
        return cls(**fields, params=tuple(params))


@contextmanager
def _wrapped_weigh(rule: Rule, state: dict[str, Any]) -> Iterator[None]:
    plain = clustering.weigh

    def weigh(
        story: Story,
        dense: float,
        term_vec: dict[str, float],
        names: dict[str, float],
        params: ClusterParams,
    ) -> JoinEvidence:
        evidence = plain(story, dense, term_vec, names, params)
        if rule.oracle and evidence.accepted:
            labels = Counter(state["gold"][m] for m in state["members"][story.id])
            mine_label = state["gold"][state["article_id"]]
            if rule.oracle == "seed":
                return evidence._replace(accepted=mine_label in labels)
            return evidence._replace(accepted=labels.most_common(1)[0][0] == mine_label)
        if not rule.veto or not evidence.accepted or evidence.score >= params.entity_override:
            return evidence
        if state["article"].size() < rule.min:
            return evidence
        mine = state["article"].title if rule.scope == "title" else state["article"].all
        n = conflicts(mine, state["profiles"].get(story.id), rule.veto, rule.against == "core")
        if rule.pen:
            return evidence._replace(
                accepted=evidence.score - rule.pen * n >= params.story_threshold
            )
        return evidence._replace(accepted=n < rule.need) if n else evidence

    clustering.weigh = weigh  # type: ignore[assignment]
    try:
        yield
    finally:
        clustering.weigh = plain


class _Engine(clustering.StoryEngine):
    """The engine, whose bridges skip stories in conflict (``Rule.merge``) when set."""

    def __init__(self, params: ClusterParams, rule: Rule, state: dict[str, Any]) -> None:
        super().__init__(params)
        self._rule, self._state = rule, state

    def _merge_bridged(
        self,
        story: Story,
        article_id: str,
        evidence: list[JoinEvidence],
        event_time: float,
        changes: StateChanges,
    ) -> Story:
        if self._rule.merge:
            profiles = self._state["profiles"]
            mine = profiles.get(story.id)
            if mine is not None:
                core = {t: frozenset(mine.keys(t, True)) for t in self._rule.merge}
                core = {t: v for t, v in core.items() if v}
                evidence = [
                    e
                    for e in evidence
                    if not conflicts(core, profiles.get(e.story_id), self._rule.merge, True)
                ]
        return super()._merge_bridged(story, article_id, evidence, event_time, changes)


class Join(NamedTuple):
    """An accepted join: right by the gold majority of the story it joined, or not; a seed
    (the article's event not in the story yet); the story's profile before it joined."""

    right: bool
    seed: bool
    article_id: str
    members: list[str]
    ner: Ner
    profile: Profile


def run(part: Part, rule: Rule, ner: dict[str, Ner]) -> tuple[ClusterRun, list[Join]]:
    """One pass of the engine under ``rule``, and its accepted joins."""
    stream, gold, _ = part
    params = dataclasses.replace(ClusterParams(), **dict(rule.params))
    members: dict[str, list[str]] = defaultdict(list)
    state: dict[str, Any] = {"profiles": {}, "article": None, "gold": gold, "members": members}
    profiles: dict[str, Profile] = state["profiles"]
    engine = _Engine(params, rule, state)
    joins: list[Join] = []
    assignments, merges = [], []
    empty = Ner({}, {})
    with _wrapped_weigh(rule, state):
        for article, vector, stamp in zip(
            stream.articles, stream.vectors, stream.stamps_ms, strict=True
        ):
            mine = ner.get(article.id, empty)
            state["article"], state["article_id"] = mine, article.id
            evidence = None
            if rule.names != "caps":
                base = TextEvidence.of(article.title, article.text)
                found = mine.names() | (base.entities if rule.names == "both" else frozenset())
                evidence = TextEvidence(base.term_counts, found, base.content_key)
            assignment, changes = engine.process(article, vector, stamp / 1000.0, evidence)
            if assignment is None:
                continue
            assignments.append(assignment)
            merges.extend(changes.merges)
            story_id = assignment.story_id
            for merge in changes.merges:
                members[merge.story_id].extend(members.pop(merge.absorbed_id, []))
                absorbed = profiles.pop(merge.absorbed_id, None)
                if absorbed is not None:
                    profiles.setdefault(merge.story_id, Profile()).absorb(absorbed)
            if assignment.decision == "joined" and members[story_id]:
                labels = Counter(gold[m] for m in members[story_id])
                before = Profile()
                before.absorb(profiles.get(story_id, Profile()))
                right = gold[article.id] == labels.most_common(1)[0][0]
                seed = gold[article.id] not in labels
                joins.append(Join(right, seed, article.id, list(members[story_id]), mine, before))
            members[story_id].append(article.id)
            profiles.setdefault(story_id, Profile()).add(mine.all)
    return ClusterRun(assignments, [], 0.0, 0.0, merges), joins


def measure(part: Part, rule: Rule, ner: dict[str, Ner]) -> dict[str, float]:
    _, gold, pairs = part
    clustered, _ = run(part, rule, ner)
    final = clustered.final_story_ids()
    ids = list(final)
    s = score([gold[i] for i in ids], [final[i] for i in ids])
    p = score_pairs(pairs, final)
    kind = p.accuracy_by_kind
    return {
        "f1": s.f1,
        "p": s.precision,
        "r": s.recall,
        "pairs": p.accuracy,
        "hard": kind.get("same_kind", (0, 0.0))[1],
        "same": kind.get("same", (0, 0.0))[1],
        "merges": len(clustered.merges),
    }


def cell(m: dict[str, float]) -> str:
    return f"{m['f1']:.4f} / {m['pairs']:.4f} / {m['hard']:.3f}"


def shadow(parts: dict[tuple[str, Any], Part], ner: dict[str, Ner]) -> None:
    print(
        "accepted joins of the default engine that a veto of one type would remove (right / wrong)"
    )
    for name in FILES:
        for where in (0, 1):
            _, joins = run(parts[name, where], Rule(), ner)
            right = sum(j.right for j in joins)
            print(
                f"  {name} h{where}: {len(joins)} joins, {right} right, "
                f"{len(joins) - right} wrong ({sum(j.seed for j in joins)} seeds); per type: "
                "right/wrong removed (seeds among the wrong)"
            )
            for scope in ("all", "title"):
                for against in ("all", "core"):
                    cells = []
                    for t in (*TYPES, "any3"):
                        types = ("person", "place", "year") if t == "any3" else (t,)
                        hit = [
                            j
                            for j in joins
                            if conflicts(
                                j.ner.title if scope == "title" else j.ner.all,
                                j.profile,
                                types,
                                against == "core",
                            )
                        ]
                        ok = sum(j.right for j in hit)
                        seeds = sum(j.seed for j in hit)
                        cells.append(f"{t} {ok}/{len(hit) - ok} ({seeds})")
                    print(f"    article {scope:5} vs story {against:4}: " + ", ".join(cells))


def seeds(parts: dict[tuple[str, Any], Part], ner: dict[str, Ner]) -> None:
    """Every seed join of the default engine on ECB+: the article's keys against the story's."""
    shown = ("person", "place", "org", "year", "decimal")
    for where in (0, 1):
        stream, gold, _ = parts["ecbplus", where]
        titles = {a.id: a.title for a in stream.articles}
        _, joins = run(parts["ecbplus", where], Rule(), ner)
        for j in joins:
            if not j.seed:
                continue
            print(
                f"  h{where} {j.article_id} ({gold[j.article_id]}) joined a story of "
                f"{len(j.members)} ({Counter(gold[m] for m in j.members).most_common(2)}): "
                f"{titles[j.article_id][:90]!r}"
            )
            for t in shown:
                mine = sorted(j.ner.all.get(t, ()))
                core = sorted(j.profile.keys(t, True))
                every = sorted(j.profile.keys(t, False) - set(core))
                print(f"      {t}: article {mine[:8]} | story core {core[:8]} + other {every[:8]}")


GRID = [
    "default",
    *[f"names=ner/entity_min={m}/entity_share={s}" for m in (3, 6) for s in (0.05, 0.1, 0.2)],
    *[f"names=both/entity_share={s}" for s in (0.1, 0.15)],
    *[
        f"veto={v}/scope={sc}/against={ag}"
        for v in ("person", "place", "year", "decimal", "person+place+year", "person+year")
        for sc in ("all", "title")
        for ag in ("all", "core")
    ],
    "veto=person+place+org+year/need=2",
    "veto=person+place+year/pen=0.1",
    "veto=person+place+year/pen=0.2",
    "merge=person+place+year",
    "merge=person+place+org+year",
    # Second round (after the first grid's h0 numbers): the veto only for articles with many
    # typed keys (full articles; UCI headlines are left to the engine's own check).
    *[f"veto=person/scope=title/against={ag}/min={m}" for ag in ("all", "core") for m in (6, 12)],
    "veto=person/scope=title/against=core/min=9",
    "veto=person/scope=title/against=core/min=15",
    *[f"veto=person/scope=title/against=all/min={m}" for m in (9, 15, 20)],
    "veto=place/against=core/min=6",
    "veto=place/against=core/min=12",
    "veto=place/against=all/min=12",
    "veto=person+place/scope=title/against=all/min=12",
    "veto=person+place+year/scope=title/against=all/min=12",
    *[f"veto=person+place+year/against=core/min={m}" for m in (6, 12, 20)],
    "veto=person+place+year/pen=0.1/min=6",
    "veto=person+place+year/pen=0.05",
    "veto=person+place+year/pen=0.05/min=6",
    "veto=year/against=all/min=6",
    "veto=person+place+org+year/need=2/min=6",
    "names=both/entity_min=10/entity_share=0.1",
    "names=both/entity_min=10/entity_share=0.15",
    "names=ner/entity_min=8/entity_share=0.1",
    "entity_min=10",  # no NER: what raising entity_min alone does
]
# Not candidates: the ceiling (gold labels as the evidence) and the window both ways.
REFERENCE = [
    "oracle=seed",
    "oracle=wrong",
    "window_both_ways=1",
    "window_both_ways=1/veto=person+place+year/pen=0.1",
    "window_both_ways=1/oracle=seed",
]


def choose(parts: dict[tuple[str, Any], Part], ner: dict[str, Ner], rules: list[str]) -> None:
    print("h0 only (final B-cubed F1 / pairs / sibling pairs): ECB+ | UCI | pick (sum of F1s)")
    best: tuple[float, str] = (-1.0, "")
    for text in rules:
        rule = Rule.parse(text)
        ms = [measure(parts[name, 0], rule, ner) for name in FILES]
        pick = sum(m["f1"] for m in ms)
        best = max(best, (pick, text))
        print(f"  {text}: " + " | ".join(cell(m) for m in ms) + f" | {pick:.4f}", flush=True)
    print(f"best on h0: {best[1]} ({best[0]:.4f})")


def table(parts: dict[tuple[str, Any], Part], ner: dict[str, Ner], rules: list[str]) -> None:
    print("cells: final B-cubed F1 / pairs / sibling pairs [P, same-event pairs]")
    print("ECB+ h0 | h1 | all | UCI h0 | h1 | all")
    for text in rules:
        rule = Rule.parse(text)
        cells = []
        for name in FILES:
            for where in WHERE:
                m = measure(parts[name, where], rule, ner)
                cells.append(cell(m) + f" [{m['p']:.4f}, {m['same']:.3f}]")
        print(f"  {text}: " + " | ".join(cells), flush=True)


def speed() -> None:
    """The encoder's side of the NER cost: the default model over the UCI dev headlines, in
    batches of 32 (compare with bench/ner_cache.py's headlines/s, run right after)."""
    import time

    from config.settings import load_settings
    from streams.engine.embedding import Embedder
    from streams.engine.offline import read_jsonl

    settings = load_settings()
    embedder = Embedder("all-MiniLM-L6-v2", model_dir=settings.model_dir)
    titles = [str(r["title"]) for r in read_jsonl(ROOT / "data" / "uci-headlines-dev.jsonl")]
    embedder.encode(titles[:32])
    started = time.perf_counter()
    for start in range(0, len(titles), 32):
        embedder.encode(titles[start : start + 32])
    seconds = time.perf_counter() - started
    print(
        f"all-MiniLM-L6-v2: {len(titles)} headlines in {seconds:.1f} s: "
        f"{len(titles) / seconds:.0f} headlines/s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, required=True, help="embeddings (encoder_quality)")
    parser.add_argument("--ner", type=Path, required=True, help="bench/ner_cache.py's output")
    parser.add_argument("--model", default="all-MiniLM-L6-v2")
    parser.add_argument("--rules", default=None, help="comma-separated; default: the grid")
    parser.add_argument("what", nargs="*", default=["shadow", "choose"])
    args = parser.parse_args()
    if args.what == ["speed"]:
        speed()
        return
    parts = load(args.cache, args.model)
    ner = read_ner(args.ner)
    rules = args.rules.split(",") if args.rules else GRID + REFERENCE
    for what in args.what:
        print(f"== {what} ({args.model})", flush=True)
        if what == "shadow":
            shadow(parts, ner)
        elif what == "seeds":
            seeds(parts, ner)
        elif what == "choose":
            choose(parts, ner, rules)
        elif what == "table":
            table(parts, ner, rules)


if __name__ == "__main__":
    main()
