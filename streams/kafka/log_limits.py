"""Keep a broker outage from flooding the worker's log.

While the broker is down, aiokafka logs the same connection errors a thousand times a second
(20,000 lines in a 10 s restart here). :class:`RepeatLimiter` lets one record of each kind
through per interval and says how many it held back when the next one passes.
"""

from __future__ import annotations

import logging
import time

__all__ = ["RepeatLimiter", "limit_kafka_client_logs"]

# Why 10 s: an operator sees the error at once and every 10 s while it lasts, with a count.
_INTERVAL_S = 10.0


class RepeatLimiter(logging.Filter):
    """At most one record per (logger, message template, level) per ``interval_s``."""

    def __init__(self, interval_s: float = _INTERVAL_S) -> None:
        super().__init__()
        self.interval_s = interval_s
        self._last: dict[tuple[str, str, int], float] = {}
        self._held: dict[tuple[str, str, int], int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, str(record.msg), record.levelno)
        now = time.monotonic()
        if now - self._last.get(key, float("-inf")) < self.interval_s:
            self._held[key] = self._held.get(key, 0) + 1
            return False
        self._last[key] = now
        held = self._held.pop(key, 0)
        if held:
            record.msg = f"{record.msg} ({held} more like this in the last {self.interval_s:.0f} s)"
        return True


def limit_kafka_client_logs(limiter: RepeatLimiter | None = None) -> RepeatLimiter:
    """Install one limiter on every aiokafka logger (a logger's filters see only the records
    it creates, not its children's, so each gets it). Call at worker start, after imports."""
    limiter = limiter or RepeatLimiter()
    names = [n for n in logging.root.manager.loggerDict if n.split(".")[0] == "aiokafka"]
    for name in ["aiokafka", *names]:
        logger = logging.getLogger(name)
        if limiter not in logger.filters:
            logger.addFilter(limiter)
    return limiter
