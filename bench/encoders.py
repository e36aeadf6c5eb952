"""Raw encode speed and memory of every model STORYWATCH_MODEL can name, side by side.

Why: issue 23 asks what each encoder costs before one is chosen (docs/BENCHMARKS.md,
"Encoders"). Each model runs in its own child process (so one's memory does not count
against the next): load, one warm-up batch, then ``Embedder.encode`` over the same texts in
batches of 32, as the embed agent calls it:
- headlines: the first 256 UCI dev titles (the packaged sample if data/ is absent);
- full articles: the first 64 ECB+ dev "title. text" cut to STORYWATCH_EMBED_MAX_CHARS, at
  max tokens 128 and 256 (headlines are shorter than 128 word pieces: one run).
Memory: the child's resident set after loading and its peak (ru_maxrss) after encoding.
Each rate is given twice: per second of wall time and per second of the process's CPU time
(time.process_time: what a text costs, much less sensitive to other jobs on shared cores),
with the models' threads fixed (``--threads``, default 1: no idle-thread spinning counted).

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

DATA = ROOT / "data"  # the labeled dev streams, in the repository
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
    headlines = [r["title"] for r in rows][: 64 if quick else 256]
    ecb = DATA / "ecbplus-dev.jsonl"
    max_chars = load_settings().embed_max_chars
    articles = []
    if ecb.exists():
        for line in ecb.read_text().splitlines()[: 16 if quick else 64]:
            r = json.loads(line)
            articles.append(f"{r['title']}. {r['text']}"[:max_chars])
    return headlines, articles


def _rate(model: str, texts: list[str], max_tokens: int | None, threads: int) -> str:
    """'wall texts/s (CPU texts/s)' of Embedder.encode in consecutive batches."""
    from streams.engine.embedding import Embedder

    embedder = Embedder(model, batch_size=BATCH, max_tokens=max_tokens, threads=threads)
    embedder.encode(texts[:BATCH])  # load + warm-up
    started, cpu = time.perf_counter(), time.process_time()
    for start in range(0, len(texts), BATCH):
        embedder.encode(texts[start : start + BATCH])
    wall, used = time.perf_counter() - started, time.process_time() - cpu
    return f"{len(texts) / wall:.1f} ({len(texts) / used:.1f})"


def child(model: str, quick: bool, threads: int) -> dict[str, float | str]:
    from streams.engine.embedding import Embedder

    headlines, articles = _texts(quick)
    before = _rss_mib()
    started = time.perf_counter()
    Embedder(model, threads=threads).load()
    loaded = {"load_s": time.perf_counter() - started, "rss_loaded_mib": _rss_mib() - before}
    result: dict[str, float | str] = {
        **loaded,
        "headlines_per_s": _rate(model, headlines, None, threads),
    }
    for tokens in (128, 256):
        if articles:
            result[f"articles_{tokens}_per_s"] = _rate(model, articles, tokens, threads)
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer texts (a smoke run)")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--threads", type=int, default=1, help="the model's threads")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.quick, args.threads)))
        return
    print(
        "| model | load s | RSS after load MiB | peak RSS MiB | headlines/s wall (CPU) | "
        "articles/s, 128 tokens, wall (CPU) | articles/s, 256 tokens, wall (CPU) |"
    )
    print("|---|---|---|---|---|---|---|")
    for model in args.models.split(","):
        cmd = [sys.executable, __file__, "--child", model, "--threads", str(args.threads)]
        cmd += ["--quick"] if args.quick else []
        done = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=ROOT)
        if done.returncode != 0:
            print(f"| {model} | failed: {done.stderr.strip().splitlines()[-1:]} |")
            continue
        r = json.loads(done.stdout.strip().splitlines()[-1])
        print(
            f"| {model} | {r['load_s']:.1f} | {r['rss_loaded_mib']:.0f} | "
            f"{r['peak_rss_mib']:.0f} | "
            f"{r['headlines_per_s']} | {r.get('articles_128_per_s', '-')} | "
            f"{r.get('articles_256_per_s', '-')} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
