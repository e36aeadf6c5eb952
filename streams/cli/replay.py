"""``storywatch replay``: backtest settings and alert rules on the history in Kafka."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from streams.cli.errors import clean_errors

__all__ = ["replay", "summary_lines"]


def summary_lines(summary: dict[str, Any]) -> list[str]:
    """The end-of-run summary a person reads (summary.json holds all of it)."""
    source = summary.get("source", {})
    lines = [
        f"source           {source.get('topic')} ({source.get('why')})",
        f"window           {source.get('window')}",
        f"articles         {summary['articles_read']} read, {summary['articles_processed']} "
        f"assigned, {summary['exact_resends']} exact re-sends, {summary['skipped']} skipped",
        f"stories formed   {summary['stories_new']} new ({summary['stories']} touched)",
        f"speed            {summary['articles_per_second']:.0f} articles/s "
        f"({summary['seconds']:.1f} s)",
    ]
    if summary.get("overrides"):
        sets = ", ".join(f"{k}={v}" for k, v in summary["overrides"].items())
        lines.append(f"overrides        {sets}")
    for rule, count in summary["alerts_by_rule"].items():
        lines.append(f"alerts [{rule}]{' ' * max(1, 8 - len(rule))}{count}")
    matched = summary.get("subscriptions")
    if matched:
        lines.append(
            f"subscriptions    {matched['alerts']} alerts from {matched['matched_against']} "
            "subscriptions (not delivered)"
        )
    lines.append("top stories:")
    for story in summary["top_stories"]:
        lines.append(
            f"  {story['size']:>5}  {story['source_count']:>3} src  {story['story_id']}  "
            f"{story['headline'][:80]}"
        )
    diff = summary.get("compare")
    if diff:
        lines += [
            "compared with the live run over the same window:",
            f"  articles compared      {diff['articles_compared']} "
            f"(same story: {diff['same_story']}; only in replay: "
            f"{diff['articles_only_in_replay']}, only live: {diff['articles_only_live']})",
            f"  live stories split     {diff['stories_split']}",
            f"  live stories merged    {diff['stories_merged']}",
            f"  alerts in both         {diff['alerts_both']}",
            f"  would fire, did not    {len(diff['alerts_only_in_replay'])}",
            f"  fired, would not       {len(diff['alerts_only_live'])}",
        ]
        for kind, key in (("would fire", "alerts_only_in_replay"), ("fired", "alerts_only_live")):
            for alert in diff[key][:5]:
                lines.append(f"    {kind}: {alert['story']}  {alert['headline'][:70]}")
    return lines


@click.command()
@click.option("--from", "start", required=True, help="Start: 2026-12-01T10:00:00Z, 2026-12-01, 7d.")
@click.option("--to", "end", default="now", show_default=True, help="End (exclusive), same forms.")
@click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="NAME=VALUE",
    help="Override a setting for this run (story_threshold=0.45, emerging_min_articles=3).",
)
@click.option(
    "--rules",
    type=click.Path(path_type=Path),
    default=None,
    help='JSON {"rules": [{name, min_articles, min_sources, window_hours}]}: run these '
    "emerging rules instead of the configured one.",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("replay-out"),
    show_default=True,
    help="Folder for stories.jsonl, alerts.jsonl, summary.json.",
)
@click.option("--compare", is_flag=True, help="Diff against the live run's stories and alerts.")
@click.option(
    "--subscriptions/--no-subscriptions",
    default=True,
    show_default=True,
    help="Also match the current subscriptions (their alerts go to alerts.jsonl).",
)
@click.option("--json", "as_json", is_flag=True, help="Print summary.json instead of a table.")
@clean_errors
def replay(  # noqa: PLR0917 - click passes options positionally
    start: str,
    end: str,
    sets: tuple[str, ...],
    rules: Path | None,
    out: Path,
    compare: bool,
    subscriptions: bool,
    as_json: bool,
) -> None:
    """Re-run the engine and alert rules over a time range of Kafka history, isolated: no
    consumer group, nothing written to Kafka; outputs go to --out."""
    import json

    from config.settings import load_settings
    from streams.engine.emerging import EmergingRule
    from streams.kafka.connection import KafkaConnection
    from streams.kafka.diagnosis import check_connection
    from streams.replay.overrides import apply_overrides, load_rules, parse_overrides
    from streams.replay.run import ReplayRequest, run_replay
    from streams.time_ranges import parse_range

    live = load_settings()
    overrides = parse_overrides(sets)
    settings = apply_overrides(live, overrides)
    window = parse_range(start, end)
    check_connection(
        KafkaConnection.from_settings(live.kafka)
    )  # TLS and login: fail fast, say what
    run_rules = load_rules(rules) if rules else [EmergingRule.from_settings(settings.alerts)]
    request = ReplayRequest(
        settings=settings,
        live=live,
        window=window,
        rules=run_rules,
        out_dir=out,
        compare=compare,
        overrides=overrides,
        subscriptions=subscriptions,
    )
    summary, _ = run_replay(request, lambda line: click.echo(line, err=True))
    if as_json:
        click.echo(json.dumps(summary, sort_keys=True))
    else:
        for line in summary_lines(summary):
            click.echo(line)
        click.echo(f"outputs in {out}/ (stories.jsonl, alerts.jsonl, summary.json)")
    sys.stdout.flush()
