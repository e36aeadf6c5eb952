"""The worker's HTTP pages: a live story dashboard, its JSON API and Prometheus metrics."""

from __future__ import annotations

from typing import Any

import faust
from faust.sensors.prometheus import setup_prometheus_sensors
from faust.web import Request, Response, View
from prometheus_client import CollectorRegistry

from streams.engine.clustering import story_keywords
from streams.tables import PipelineTables

__all__ = ["register_views"]

# Why 50: a dashboard row per story; more than a screenful is noise, the API takes ?limit=.
_DEFAULT_LIMIT = 50
_MAX_LIMIT = 1000

_DASHBOARD = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Storywatch</title>
<style>
body{font-family:system-ui,sans-serif;margin:2rem;color:#222}
table{border-collapse:collapse;width:100%}td,th{padding:.3rem .6rem;border-bottom:1px solid #ddd;
text-align:left}th{background:#f4f4f4}td.n{text-align:right}#status{color:#666}
td.kw{color:#555;font-size:.9em}
</style></head><body>
<h1>Storywatch: live stories</h1>
<p id="status">loading…</p>
<table><thead><tr><th>Headline</th><th>Keywords</th><th>Articles</th><th>Sources</th>
<th>Last seen (UTC)</th></tr></thead><tbody id="stories"></tbody></table>
<script>
async function refresh() {
  try {
    const r = await fetch('/api/stories?limit=50');
    const data = await r.json();
    const rows = data.stories.map(s => {
      const tr = document.createElement('tr');
      tr.className = 'story';
      const seen = new Date(s.last_seen * 1000).toISOString().slice(0, 16).replace('T', ' ');
      for (const [v, cls] of [[s.headline, ''], [s.keywords.join(', '), 'kw'],
                              [s.size, 'n'], [s.source_count, 'n'], [seen, '']]) {
        const td = document.createElement('td'); td.textContent = v; td.className = cls;
        tr.appendChild(td);
      }
      return tr;
    });
    document.getElementById('stories').replaceChildren(...rows);
    document.getElementById('status').textContent =
      data.active_stories + ' active stories; updated ' + new Date().toLocaleTimeString();
  } catch (e) {
    document.getElementById('status').textContent = 'worker unreachable: ' + e;
  }
}
refresh(); setInterval(refresh, 2000);
</script></body></html>
"""


def story_summary(record: dict[str, Any]) -> dict[str, Any]:
    """The public view of a story record (no vectors)."""
    return {
        "story_id": record["id"],
        "headline": record["headline"],
        "size": record["size"],
        "source_count": len(record["sources"]),
        "first_seen": record["first_seen"],
        "last_seen": record["last_seen"],
        "keywords": _keywords(record),
    }


def _keywords(record: dict[str, Any]) -> list[str]:
    """The record's kept top terms; re-ranked from its profile for records written before."""
    kept = record.get("keywords")
    return list(kept) if kept is not None else story_keywords(record.get("terms", {}))


def register_views(app: faust.App, tables: PipelineTables, registry: CollectorRegistry) -> None:
    """Add ``/``, ``/api/stories`` and ``/metrics`` (Faust's sensors + ours, one registry)."""
    setup_prometheus_sensors(
        app, pattern="/metrics", registry=registry, name_prefix="storywatch_faust"
    )

    @app.page("/")
    class Dashboard(View):
        async def get(self, request: Request) -> Response:
            return self.html(_DASHBOARD)

    @app.page("/api/stories")
    class Stories(View):
        async def get(self, request: Request) -> Response:
            try:
                limit = min(_MAX_LIMIT, max(1, int(request.query.get("limit", _DEFAULT_LIMIT))))
            except ValueError:
                return self.json({"error": "limit must be an integer, e.g. ?limit=50"}, status=400)
            records = [r for r in tables.stories.values() if r is not None]
            records.sort(key=lambda r: (r["size"], r["last_seen"]), reverse=True)
            return self.json(
                {
                    "active_stories": len(records),
                    "stories": [story_summary(r) for r in records[:limit]],
                }
            )
