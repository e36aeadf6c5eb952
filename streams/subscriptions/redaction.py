"""Tokens inside webhook URLs kept out of logs and dead letters.

A webhook URL often carries its receiver's credential: ``https://user:pass@host/``,
``?token=...`` / ``?key=...`` / ``?sig=...``, or a path token as in Slack's
``/services/T0/B0/XXXXXXXX``. An error text that quotes such a URL (a refused redirect, a
client error, an invalid URL) would put the credential in the worker's log and on
``alerts-dlq``. :func:`redact_text` rewrites every URL in a text: the userinfo, every query
value and the fragment become ``***``, and so does every path segment that looks like a
token (long, or mixing letters and digits).
"""

from __future__ import annotations

import logging
import re

__all__ = ["MASK", "RedactingFilter", "redact_text", "redact_url"]

MASK = "***"
# Anything that starts like an absolute URL, up to whitespace, a quote or an angle bracket.
_URL = re.compile(r"""\b[a-zA-Z][a-zA-Z0-9+.\-]{1,15}://[^\s'"<>]+""")
# Why 16 / 32: Slack, Discord and most signed-URL tokens are 20+ characters of letters and
# digits; path words (`hooks`, `storywatch-alerts`, `v1`) are shorter or carry no digit.
# Any segment of 32+ characters is taken for a token whatever it holds.
_TOKEN_MIN = 16
_TOKEN_ANY = 32
_LETTER = re.compile(r"[A-Za-z]")
_DIGIT = re.compile(r"[0-9]")


def _token_like(segment: str) -> bool:
    if len(segment) >= _TOKEN_ANY:
        return True
    return len(segment) >= _TOKEN_MIN and bool(_LETTER.search(segment) and _DIGIT.search(segment))


def redact_url(url: str) -> str:
    """``url`` with its userinfo, query values, fragment and token-like path segments masked
    (done on the text, so it works on URLs no parser accepts too)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    rest, hash_sign, _fragment = rest.partition("#")
    rest, question, query = rest.partition("?")
    authority, slash, path = rest.partition("/")
    if "@" in authority:
        authority = MASK + "@" + authority.rpartition("@")[2]
    path = "/".join(MASK if _token_like(seg) else seg for seg in path.split("/"))
    out = f"{scheme}://{authority}{slash}{path}"
    if question:
        pairs = []
        for pair in query.split("&"):
            name, eq, value = pair.partition("=")
            bare = MASK if _token_like(name) else pair  # ?<token> with no name
            pairs.append(f"{name}={MASK}" if eq and value else bare)
        out += "?" + "&".join(pairs)
    if hash_sign:
        out += "#" + MASK
    return out


def redact_text(text: str) -> str:
    """``text`` with every URL in it passed through :func:`redact_url`."""
    if "://" not in text:
        return text
    return _URL.sub(lambda m: redact_url(m.group(0)), text)


class RedactingFilter(logging.Filter):
    """A log handler filter: every record's message and traceback leave with URLs redacted.
    Installed on the worker's log handlers by the delivery agent."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "://" in message:
            record.msg, record.args = redact_text(message), ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text and "://" in record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        return True
