"""The one secret key of a Storywatch deployment, and the purpose keys derived from it.

The key signs the replay-time header of `storywatch produce` (so an outside producer cannot
set a record's stream time) and encrypts webhook secrets at rest. It comes from
``STORYWATCH_SECRET_KEY`` or ``STORYWATCH_SECRET_KEY_FILE``; unset, a random key is made once
in ``STORYWATCH_KAFKA_HOME/secret-key`` (readable by its owner only), which every worker and
command of one machine shares. Nothing is read or written at import.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from config.exceptions import SettingsError
from config.groups import LOCAL_KEY_NAME, KeySettings

__all__ = ["LOCAL_KEY_NAME", "derive_key", "master_key"]

# Why 32 bytes: a 256-bit key, as HMAC-SHA256 and AES-256 want.
_KEY_BYTES = 32


def master_key(keys: KeySettings) -> bytes:
    """The deployment's key: the configured one, else this machine's local key file (made
    here on first use)."""
    if keys.secret_key is not None:
        return keys.secret_key.get_secret_value().encode()
    if keys.secret_key_file is not None:
        return _read_key(keys.secret_key_file, "STORYWATCH_SECRET_KEY_FILE")
    return _local_key(keys.local_key_file)


def derive_key(master: bytes, purpose: str) -> bytes:
    """A key for one ``purpose`` (e.g. "replay-time"): HMAC-SHA256 of the purpose under the
    master key, so a key used for one purpose reveals nothing of another."""
    return hmac.new(master, b"storywatch:" + purpose.encode(), hashlib.sha256).digest()


def _read_key(path: Path, setting: str) -> bytes:
    try:
        key = path.read_bytes().strip()
    except OSError as exc:
        raise SettingsError(
            f"{setting}={path} cannot be read ({exc.strerror or exc}): fix its permissions "
            "or point the setting at the mounted secret"
        ) from exc
    if len(key) < _KEY_BYTES:
        raise SettingsError(
            f"the key in {path} ({setting}) is shorter than {_KEY_BYTES} bytes: write a "
            "random one, e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
        )
    return key


def _local_key(path: Path) -> bytes:
    """This machine's key file, made once (owner read/write only). It is written whole to a
    temporary file and linked into place, so two processes starting at once both read the
    one that was linked first, never a half-written file."""
    if path.exists():
        return _read_key(path, "the local secret key (STORYWATCH_KAFKA_HOME)")
    draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(secrets.token_urlsafe(_KEY_BYTES).encode())
        with contextlib.suppress(FileExistsError):  # another process linked its key first
            os.link(draft, path)
    except OSError as exc:
        raise SettingsError(
            f"cannot create the local secret key {path} ({exc.strerror or exc}): set "
            "STORYWATCH_SECRET_KEY, or make STORYWATCH_KAFKA_HOME writable"
        ) from exc
    finally:
        draft.unlink(missing_ok=True)
    return _read_key(path, "the local secret key (STORYWATCH_KAFKA_HOME)")
