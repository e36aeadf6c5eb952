"""``storywatch subscriptions``: manage alert subscriptions through a worker's HTTP API.

The click group :data:`subscriptions` prints for people, or JSON with ``--json``; the HTTP
client it drives (body building, requests, errors) is :mod:`streams.subscriptions.client`.

The bearer token is never printed: every message built here masks it. Nothing runs at import.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import IO, Any, TypeVar

import click

from streams.cli.errors import clean_errors
from streams.subscriptions.client import (
    API_TOKEN_ENV,
    API_URL_ENV,
    DEFAULT_TIMEOUT_S,
    ApiClient,
    build_body,
    load_json_body,
    parse_growth_steps,
    printable,
    resolve_base_url,
    resolve_token,
)

__all__ = ["subscriptions"]

_SIGNING_NOTE = (
    "The secret is shown only once: store it now. Receivers verify each delivery with it as "
    "Standard Webhooks do (HMAC-SHA256 of '<webhook-id>.<webhook-timestamp>.<body>' against "
    "the webhook-signature header; e.g. the `standardwebhooks` library)."
)

F = TypeVar("F", bound=Callable[..., Any])


# --- output ------------------------------------------------------------------------------


def _clip(value: object, width: int) -> str:
    text = printable(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    grid = [list(header), *(list(r) for r in rows)]
    widths = [max(len(row[i]) for row in grid) for i in range(len(header))]
    return [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in grid
    ]


def _webhook(sub: Mapping[str, Any]) -> Mapping[str, Any]:
    return _mapping(_mapping(sub.get("delivery")).get("webhook"))


def _webhook_host(sub: Mapping[str, Any]) -> str:
    """The webhook's host[:port] only: the path of a Slack-style URL is itself a secret."""
    url = _webhook(sub).get("url")
    if not isinstance(url, str):
        return "-"
    try:
        parts = urllib.parse.urlsplit(url)
        return parts.netloc.rpartition("@")[2] or "-"
    except ValueError:
        return "?"


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _filter(sub: Mapping[str, Any]) -> Mapping[str, Any]:
    return _mapping(sub.get("filter"))


def _joined(value: object) -> str:
    if isinstance(value, list | tuple):
        return ", ".join(printable(v) for v in value) or "-"
    return "-" if value is None else printable(value)


def _describe(sub: Mapping[str, Any]) -> list[tuple[str, str]]:
    filt = _filter(sub)
    keywords = _mapping(filt.get("keywords"))
    sources = _mapping(filt.get("sources"))
    hook = _webhook(sub)
    lines = [
        ("id", printable(sub.get("id"))),
        ("name", printable(sub.get("name"))),
        ("owner", printable(sub.get("owner"))),
        ("enabled", printable(sub.get("enabled"))),
        ("created_at", printable(sub.get("created_at"))),
        ("updated_at", printable(sub.get("updated_at"))),
        ("triggers", _joined(filt.get("triggers"))),
        ("growth_steps", _joined(filt.get("growth_steps"))),
        ("keywords.any", _joined(keywords.get("any"))),
        ("keywords.all", _joined(keywords.get("all"))),
        ("keywords.none", _joined(keywords.get("none"))),
        ("query", _joined(filt.get("query"))),
        ("query_threshold", _joined(filt.get("query_threshold"))),
        ("sources.allow", _joined(sources.get("allow"))),
        ("sources.deny", _joined(sources.get("deny"))),
        ("min_size", _joined(filt.get("min_size"))),
        ("min_sources", _joined(filt.get("min_sources"))),
        ("webhook", _joined(hook.get("url")) if hook else "- (Kafka alerts topic only)"),
    ]
    if hook:
        lines.append(("webhook.format", _joined(hook.get("format"))))
    return lines


def _echo_json_lines(items: Iterable[Mapping[str, Any]]) -> None:
    for item in items:
        click.echo(json.dumps(item))


# --- commands ----------------------------------------------------------------------------


_OPTIONS_KEY = "storywatch.subscriptions"


def _api_options(func: F) -> F:
    """Add ``--url``, ``--token`` and ``--timeout`` (also accepted before the command name)."""
    func = click.option(
        "--timeout",
        type=click.FloatRange(min=0.1),
        default=None,
        help=f"Seconds to wait for the worker [default: {DEFAULT_TIMEOUT_S:g}].",
    )(func)
    func = click.option(
        "--token", default=None, help=f"API bearer token [{API_TOKEN_ENV}]; never printed."
    )(func)
    return click.option(
        "--url", default=None, help=f"Worker API base URL [{API_URL_ENV}; else from settings]."
    )(func)


def _client(
    ctx: click.Context, url: str | None, token: str | None, timeout: float | None
) -> ApiClient:
    """The client for this command's options, else the group's, else the environment."""
    group: dict[str, Any] = ctx.find_root().meta.get(_OPTIONS_KEY, {})
    timeout_s = timeout if timeout is not None else group.get("timeout")
    return ApiClient(
        resolve_base_url(url if url is not None else group.get("url")),
        resolve_token(token if token is not None else group.get("token")),
        timeout_s=DEFAULT_TIMEOUT_S if timeout_s is None else timeout_s,
    )


@click.group("subscriptions")
@_api_options
@click.pass_context
def subscriptions(
    ctx: click.Context, url: str | None, token: str | None, timeout: float | None
) -> None:
    """Manage alert subscriptions through a running worker's HTTP API.

    The API is at --url, else STORYWATCH_API_URL, else http://STORYWATCH_WEB_HOST:
    STORYWATCH_WEB_PORT; the token is --token, else STORYWATCH_API_TOKEN.
    """
    ctx.find_root().meta[_OPTIONS_KEY] = {"url": url, "token": token, "timeout": timeout}


@subscriptions.command("add")
@click.option("--name", default=None, help="A name for people (required without --json-body).")
@click.option("--any", "any_phrases", multiple=True, help="Match if any such phrase appears.")
@click.option("--all", "all_phrases", multiple=True, help="Match only if every one appears.")
@click.option("--none", "none_phrases", multiple=True, help="Never match if one appears.")
@click.option("--query", default=None, help="Semantic query: stories about this text.")
@click.option("--threshold", type=float, default=None, help="Cosine bar for --query.")
@click.option("--allow-source", "allow_sources", multiple=True, help="Only these outlets.")
@click.option("--deny-source", "deny_sources", multiple=True, help="Not only these outlets.")
@click.option("--min-size", type=int, default=None, help="At least this many articles.")
@click.option("--min-sources", type=int, default=None, help="At least this many outlets.")
@click.option(
    "--trigger",
    "triggers",
    multiple=True,
    type=click.Choice(["new_story", "emerging", "growth"]),
    help="When to alert (repeatable) [API default: new_story].",
)
@click.option("--growth-steps", default=None, help="Story sizes for `growth`, e.g. 10,25,50.")
@click.option("--webhook", default=None, help="POST alerts to this https URL.")
@click.option(
    "--format",
    "webhook_format",
    type=click.Choice(["cloudevents", "slack"]),
    default=None,
    help="Webhook body format [API default: cloudevents].",
)
@click.option(
    "--json-body",
    type=click.File("r", encoding="utf-8"),
    default=None,
    help="Send this JSON file (or - for stdin) as the body, as is.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the API's answer as JSON.")
@_api_options
@click.pass_context
@clean_errors
def add(
    ctx: click.Context,
    *,
    name: str | None,
    any_phrases: tuple[str, ...],
    all_phrases: tuple[str, ...],
    none_phrases: tuple[str, ...],
    query: str | None,
    threshold: float | None,
    allow_sources: tuple[str, ...],
    deny_sources: tuple[str, ...],
    min_size: int | None,
    min_sources: int | None,
    triggers: tuple[str, ...],
    growth_steps: str | None,
    webhook: str | None,
    webhook_format: str | None,
    json_body: IO[str] | None,
    as_json: bool,
    url: str | None,
    token: str | None,
    timeout: float | None,
) -> None:
    """Create a subscription; prints its id and webhook signing secret (shown only once)."""
    source = "--json-body " + getattr(json_body, "name", "-")
    body = build_body(
        name=name,
        any_phrases=any_phrases,
        all_phrases=all_phrases,
        none_phrases=none_phrases,
        query=query,
        threshold=threshold,
        allow_sources=allow_sources,
        deny_sources=deny_sources,
        min_size=min_size,
        min_sources=min_sources,
        triggers=triggers,
        growth_steps=None if growth_steps is None else parse_growth_steps(growth_steps),
        webhook=webhook,
        webhook_format=webhook_format,
        json_body=None if json_body is None else load_json_body(json_body.read(), source),
    )
    created = _client(ctx, url, token, timeout).create(body)
    if as_json:
        click.echo(json.dumps(created, indent=2))
        return
    click.echo(
        f"created subscription {printable(created.get('id'))} ({printable(created.get('name'))})"
    )
    secret = created.get("secret")
    if secret:
        click.echo(f"secret: {printable(secret)}")
        click.echo(_SIGNING_NOTE)


@subscriptions.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@_api_options
@click.pass_context
@clean_errors
def list_(
    ctx: click.Context, *, as_json: bool, url: str | None, token: str | None, timeout: float | None
) -> None:
    """List every subscription the token owns (follows the API's pages)."""
    subs = _client(ctx, url, token, timeout).list_all()
    if as_json:
        _echo_json_lines(subs)
        return
    if not subs:
        click.echo("no subscriptions: create one with `storywatch subscriptions add`")
        return
    rows = [
        (
            printable(s.get("id")),
            _clip(s.get("name"), 40),
            "yes" if s.get("enabled", True) else "no",
            _joined(_filter(s).get("triggers")),
            _clip(_webhook_host(s), 40),
        )
        for s in subs
    ]
    for line in _table(("ID", "NAME", "ENABLED", "TRIGGERS", "WEBHOOK"), rows):
        click.echo(line)


@subscriptions.command("show")
@click.argument("subscription_id", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="The API's JSON, indented.")
@_api_options
@click.pass_context
@clean_errors
def show(
    ctx: click.Context,
    *,
    subscription_id: str,
    as_json: bool,
    url: str | None,
    token: str | None,
    timeout: float | None,
) -> None:
    """Show one subscription: its filter, triggers and webhook."""
    sub = _client(ctx, url, token, timeout).get(subscription_id)
    if as_json:
        click.echo(json.dumps(sub, indent=2))
        return
    lines = _describe(sub)
    width = max(len(k) for k, _ in lines)
    for key, value in lines:
        click.echo(f"{key:<{width}}  {value}")


@subscriptions.command("rm")
@click.argument("subscription_id", metavar="ID")
@_api_options
@click.pass_context
@clean_errors
def rm(
    ctx: click.Context,
    *,
    subscription_id: str,
    url: str | None,
    token: str | None,
    timeout: float | None,
) -> None:
    """Delete a subscription (its alerts stop at once)."""
    _client(ctx, url, token, timeout).delete(subscription_id)
    click.echo(f"deleted subscription {printable(subscription_id)}")


@subscriptions.command("test")
@click.argument("subscription_id", metavar="ID")
@_api_options
@click.pass_context
@clean_errors
def send_test(
    ctx: click.Context,
    *,
    subscription_id: str,
    url: str | None,
    token: str | None,
    timeout: float | None,
) -> None:
    """Send a signed test alert to the subscription's webhook now."""
    answer = _client(ctx, url, token, timeout).test(subscription_id)
    sid = printable(subscription_id)
    click.echo(
        f"test alert {printable(answer.get('status', 'queued'))} for {sid} "
        f"(webhook-id {printable(answer.get('webhook_id'))}): see "
        f"`storywatch subscriptions deliveries {sid}`"
    )


@subscriptions.command("rotate-secret")
@click.argument("subscription_id", metavar="ID")
@_api_options
@click.pass_context
@clean_errors
def rotate_secret(
    ctx: click.Context,
    *,
    subscription_id: str,
    url: str | None,
    token: str | None,
    timeout: float | None,
) -> None:
    """Give the subscription a new webhook secret (shown only once); the old one keeps
    signing beside it for STORYWATCH_WEBHOOK_SECRET_GRACE_S (24 h by default)."""
    answer = _client(ctx, url, token, timeout).rotate_secret(subscription_id)
    click.echo(f"secret: {printable(answer.get('secret'))}")
    until = answer.get("previous_secret_valid_until")
    if until:
        click.echo(
            f"the previous secret keeps signing beside it until {printable(until)}: "
            "give the receiver the new one before then"
        )
    click.echo(_SIGNING_NOTE)


@subscriptions.command("deliveries")
@click.argument("subscription_id", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@_api_options
@click.pass_context
@clean_errors
def deliveries(
    ctx: click.Context,
    *,
    subscription_id: str,
    as_json: bool,
    url: str | None,
    token: str | None,
    timeout: float | None,
) -> None:
    """Show the subscription's recent webhook deliveries and their outcomes."""
    items = _client(ctx, url, token, timeout).deliveries(subscription_id)
    if as_json:
        _echo_json_lines(items)
        return
    if not items:
        click.echo(
            f"no deliveries yet for {printable(subscription_id)}: "
            f"`storywatch subscriptions test {printable(subscription_id)}` sends one"
        )
        return
    rows = [
        (
            _joined(d.get("at")),
            _joined(d.get("trigger")),
            _clip(_joined(d.get("story_id")), 24),
            _joined(d.get("outcome")),
            _joined(d.get("status")),
            _joined(d.get("attempts")),
            _joined(d.get("webhook_id")),
            _clip(_joined(d.get("error")), 60),
        )
        for d in items
    ]
    header = ("AT", "TRIGGER", "STORY", "OUTCOME", "STATUS", "ATTEMPTS", "WEBHOOK-ID", "ERROR")
    for line in _table(header, rows):
        click.echo(line)
