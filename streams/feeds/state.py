"""A feed's poll state and health, as stored on the ``feed-state`` topic (keyed by feed id).

Pure: the poller computes the next state from the previous one and the poll's outcome; the
state is written only after the broker acknowledged the poll's articles.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from streams.feeds.fetcher import FetchOutcome, Validators
from streams.feeds.schedule import next_delay

__all__ = ["DAY_S", "FeedState", "Status"]

Status = Literal["pending", "ok", "error", "retired"]
DAY_S = 86400.0
# Why hourly buckets: "items in the last day" to the hour, in at most 25 small pairs a feed.
_BUCKET_S = 3600.0
# Why 1,000 chars: enough of an error (and its hint) for `feeds list`, bounded per record.
_ERROR_MAX_CHARS = 1000


@dataclass(frozen=True, slots=True)
class FeedState:
    feed_id: str
    status: Status = "pending"
    etag: str | None = None
    last_modified: str | None = None
    next_poll: float = 0.0
    failures: int = 0
    last_poll: float | None = None
    last_success: float | None = None
    last_error: str | None = None
    last_error_at: float | None = None
    last_outcome: str | None = None
    title: str | None = None
    items: list[list[float]] = field(default_factory=list)  # [[hour start, new items]]

    @property
    def validators(self) -> Validators:
        return Validators(self.etag, self.last_modified)

    def items_last_day(self, now: float) -> int:
        return int(sum(n for start, n in self.items if start > now - DAY_S - _BUCKET_S))

    def succeeded(
        self,
        now: float,
        *,
        interval_s: float,
        outcome: FetchOutcome,
        validators: Validators,
        new_items: int,
        max_age_s: float | None = None,
        ttl_s: float | None = None,
        title: str | None = None,
    ) -> FeedState:
        items = [b for b in self.items if b[0] > now - DAY_S - _BUCKET_S]
        if new_items:
            hour = now - now % _BUCKET_S
            if items and items[-1][0] == hour:
                items[-1] = [hour, items[-1][1] + new_items]
            else:
                items.append([hour, float(new_items)])
        return replace(
            self,
            status="ok",
            etag=validators.etag,
            last_modified=validators.last_modified,
            next_poll=now + next_delay(interval_s, max_age_s=max_age_s, ttl_s=ttl_s),
            failures=0,
            last_poll=now,
            last_success=now,
            last_outcome=outcome,
            title=title or self.title,
            items=items,
        )

    def failed(
        self,
        now: float,
        *,
        interval_s: float,
        outcome: FetchOutcome,
        error: str,
        retry_after_s: float | None = None,
        retired: bool = False,
    ) -> FeedState:
        failures = self.failures + 1
        return replace(
            self,
            status="retired" if retired else "error",
            next_poll=float("inf")
            if retired
            else now + next_delay(interval_s, failures=failures, retry_after_s=retry_after_s),
            failures=failures,
            last_poll=now,
            last_error=error[:_ERROR_MAX_CHARS],
            last_error_at=now,
            last_outcome=outcome,
        )

    def to_record(self) -> dict[str, Any]:
        record = asdict(self)
        if record["next_poll"] == float("inf"):
            record["next_poll"] = None  # retired: JSON has no infinity
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> FeedState:
        known = {k: v for k, v in record.items() if k in cls.__dataclass_fields__}
        if known.get("next_poll") is None:
            known["next_poll"] = float("inf") if known.get("status") == "retired" else 0.0
        return cls(**known)
