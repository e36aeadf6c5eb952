"""Raw encode speed and memory of every model STORYWATCH_MODEL can name, side by side.

Why: issue 23 asks what each encoder costs before one is chosen (docs/BENCHMARKS.md,
"Encoders"). Each model runs in its own child process (so one's memory does not count
against the next): load, one warm-up batch, then ``Embedder.encode`` over the same texts in
batches of 32, as the embed agent calls it:
- headlines: the first 512 UCI dev titles (the packaged sample if ../shared is absent);
- full articles: the ECB+ dev "title. text" cut to STORYWATCH_EMBED_MAX_CHARS (2,000), at
  max tokens 128 and 256 (headlines are shorter than 128 word pieces: one run).
Memory: the child's resident set after loading and its peak (ru_maxrss) after encoding.

Run: nice -n 10 .venv/bin/python bench/encoders.py [--quick] [--models a,b]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DATA = ROOT.parent / "shared" / "data"
SAMPLE = ROOT / "streams" / "samples" / "uci-headlines-sample.jsonl"
MODELS = (
    "all-MiniLM-L6-v2",
    "bge-small-en-v1.5",
    "bge-small-en-v1.5-int8",
    "e5-small-v2",
    "all-MiniLM-L6-v2+bge-small-en-v1.5",
)
BATCH = 32


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _texts(quick: bool) -> tuple[list[str], list[str]]:
    from config.settings import load_settings

    uci = DATA / "uci-headlines-dev.jsonl"
    rows = [json.loads(line) for line in (uci if uci.exists() else SAMPLE).read_text().splitlines()]
    headlines = [r["title"] for r in rows][: 128 if quick else 512]
    ecb = DATA / "ecbplus-dev.jsonl"
    max_chars = load_settings().embed_max_chars
    articles = []
    if ecb.exists():
        for line in ecb.read_text().splitlines()[: 32 if quick else 128]:
            r = json.loads(line)
            articles.append(f"{r['title']}. {r['text']}"[:max_chars])
    return headlines, articles


def _rate(model: str, texts: list[str], max_tokens: int | None) -> float:
    from streams.engine.embedding import Embedder

    embedder = Embedder(model, batch_size=BATCH, max_tokens=max_tokens)
    embedder.encode(texts[:BATCH])  # load + warm-up
    started = time.perf_counter()
    for start in range(0, len(texts), BATCH):
        embedder.encode(texts[start : start + BATCH])
    return len(texts) / (time.perf_counter() - started)


def child(model: str, quick: bool) -> dict[str, float]:
    from streams.engine.embedding import Embedder

    headlines, articles = _texts(quick)
    before = _rss_mib()
    started = time.perf_counter()
    Embedder(model).load()
    loaded = {"load_s": time.perf_counter() - started, "rss_loaded_mib": _rss_mib() - before}
    result = {**loaded, "headlines_per_s": _rate(model, headlines, None)}
    for tokens in (128, 256):
        if articles:
            result[f"articles_{tokens}_per_s"] = _rate(model, articles, tokens)
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer texts (a smoke run)")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.quick)))
        return
    print(
        "| model | load s | RSS after load MiB | peak RSS MiB | headlines/s | "
        "articles/s (128 tokens) | articles/s (256 tokens) |"
    )
    print("|---|---|---|---|---|---|---|")
    for model in args.models.split(","):
        cmd = [sys.executable, __file__, "--child", model] + (["--quick"] if args.quick else [])
        done = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=ROOT)
        if done.returncode != 0:
            print(f"| {model} | failed: {done.stderr.strip().splitlines()[-1:]} |")
            continue
        r = json.loads(done.stdout.strip().splitlines()[-1])
        print(
            f"| {model} | {r['load_s']:.1f} | {r['rss_loaded_mib']:.0f} | "
            f"{r['peak_rss_mib']:.0f} | "
            f"{r['headlines_per_s']:.0f} | {r.get('articles_128_per_s', float('nan')):.1f} | "
            f"{r.get('articles_256_per_s', float('nan')):.1f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
