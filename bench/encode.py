"""Raw embedding throughput (texts/s) of all-MiniLM-L6-v2 on this CPU, by batch size.

Why: embedding is the pipeline's cost; this is the ceiling the Kafka pipeline is judged
against (bench/pipeline.py) and the basis for choosing STORYWATCH_EMBED_BATCH_SIZE.

The model is loaded once through the project's own ``Embedder`` (load() before timing, one
warm-up batch per kind), then the SAME texts are encoded at every batch size, for
- headlines: titles from data/uci-headlines-dev.jsonl (fallback: the bundled
  sample streams/samples/uci-headlines-sample.jsonl);
- full articles: "title. text" cut at 2,000 chars (settings.embed_max_chars, exactly
  ``Article.embed_text``) from data/ecbplus-dev.jsonl.
Each batch size sees the texts cut into consecutive batches of that size, each batch one
``Embedder.encode`` call, as the embed agent does.

Run: .venv/bin/python bench/encode.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from config.settings import Settings  # noqa: E402
from streams.engine.embedding import Embedder  # noqa: E402
from streams.engine.offline import read_jsonl  # noqa: E402
from streams.engine.validation import article_from_mapping  # noqa: E402

UCI = Path("data/uci-headlines-dev.jsonl")
UCI_FALLBACK = ROOT / "streams/samples/uci-headlines-sample.jsonl"
ECB = Path("data/ecbplus-dev.jsonl")
BATCH_SIZES = (1, 8, 16, 32, 64, 128)


def texts(kind: str, count: int) -> list[str]:
    """The texts the embed agent would encode for the first ``count`` articles of a file."""
    path = (UCI if UCI.exists() else UCI_FALLBACK) if kind == "headlines" else ECB
    articles = [article_from_mapping(row) for row in read_jsonl(path)[:count]]
    return [a.embed_text(Settings().embed_max_chars) for a in articles]


def throughput(embedder: Embedder, items: list[str], batch_size: int) -> float:
    """texts/s encoding ``items`` in consecutive batches of ``batch_size``."""
    embedder.batch_size = batch_size
    started = time.perf_counter()
    for start in range(0, len(items), batch_size):
        embedder.encode(items[start : start + batch_size])
    return len(items) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer texts, < 1 minute")
    args = parser.parse_args()
    import torch

    # Why these counts: on this 2-core CPU all-MiniLM-L6-v2 does ~50-100 headlines/s and
    # ~5-10 full articles/s; 6 batch sizes must fit the time box (quick: 64 and 128 get one
    # partial batch of articles).
    counts = (
        {"headlines": 96, "articles": 16} if args.quick else {"headlines": 256, "articles": 128}
    )
    embedder = Embedder()
    embedder.load()
    print(
        f"torch {torch.__version__}: {torch.get_num_threads()} intra-op threads, "
        f"{torch.get_num_interop_threads()} inter-op; nproc {os.cpu_count()}; "
        f"loadavg {os.getloadavg()[0]:.1f} at start"
    )
    results: dict[str, dict[int, float]] = {}
    for kind, count in counts.items():
        items = texts(kind, count)
        chars = sum(map(len, items)) / len(items)
        print(f"{kind}: {len(items)} texts, mean {chars:.0f} chars")
        embedder.batch_size = 32
        embedder.encode(items[:32])  # warm-up
        results[kind] = {}
        for bs in BATCH_SIZES:
            results[kind][bs] = throughput(embedder, items, bs)
            print(f"  raw: {kind} batch {bs}: {results[kind][bs]:.1f} texts/s", flush=True)
        if not args.quick:  # side by side: the same batch with torch limited to 1 thread
            threads = torch.get_num_threads()
            torch.set_num_threads(1)
            one = throughput(embedder, items, 32)
            torch.set_num_threads(threads)
            print(
                f"  raw: {kind} batch 32, torch 1 thread: {one:.1f} texts/s "
                f"({one / results[kind][32]:.2f}x the {threads}-thread figure)",
                flush=True,
            )
    print(f"loadavg {os.getloadavg()[0]:.1f} at end")

    print(
        "\n| batch size | headlines texts/s | full articles texts/s | "
        "headlines vs batch 1 | articles vs batch 1 |"
    )
    print("|---:|---:|---:|---:|---:|")
    for bs in BATCH_SIZES:
        h, a = results["headlines"][bs], results["articles"][bs]
        print(
            f"| {bs} | {h:.1f} | {a:.1f} | {h / results['headlines'][1]:.2f}x "
            f"| {a / results['articles'][1]:.2f}x |"
        )


if __name__ == "__main__":
    main()
