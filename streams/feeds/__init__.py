"""Feeds: RSS, Atom and JSON Feed polled by the workers into ``articles`` (docs/FEEDS.md)."""
