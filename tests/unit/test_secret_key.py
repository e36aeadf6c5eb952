"""The deployment's secret key: configured, from a file, or made once per machine."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.exceptions import SettingsError
from config.settings import Settings
from streams.secret_key import LOCAL_KEY_NAME, derive_key, master_key

KEY = "k" * 40


def test_the_configured_key_is_used_as_is(tmp_path: Path) -> None:
    assert master_key(Settings(secret_key=KEY, kafka_home=tmp_path).keys) == KEY.encode()
    assert not (tmp_path / LOCAL_KEY_NAME).exists()


def test_a_key_file_is_read_without_its_newline(tmp_path: Path) -> None:
    path = tmp_path / "key"
    path.write_text(KEY + "\n")
    assert master_key(Settings(secret_key_file=path, kafka_home=tmp_path).keys) == KEY.encode()


def test_without_a_setting_one_local_key_is_made_once_and_kept_private(tmp_path: Path) -> None:
    keys = Settings(kafka_home=tmp_path / "home").keys
    first = master_key(keys)
    assert len(first) >= 32
    assert master_key(keys) == first
    path = tmp_path / "home" / LOCAL_KEY_NAME
    assert path.stat().st_mode & 0o777 == 0o600
    assert list(path.parent.iterdir()) == [path]  # no draft left behind


def test_a_short_key_file_is_refused_with_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "key"
    path.write_text("short")
    with pytest.raises(SettingsError, match=r"STORYWATCH_SECRET_KEY_FILE.*token_urlsafe"):
        master_key(Settings(secret_key_file=path).keys)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"secret_key": "short"}, "shorter than 32"),
        ({"secret_key_file": Path("/nonexistent/key")}, "is not a file"),
    ],
)
def test_settings_refuse_a_bad_key_when_they_load(fields: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Settings(**fields)


def test_both_key_settings_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "key"
    path.write_text(KEY)
    with pytest.raises(ValueError, match="both set"):
        Settings(secret_key=KEY, secret_key_file=path)


def test_purpose_keys_differ_and_hide_the_master() -> None:
    master = KEY.encode()
    replay, webhooks = derive_key(master, "replay-time"), derive_key(master, "webhook-secrets")
    assert replay != webhooks and len(replay) == 32
    assert master not in replay and derive_key(master, "replay-time") == replay
    assert derive_key(b"x" * 40, "replay-time") != replay
