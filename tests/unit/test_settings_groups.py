"""The settings groups (config/groups.py): every setting in exactly one group, each group
built from the settings' own values (no second default), frozen, secrets hidden."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from pydantic import SecretStr

from config.groups import (
    DERIVED_FIELDS,
    GROUPS,
    LOCAL_KEY_NAME,
    META_FIELDS,
    KafkaSettings,
    setting_names,
)
from config.settings import Settings

SECRET = "s3cr3t-value-that-must-never-show-0123456789"


def test_every_setting_belongs_to_exactly_one_group() -> None:
    owners: dict[str, list[str]] = {}
    for name, group in GROUPS.items():
        for field in setting_names(group):
            owners.setdefault(field, []).append(name)
    doubled = {field: groups for field, groups in owners.items() if len(groups) > 1}
    assert not doubled, f"settings in more than one group: {doubled}"
    unknown = set(owners) - set(Settings.model_fields)
    assert not unknown, (
        f"group attributes that are no setting (name them in DERIVED_FIELDS): {unknown}"
    )
    orphans = set(Settings.model_fields) - set(owners) - set(META_FIELDS)
    assert not orphans, f"settings in no group: add each to the group that uses it: {orphans}"
    assert not set(META_FIELDS) & set(owners), "a meta setting is also in a group"
    assert set(META_FIELDS) <= set(Settings.model_fields)


def test_derived_attributes_are_named_and_not_settings() -> None:
    for group, name in DERIVED_FIELDS:
        assert name in {f.name for f in dataclasses.fields(group)}
        assert name not in Settings.model_fields


@pytest.mark.parametrize("name", sorted(GROUPS))
def test_each_group_is_a_property_that_carries_the_settings_values(name: str) -> None:
    settings = Settings(
        kafka_port=9999, story_threshold=0.5, emerging_min_sources=4, webhook_concurrency=7
    )
    group = getattr(settings, name)
    assert type(group) is GROUPS[name]
    for field in setting_names(type(group)):
        assert getattr(group, field) == getattr(settings, field), field


def test_groups_have_no_defaults_of_their_own() -> None:
    # Each default is written once, on the Settings field: a group field with a default
    # would be a second place to change it.
    for group in GROUPS.values():
        for field in dataclasses.fields(group):
            assert field.default is dataclasses.MISSING, f"{group.__name__}.{field.name}"
            assert field.default_factory is dataclasses.MISSING, f"{group.__name__}.{field.name}"


@pytest.mark.parametrize("name", sorted(GROUPS))
def test_groups_are_frozen(name: str) -> None:
    group = getattr(Settings(), name)
    first = dataclasses.fields(group)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(group, first, None)


def test_repr_hides_every_secret(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(SECRET)
    settings = Settings(
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_username="storywatch",
        kafka_sasl_password=SecretStr(SECRET),
        api_tokens=SecretStr(f"alice:{SECRET}"),
        secret_key=SecretStr(SECRET),
    )
    secret_fields = [
        (name, field)
        for name, group in GROUPS.items()
        for field in setting_names(group)
        if Settings.model_fields[field].annotation in (SecretStr, SecretStr | None)
    ]
    assert {field for _, field in secret_fields} == {
        "kafka_sasl_password",
        "kafka_ssl_key_password",
        "api_tokens",
        "secret_key",
    }
    for name in GROUPS:
        assert SECRET not in repr(getattr(settings, name)), name
        assert SECRET not in str(getattr(settings, name)), name
    for name, field in secret_fields:
        value = getattr(getattr(settings, name), field)
        assert value is None or isinstance(value, SecretStr)
    assert settings.keys.secret_key is not None
    assert settings.keys.secret_key.get_secret_value() == SECRET  # kept, only masked


def test_the_kafka_group_derives_what_settings_did() -> None:
    plain = Settings(kafka_port=9555).kafka
    assert plain.bootstrap == "127.0.0.1:9555" and plain.protocol == "PLAINTEXT"
    login = Settings(
        kafka_bootstrap="broker:9093",
        kafka_sasl_username="u",
        kafka_sasl_password=SecretStr("p"),
    )
    assert isinstance(login.kafka, KafkaSettings)
    assert (login.kafka.bootstrap, login.kafka.protocol) == ("broker:9093", "SASL_PLAINTEXT")
    assert login.bootstrap == login.kafka.bootstrap
    secret = login.kafka.sasl_secret()
    assert secret is not None and secret.get_secret_value() == "p"
    assert login.kafka.kafka_dir == login.kafka_dir


def test_the_key_group_points_at_the_local_key_file(tmp_path: Path) -> None:
    keys = Settings(kafka_home=tmp_path).keys
    assert keys.local_key_file == tmp_path / LOCAL_KEY_NAME
    assert keys.secret_key is None and keys.secret_key_file is None


def test_allowed_hosts_are_parsed_by_their_groups() -> None:
    settings = Settings(webhook_allow_hosts=" Hooks.Internal:8443,[::1] ", feed_allow_hosts="A,b")
    assert settings.webhooks.allowed_hosts == frozenset({"hooks.internal:8443", "::1"})
    assert settings.feeds.allowed_hosts == frozenset({"a", "b"})
