"""Progress of a long CLI run: a tqdm bar on a terminal (articles/s, ETA), a plain line
every few seconds otherwise (logs, CI, pipes)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import IO

from tqdm import tqdm

__all__ = ["Progress"]

# Why 5 s: often enough to see a run move in a log, rare enough not to flood it.
_LINE_EVERY_S = 5.0


class Progress:
    """``update(n)`` per record; ``close()`` at the end."""

    def __init__(
        self,
        total: int,
        label: str,
        *,
        stream: IO[str] | None = None,
        tty: bool | None = None,
        echo: Callable[[str], None] | None = None,
    ) -> None:
        self.stream = stream or sys.stderr
        self.total, self.label, self.done = total, label, 0
        self.started = self._last = time.monotonic()
        self.echo = echo or (lambda line: print(line, file=self.stream, flush=True))
        on_terminal = self.stream.isatty() if tty is None else tty
        self.bar: tqdm[None] | None = (
            tqdm(total=total, desc=label, unit="article", file=self.stream, smoothing=0.1)
            if on_terminal
            else None
        )

    def update(self, count: int = 1) -> None:
        self.done += count
        if self.bar is not None:
            self.bar.update(count)
            return
        now = time.monotonic()
        if now - self._last >= _LINE_EVERY_S:
            self._last = now
            self.echo(self._line(now))

    def _line(self, now: float) -> str:
        rate = self.done / max(now - self.started, 1e-9)
        return f"{self.label}: {self.done}/{self.total} articles, {rate:.0f}/s"

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        else:
            self.echo(self._line(time.monotonic()))
