"""`storywatch cluster` and `eval`: the pipeline's stages over a file, no Kafka."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from config.settings import Settings, load_settings
from streams.cli.errors import clean_errors

__all__ = ["cluster", "evaluate"]


def _embed_file(file: Path, settings: Settings) -> tuple[list[dict[str, Any]], Any]:
    from streams.engine.embedding import Embedder
    from streams.engine.offline import embed_rows, read_jsonl
    from streams.stages.embed import Limits

    rows = read_jsonl(file)
    embedder = Embedder.from_settings(settings.embed)
    embedder.load()  # before the clock starts: articles/s measures the stream, not start-up
    with click.progressbar(length=len(rows), label="embedding", file=sys.stderr) as bar:
        stream = embed_rows(
            rows,
            embedder,
            limits=Limits.from_settings(settings.embed),
            batch_size=settings.embed_batch_size,
            progress=bar.update,
        )
    for number, reason in stream.invalid:
        click.echo(f"skipped row {number}: {reason} (the worker sends it to the DLQ)", err=True)
    return rows, stream


def _run_offline(file: Path, settings: Settings) -> tuple[list[dict[str, Any]], Any]:
    from streams.engine.clustering import ClusterParams
    from streams.engine.offline import cluster_stream

    rows, stream = _embed_file(file, settings)
    return rows, cluster_stream(stream, ClusterParams.from_settings(settings.engine))


@click.command()
@click.argument("file", type=click.Path(path_type=Path))
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    required=True,
    help="Output JSONL: {id, story_id, dup_group_id} per article.",
)
@clean_errors
def cluster(file: Path, out: Path) -> None:
    """Cluster a JSONL file offline (no Kafka), same engine and defaults as the worker."""
    _, run = _run_offline(file, load_settings())
    final = run.final_story_ids()  # merged stories followed (STORYWATCH_MERGE_BRIDGES)
    with out.open("w", encoding="utf-8") as handle:
        for a in run.assignments:
            handle.write(
                json.dumps(
                    {
                        "id": a.article_id,
                        "story_id": final[a.article_id],
                        "dup_group_id": a.dup_group_id,
                    }
                )
                + "\n"
            )
    merged = f", {len(run.merges)} merged" if run.merges else ""
    click.echo(
        f"{len(run.assignments)} articles -> {len(set(final.values()))} "
        f"stories{merged} in {out} ({len(run.assignments) / max(run.seconds, 1e-9):.1f} articles/s)"
    )


# Why this grid: the story bar from loose (0.35) to strict (0.75) around the default, fine
# enough (0.05) to show how flat the optimum is. (The near-duplicate bar only splits groups
# inside a story, so it cannot change these scores.)
_SWEEP_STORY = (0.35, 0.40, 0.45, 0.50, 0.55, 0.60, 0.65, 0.70, 0.75)


@click.command("eval")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--sweep", is_flag=True, help="Also score a grid of the main thresholds.")
@click.option(
    "--pairs",
    "pairs_file",
    type=click.Path(path_type=Path),
    default=None,
    help="Also score judged pairs: JSONL of {a, b, same_story} naming FILE's article ids "
    "(bench/derive_pairs.py makes them from a labeled file).",
)
@clean_errors
def evaluate(file: Path, sweep: bool, pairs_file: Path | None) -> None:
    """Cluster a labeled JSONL file offline and score it against its `label` field."""
    from dataclasses import replace

    from streams.engine.clustering import ClusterParams
    from streams.engine.evaluation import score
    from streams.engine.offline import cluster_stream
    from streams.engine.pairs import read_pairs, score_pairs
    from streams.exceptions import InputFileError

    settings = load_settings()
    pairs = read_pairs(pairs_file) if pairs_file is not None else None  # fail before embedding
    rows, stream = _embed_file(file, settings)
    gold = {str(r["id"]): r.get("label") for r in rows}
    if any(gold[a.id] is None for a in stream.articles):
        raise InputFileError(f"{file}: some articles have no 'label'; eval needs labeled data")
    params = ClusterParams.from_settings(settings.engine)
    run = cluster_stream(stream, params)
    ids = [a.article_id for a in run.assignments]
    scores = score([str(gold[i]) for i in ids], [a.story_id for a in run.assignments])
    n = len(run.assignments)
    lines = [
        ("file", str(file)),
        ("articles", str(n)),
        ("stories (gold)", f"{scores.stories} ({scores.gold_stories})"),
        ("B-cubed precision", f"{scores.precision:.4f}"),
        ("B-cubed recall", f"{scores.recall:.4f}"),
        ("B-cubed F1", f"{scores.f1:.4f}"),
        ("AMI", f"{scores.ami:.4f}"),
        ("ARI", f"{scores.ari:.4f}"),
        ("articles/s", f"{n / max(run.seconds, 1e-9):.1f}"),
        ("clustering articles/s", f"{n / max(run.cluster_seconds, 1e-9):.0f}"),
    ]
    final = run.final_story_ids()
    if params.merge_bridges > 0:  # the lines above: at arrival; these: after the merges
        end = score([str(gold[i]) for i in ids], [final[i] for i in ids])
        lines += [
            ("merges", str(len(run.merges))),
            ("final stories", str(end.stories)),
            ("final B-cubed precision", f"{end.precision:.4f}"),
            ("final B-cubed recall", f"{end.recall:.4f}"),
            ("final B-cubed F1", f"{end.f1:.4f}"),
            ("final AMI", f"{end.ami:.4f}"),
            ("final ARI", f"{end.ari:.4f}"),
        ]
    if pairs is not None:  # judged on the final stories
        judged = score_pairs(pairs, final)
        lines += [
            ("pairs", f"{judged.pairs} ({judged.missing} naming unassigned articles skipped)"),
            ("pair accuracy", f"{judged.accuracy:.4f}"),
            ("different-events precision", f"{judged.different_precision:.4f}"),
            ("different-events recall", f"{judged.different_recall:.4f}"),
        ]
        lines += [
            (f"accuracy, {kind or 'unlabeled'} pairs", f"{acc:.4f} ({count})")
            for kind, (count, acc) in judged.accuracy_by_kind.items()
        ]
    width = max(len(k) for k, _ in lines)
    for key, value in lines:
        click.echo(f"{key:<{width}}  {value}")
    if not sweep:
        return
    click.echo("\nstory_threshold  precision  recall  F1      stories")
    for story_bar in _SWEEP_STORY:
        trial = cluster_stream(stream, replace(params, story_threshold=story_bar))
        s = score(
            [str(gold[a.article_id]) for a in trial.assignments],
            [a.story_id for a in trial.assignments],
        )
        mark = "  <- default" if story_bar == params.story_threshold else ""
        click.echo(
            f"{story_bar:<16.2f} {s.precision:<10.4f} {s.recall:<7.4f} {s.f1:<7.4f} "
            f"{s.stories}{mark}"
        )
