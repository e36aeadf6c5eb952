"""The language of an item whose feed does not say: lingua, offline, models in its wheel.

Why lingua (lingua-language-detector) and not fasttext-langdetect: fasttext-langdetect's wheel
carries no model and downloads one at first use (no hub at run time here); lingua's wheel
bundles its n-gram models. Low-accuracy mode: about 130 MB resident instead of about 1 GB, and
headlines plus a teaser are long enough for it (tests/unit/test_feed_parsing.py).
"""

from __future__ import annotations

import threading
from typing import Any

__all__ = ["LanguageDetector", "primary_tag"]

# Why 20 chars: below that (a one-word title) every detector guesses; we leave lang unset.
_MIN_CHARS = 20
# Why 0.5: lingua's confidence of its best language; under it the text is too mixed or short
# to say, and no language is better than a wrong one (clustering does not split on it).
_MIN_CONFIDENCE = 0.5


def primary_tag(tag: str | None) -> str | None:
    """'en-US' -> 'en'; None for an empty or malformed tag."""
    if not tag:
        return None
    primary = tag.strip().replace("_", "-").split("-", 1)[0].lower()
    if not primary.isascii() or not primary.isalpha() or not 2 <= len(primary) <= 3:
        return None
    return primary


class LanguageDetector:
    """Built on first use (the models load lazily), then shared: detection is thread-safe."""

    def __init__(self) -> None:
        self._detector: Any = None
        self._lock = threading.Lock()

    def _get(self) -> Any:
        with self._lock:
            if self._detector is None:
                from lingua import LanguageDetectorBuilder

                self._detector = (
                    LanguageDetectorBuilder.from_all_languages().with_low_accuracy_mode().build()
                )
            return self._detector

    def detect(self, text: str) -> str | None:
        """ISO 639-1 code of ``text``'s language, or None when it cannot tell."""
        text = " ".join(text.split())
        if len(text) < _MIN_CHARS:
            return None
        values = self._get().compute_language_confidence_values(text)
        if not values or values[0].value < _MIN_CONFIDENCE:
            return None
        code = values[0].language.iso_code_639_1
        return str(code.name).lower()
