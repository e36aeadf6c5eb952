"""Encoders x engine variants on the labeled dev files, chosen on one half, confirmed on the other.

Why: issue 23 asks which encoder (the default all-MiniLM-L6-v2, bge-small-en-v1.5, its int8
version, e5-small-v2, and MiniLM+bge) and which sibling-event evidence to ship, chosen
honestly: every constant on half 0 of each dev file (halves by a hash of the ECB+ topic,
both sibling events of a topic in one half, and of the UCI story label; the same rule as
bench/quality_experiments.py), confirmed on half 1, then the whole files; B-cubed F1 and
the judged pairs (bench/pairs), next to a plain cosine threshold on the same pairs.

Embeddings are cached per model (``--cache DIR``: ``DIR/<model>/<file>.pkl``), embedded once
with the project's Embedder exactly as ``storywatch eval`` does; a combination ``A+B`` is
built from its parts' cached vectors (concatenated / sqrt 2, as the Embedder does).

Each encoder's cosines sit on its own scale (unrelated headlines: ~0.1 on MiniLM, ~0.4 on
bge, ~0.75 on e5), so the engine's cosine bars (story 0.35, near-duplicate 0.9, override 0.9,
merge 0.8) are carried to a model by the affine map that sends MiniLM's median unrelated-
pair cosine to the model's and 1 to 1 (``--calibrate`` prints the medians, measured on half
0's different-story pairs), then the story bar is swept on half 0.

Run: .venv/bin/python bench/encoder_quality.py --cache /tmp/sw-enc [calibrate sweep table]
"""

from __future__ import annotations

import argparse
import dataclasses
import pickle
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from config.settings import load_settings  # noqa: E402
from streams.engine.embedding import Embedder  # noqa: E402
from streams.engine.evaluation import score  # noqa: E402
from streams.engine.offline import EmbeddedStream, cluster_stream, embed_rows, read_jsonl  # noqa: E402
from streams.engine.pairs import JudgedPair, read_pairs, score_pairs  # noqa: E402
from streams.engine.params import ClusterParams  # noqa: E402
from streams.stages.embed import Limits  # noqa: E402

DATA = ROOT / "data"  # the labeled dev streams, in the repository
FILES = {"ecbplus": "ecbplus-dev", "uci": "uci-headlines-dev"}
WHERE = (0, 1, "all")
Part = tuple[EmbeddedStream, dict[str, str], list[JudgedPair]]


def _half(name: str, row: dict[str, Any]) -> int:
    from quality_experiments import _half as half

    return int(half(name, row))


def embedded(cache: Path, model: str, stem: str, rows: list[dict[str, Any]]) -> EmbeddedStream:
    units = model.split("+")
    if len(units) > 1:
        parts = [embedded(cache, unit, stem, rows) for unit in units]
        vectors = np.concatenate([p.vectors for p in parts], axis=1) / np.sqrt(len(parts))
        first = parts[0]
        return EmbeddedStream(
            first.articles, vectors.astype(np.float32), first.stamps_ms, first.invalid, 0.0
        )
    path = cache / model / f"{stem}.pkl"
    if not path.is_file():
        settings = load_settings()
        embedder = Embedder(model, model_dir=settings.model_dir)
        stream = embed_rows(
            rows, embedder, limits=Limits.from_settings(settings.embed), batch_size=32
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(pickle.dumps(stream))
    return pickle.loads(path.read_bytes())  # noqa: S301 - our own cache file


def load(cache: Path, model: str) -> dict[tuple[str, Any], Part]:
    parts: dict[tuple[str, Any], Part] = {}
    for name, stem in FILES.items():
        rows = read_jsonl(DATA / f"{stem}.jsonl")
        stream = embedded(cache, model, stem, rows)
        gold = {str(r["id"]): str(r["label"]) for r in rows}
        by_id = {str(r["id"]): r for r in rows}
        pairs = read_pairs(ROOT / "bench" / "pairs" / f"{stem}-pairs.jsonl")
        parts[name, "all"] = (stream, gold, pairs)
        for half in (0, 1):
            keep = [i for i, a in enumerate(stream.articles) if _half(name, by_id[a.id]) == half]
            ids = {stream.articles[i].id for i in keep}
            sub = EmbeddedStream(
                [stream.articles[i] for i in keep],
                stream.vectors[keep],
                [stream.stamps_ms[i] for i in keep],
                [],
                0.0,
            )
            parts[name, half] = (sub, gold, [p for p in pairs if p.a in ids and p.b in ids])
    return parts


def pair_cosines(part: Part) -> tuple[np.ndarray, np.ndarray, list[str]]:
    stream, _, pairs = part
    row = {a.id: i for i, a in enumerate(stream.articles)}
    pairs = [p for p in pairs if p.a in row and p.b in row]  # articles the file skipped
    va = stream.vectors[[row[p.a] for p in pairs]]
    vb = stream.vectors[[row[p.b] for p in pairs]]
    same = np.array([p.same_story for p in pairs])
    return (va * vb).sum(axis=1), same, [p.kind for p in pairs]


def cosine_accuracy(part: Part, threshold: float) -> float:
    cos, same, _ = pair_cosines(part)
    return float(((cos >= threshold) == same).mean())


def best_cosine_threshold(parts: list[Part]) -> float:
    grid = np.arange(0.2, 0.99, 0.005)
    return float(max(grid, key=lambda t: sum(cosine_accuracy(p, t) for p in parts)))


def unrelated_median(parts: dict[tuple[str, Any], Part]) -> float:
    """Median cosine of half 0's different-story pairs, both files."""
    values = []
    for name in FILES:
        cos, same, _ = pair_cosines(parts[name, 0])
        values.append(cos[~same])
    return float(np.median(np.concatenate(values)))


def carried(params: ClusterParams, floor: float, base_floor: float) -> ClusterParams:
    """The cosine bars carried from MiniLM's scale (floor ``base_floor``) to ``floor``'s."""

    def move(t: float) -> float:
        return floor + (t - base_floor) * (1 - floor) / (1 - base_floor)

    return dataclasses.replace(
        params,
        story_threshold=move(params.story_threshold),
        dup_threshold=min(0.99, move(params.dup_threshold)),
        entity_override=move(params.entity_override),
        merge_score=move(params.merge_score),
    )


def measure(part: Part, params: ClusterParams) -> dict[str, float]:
    stream, gold, pairs = part
    run = cluster_stream(stream, params)
    final = run.final_story_ids()
    ids = list(final)
    s = score([gold[i] for i in ids], [final[i] for i in ids])
    p = score_pairs(pairs, final)
    return {
        "f1": s.f1,
        "p": s.precision,
        "r": s.recall,
        "pairs": p.accuracy,
        "hard": p.accuracy_by_kind.get("same_kind", (0, 0.0))[1],
        "merges": len(run.merges),
    }


def cell(m: dict[str, float]) -> str:
    return f"{m['f1']:.4f} / {m['pairs']:.4f} / {m['hard']:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument(
        "--models",
        default="all-MiniLM-L6-v2,bge-small-en-v1.5,"
        "bge-small-en-v1.5-int8,e5-small-v2,all-MiniLM-L6-v2+bge-small-en-v1.5",
    )
    parser.add_argument("--variants", default="default")
    parser.add_argument("--files", default=",".join(FILES), help="ecbplus,uci")
    parser.add_argument("what", nargs="*", default=["table"])
    args = parser.parse_args()
    for name in set(FILES) - set(args.files.split(",")):
        del FILES[name]
    models = args.models.split(",")
    base = load(args.cache, "all-MiniLM-L6-v2")
    base_floor = unrelated_median(base)
    for model in models:
        parts = base if model == "all-MiniLM-L6-v2" else load(args.cache, model)
        floor = unrelated_median(parts)
        print(f"== {model}: unrelated-pair median cosine {floor:.3f}", flush=True)
        if "calibrate" in args.what:
            for name in FILES:
                t = best_cosine_threshold([parts[name, 0]])
                print(
                    f"  plain cosine {name}: t {t:.3f} chosen on h0; acc h0 "
                    f"{cosine_accuracy(parts[name, 0], t):.4f} h1 "
                    f"{cosine_accuracy(parts[name, 1], t):.4f} all "
                    f"{cosine_accuracy(parts[name, 'all'], t):.4f}"
                )
        for variant in args.variants.split(","):
            params = variant_params(variant)
            if "sweep" in args.what:
                for bar in (0.25, 0.30, 0.35, 0.40, 0.45, 0.50):
                    p = carried(dataclasses.replace(params, story_threshold=bar), floor, base_floor)
                    cells = [cell(measure(parts[name, 0], p)) for name in FILES]
                    print(
                        f"  {variant} bar {bar:.2f} (-> {p.story_threshold:.3f}) h0: "
                        + " | ".join(cells),
                        flush=True,
                    )
            if "table" in args.what:
                absolute = variant.startswith("abs/") or model == "all-MiniLM-L6-v2"
                p = params if absolute else carried(params, floor, base_floor)
                cells = [cell(measure(parts[name, where], p)) for name in FILES for where in WHERE]
                print(f"  {variant}: " + " | ".join(cells), flush=True)


def variant_params(variant: str) -> ClusterParams:
    """A named variant, or ``field=value/field=value`` over the defaults (``bar`` is the story
    threshold on MiniLM's scale, carried to the model's; ``abs/...``: taken as given)."""
    if variant in VARIANTS:
        return VARIANTS[variant]
    fields: dict[str, Any] = {}
    for item in variant.removeprefix("abs/").split("/"):
        key, _, value = item.partition("=")
        key = {"bar": "story_threshold"}.get(key, key)
        if key == "merge_bridges":
            fields[key] = int(value)
        elif key == "window_both_ways":
            fields[key] = value in ("1", "true")
        else:
            fields[key] = float(value)
    return dataclasses.replace(ClusterParams(), **fields)


VARIANTS: dict[str, ClusterParams] = {
    "default": ClusterParams(),
    "no-merges": ClusterParams(merge_bridges=0),
    **{f"mes{v}": ClusterParams(merge_entity_share=v) for v in (0.2, 0.3, 0.4, 0.5, 0.7, 1.01)},
}

if __name__ == "__main__":
    main()
