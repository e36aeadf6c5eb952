"""Research only: Stanford CoreNLP named entities and SUTime-normalised dates of the dev files.

Why: the alternative to spaCy in issue 23's registry probe. CoreNLP 4.5.10 (GPL-3.0, Maven
Central) normalises DATE mentions against a document date ("Saturday" -> 2008-12-13), which
spaCy does not. This writes the same cache format as ``bench/ner_cache.py`` (labels mapped to
spaCy's: PERSON, LOCATION -> GPE, ORGANIZATION -> ORG, MISC -> NORP, NUMBER -> CARDINAL; a
DATE's text is its normalised value, so the years ``bench/ner_evidence.py`` reads are the
resolved ones). The document date is the article's ``published_at``, or the replay date the
engine uses (the previous dated article's; ``replay_timestamps``).

Not a project dependency (GPL): a local server under /tmp, started and stopped by hand:

    mvn dependency:get -Dartifact=edu.stanford.nlp:stanford-corenlp:4.5.10:jar:models ...
    cd /tmp/corenlp && nice -n 10 java -mx3g -cp 'lib/*' \
        edu.stanford.nlp.pipeline.StanfordCoreNLPServer -port PORT -timeout 120000 &
    .venv/bin/python bench/ner_cache_corenlp.py --port PORT --out /tmp/ner-cache-corenlp
"""

from __future__ import annotations

import argparse
import json
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FILES = ("ecbplus-dev", "uci-headlines-dev")
MAX_CHARS = 2000  # why: Settings.embed_max_chars' default, what the model reads of an article
LABELS = {
    "PERSON": "PERSON",
    "LOCATION": "GPE",
    "ORGANIZATION": "ORG",
    "MISC": "NORP",
    "NUMBER": "CARDINAL",
    "DATE": "DATE",
}
# Why muc.7class only: the registry probe measured it twice as fast as the three default CRFs
# (84 vs 43 headlines/s) with the same PERSON / ORGANIZATION / LOCATION / DATE classes.
MODEL = "edu/stanford/nlp/models/ner/english.muc.7class.distsim.crf.ser.gz"


def embed_text(row: dict[str, Any]) -> str:
    title, text = str(row.get("title") or ""), str(row.get("text") or "")
    body = f"{title}. {text}" if text else title
    return body[:MAX_CHARS]


def doc_dates(rows: list[dict[str, Any]]) -> list[str]:
    """Each row's own date, else the previous one's (the first date of the file at first)."""
    first = next((str(r["published_at"]) for r in rows if r.get("published_at")), "2014-01-01")
    current, out = first[:10], []
    for row in rows:
        if row.get("published_at"):
            current = str(row["published_at"])[:10]
        out.append(current)
    return out


def annotate(port: int, text: str, date: str) -> dict[str, Any]:
    props = {
        "annotators": "tokenize,ssplit,pos,lemma,ner",
        "ner.applyFineGrained": "false",
        "ner.model": MODEL,
        "outputFormat": "json",
        "date": date,
    }
    url = f"http://127.0.0.1:{port}/?properties=" + urllib.parse.quote(json.dumps(props))
    request = urllib.request.Request(url, data=text.encode())
    with urllib.request.urlopen(request, timeout=300) as response:  # noqa: S310 - localhost only
        result: dict[str, Any] = json.loads(response.read())
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    annotate(args.port, "Warm up: Barack Obama visited Paris on Monday.", "2014-01-01")
    for stem in FILES:
        rows = [json.loads(line) for line in (ROOT / "data" / f"{stem}.jsonl").open()]
        started, tokens = time.perf_counter(), 0
        with (args.out / f"{stem}.jsonl").open("w") as out:
            for row, date in zip(rows, doc_dates(rows), strict=True):
                doc = annotate(args.port, embed_text(row), date)
                ents = []
                for sentence in doc["sentences"]:
                    tokens += len(sentence["tokens"])
                    for m in sentence.get("entitymentions", []):
                        label = LABELS.get(m["ner"])
                        if label is None:
                            continue
                        if label in ("PERSON", "GPE", "ORG") and m["text"].islower():
                            continue  # pronoun mentions ("he" as a PERSON): not a name
                        text = m.get("normalizedNER") if label == "DATE" else None
                        begin, end = m["characterOffsetBegin"], m["characterOffsetEnd"]
                        ents.append([text or m["text"], label, begin, end])
                title = str(row.get("title") or "")
                out.write(json.dumps({"id": row["id"], "title_chars": len(title), "ents": ents}))
                out.write("\n")
        seconds = time.perf_counter() - started
        print(
            f"{stem}: {len(rows)} articles, {tokens} tokens in {seconds:.1f} s: "
            f"{len(rows) / seconds:.1f} articles/s, {tokens / seconds:.0f} tokens/s",
            flush=True,
        )


if __name__ == "__main__":
    main()
