"""The Kafka security settings: defaults, the contradictions refused at load (each naming
its setting), the password file, secrets never shown; and the connection derived from them."""

from __future__ import annotations

import os
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from config.exceptions import SettingsError
from config.settings import Settings, load_settings
from streams.kafka.connection import KafkaConnection

SECRET = "s3cret-do-not-print"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith("STORYWATCH_"):
            monkeypatch.delenv(name)
    load_settings.cache_clear()
    yield
    load_settings.cache_clear()


def _refused(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> str:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert SECRET not in message
    return message


@pytest.fixture
def pem(tmp_path: Path) -> Path:
    path = tmp_path / "some.pem"
    path.write_text("-----BEGIN CERTIFICATE-----\n", encoding="utf-8")
    return path


def test_defaults_are_todays_behaviour() -> None:
    assert Settings().kafka.protocol == "PLAINTEXT"
    login = Settings(kafka_sasl_username="u", kafka_sasl_password=SECRET)
    assert login.kafka.protocol == "SASL_PLAINTEXT"
    connection = KafkaConnection.from_settings(login.kafka)
    assert connection.sasl_mechanism == "PLAIN"
    assert connection.ssl_check_hostname is True
    assert connection.ssl_context() is None


def test_protocol_and_mechanism_read_case_insensitively(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STORYWATCH_KAFKA_SECURITY_PROTOCOL", "sasl_ssl")
    monkeypatch.setenv("STORYWATCH_KAFKA_SASL_MECHANISM", "scram-sha-512")
    monkeypatch.setenv("STORYWATCH_KAFKA_SASL_USERNAME", "u")
    monkeypatch.setenv("STORYWATCH_KAFKA_SASL_PASSWORD", SECRET)
    s = load_settings()
    assert (s.kafka.protocol, s.kafka_sasl_mechanism) == ("SASL_SSL", "SCRAM-SHA-512")


def test_an_unknown_protocol_is_refused_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    message = _refused(monkeypatch, {"STORYWATCH_KAFKA_SECURITY_PROTOCOL": "TLS"})
    assert "STORYWATCH_KAFKA_SECURITY_PROTOCOL" in message


@pytest.mark.parametrize(
    ("env", "named"),
    [
        (
            {"STORYWATCH_KAFKA_SASL_MECHANISM": "SCRAM-SHA-256"},
            "STORYWATCH_KAFKA_SASL_MECHANISM",
        ),
        (
            {
                "STORYWATCH_KAFKA_SECURITY_PROTOCOL": "SSL",
                "STORYWATCH_KAFKA_SASL_MECHANISM": "PLAIN",
            },
            "STORYWATCH_KAFKA_SASL_MECHANISM",
        ),
        ({"STORYWATCH_KAFKA_SASL_PASSWORD": SECRET}, "STORYWATCH_KAFKA_SASL_USERNAME"),
        ({"STORYWATCH_KAFKA_SASL_USERNAME": "u"}, "STORYWATCH_KAFKA_SASL_PASSWORD"),
        ({"STORYWATCH_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, "STORYWATCH_KAFKA_SASL_USERNAME"),
        (
            {
                "STORYWATCH_KAFKA_SECURITY_PROTOCOL": "SSL",
                "STORYWATCH_KAFKA_SSL_CAFILE": "/no/such/ca.pem",
            },
            "STORYWATCH_KAFKA_SSL_CAFILE",
        ),
        (
            {
                "STORYWATCH_KAFKA_SASL_USERNAME": "u",
                "STORYWATCH_KAFKA_SASL_PASSWORD_FILE": "/no/such/secret",
            },
            "STORYWATCH_KAFKA_SASL_PASSWORD_FILE",
        ),
        (
            {
                "STORYWATCH_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                "STORYWATCH_KAFKA_SASL_USERNAME": "u",
                "STORYWATCH_KAFKA_SASL_PASSWORD": SECRET,
                "STORYWATCH_KAFKA_SSL_KEY_PASSWORD": SECRET,
            },
            "STORYWATCH_KAFKA_SSL_KEY_PASSWORD",
        ),
        ({"STORYWATCH_KAFKA_SSL_CHECK_HOSTNAME": "false"}, "STORYWATCH_KAFKA_SSL_CHECK_HOSTNAME"),
    ],
)
def test_contradictions_are_refused_at_load_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], named: str
) -> None:
    assert named in _refused(monkeypatch, env)


def test_a_certificate_without_its_key_and_tls_files_without_tls(
    monkeypatch: pytest.MonkeyPatch, pem: Path
) -> None:
    message = _refused(
        monkeypatch,
        {"STORYWATCH_KAFKA_SECURITY_PROTOCOL": "SSL", "STORYWATCH_KAFKA_SSL_CERTFILE": str(pem)},
    )
    assert "STORYWATCH_KAFKA_SSL_CERTFILE" in message and "KEYFILE" in message
    load_settings.cache_clear()
    monkeypatch.delenv("STORYWATCH_KAFKA_SSL_CERTFILE")
    monkeypatch.setenv("STORYWATCH_KAFKA_SSL_KEYFILE", str(pem))
    assert "STORYWATCH_KAFKA_SSL_KEYFILE" in _refused(monkeypatch, {})
    load_settings.cache_clear()
    monkeypatch.delenv("STORYWATCH_KAFKA_SSL_KEYFILE")
    monkeypatch.setenv("STORYWATCH_KAFKA_SECURITY_PROTOCOL", "PLAINTEXT")
    monkeypatch.setenv("STORYWATCH_KAFKA_SSL_CAFILE", str(pem))
    message = _refused(monkeypatch, {})
    assert "STORYWATCH_KAFKA_SSL_CAFILE" in message and "PLAINTEXT" in message


def test_password_and_password_file_together_are_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    secret = tmp_path / "password"
    secret.write_text(SECRET + "\n", encoding="utf-8")
    message = _refused(
        monkeypatch,
        {
            "STORYWATCH_KAFKA_SASL_USERNAME": "u",
            "STORYWATCH_KAFKA_SASL_PASSWORD": SECRET,
            "STORYWATCH_KAFKA_SASL_PASSWORD_FILE": str(secret),
        },
    )
    assert "STORYWATCH_KAFKA_SASL_PASSWORD_FILE" in message


def test_the_password_file_is_read_and_never_shown(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    secret = tmp_path / "password"
    secret.write_text(SECRET + "\n", encoding="utf-8")
    monkeypatch.setenv("STORYWATCH_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("STORYWATCH_KAFKA_SASL_MECHANISM", "SCRAM-SHA-256")
    monkeypatch.setenv("STORYWATCH_KAFKA_SASL_USERNAME", "alice")
    monkeypatch.setenv("STORYWATCH_KAFKA_SASL_PASSWORD_FILE", str(secret))
    settings = load_settings()
    connection = KafkaConnection.from_settings(settings.kafka)
    assert connection.sasl_password is not None
    assert connection.sasl_password.get_secret_value() == SECRET  # the newline stripped
    for shown in (repr(settings), str(settings), repr(connection), connection.describe()):
        assert SECRET not in shown
    options = connection.client_options()
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-256"
    assert options["sasl_plain_password"] == SECRET
    assert isinstance(options["ssl_context"], ssl.SSLContext)
    credentials = connection.faust_credentials()
    assert credentials.mechanism.value == "SCRAM-SHA-256"
    assert credentials.protocol.value == "SASL_SSL"
    assert SECRET not in repr(credentials)


def test_the_ssl_context_follows_the_settings() -> None:
    strict = KafkaConnection(bootstrap="h:1", security_protocol="SSL").ssl_context()
    assert strict is not None
    assert strict.check_hostname is True and strict.verify_mode == ssl.CERT_REQUIRED
    loose = KafkaConnection(
        bootstrap="h:1", security_protocol="SSL", ssl_check_hostname=False
    ).ssl_context()
    assert loose is not None
    assert loose.check_hostname is False and loose.verify_mode == ssl.CERT_REQUIRED
    assert KafkaConnection(bootstrap="h:1").faust_credentials() is None
    tls_only = KafkaConnection(bootstrap="h:1", security_protocol="SSL").faust_credentials()
    assert tls_only.protocol.value == "SSL"


def test_files_that_are_not_pem_are_named_when_the_context_is_built(tmp_path: Path) -> None:
    from streams.kafka.certs import local_tls_files

    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n", encoding="utf-8")
    with pytest.raises(SettingsError, match=r"STORYWATCH_KAFKA_SSL_CAFILE=.*junk\.pem"):
        KafkaConnection(bootstrap="h:1", security_protocol="SSL", ssl_cafile=junk).ssl_context()
    files = local_tls_files(tmp_path / "tls")
    good = KafkaConnection(
        bootstrap="h:1",
        security_protocol="SSL",
        ssl_cafile=files.ca.cert,
        ssl_certfile=files.client_cert,
        ssl_keyfile=files.client_key,
    )
    assert good.ssl_context() is not None
    mismatched = KafkaConnection(
        bootstrap="h:1",
        security_protocol="SSL",
        ssl_cafile=files.ca.cert,
        ssl_certfile=files.client_cert,
        ssl_keyfile=files.ca.key,  # another key: not the certificate's
        ssl_key_password=SecretStr(SECRET),
    )
    with pytest.raises(SettingsError, match="STORYWATCH_KAFKA_SSL_KEYFILE") as caught:
        mismatched.ssl_context()
    assert SECRET not in str(caught.value)


def test_an_encrypted_client_key_loads_with_its_password(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization

    from streams.kafka.certs import local_tls_files

    files = local_tls_files(tmp_path / "tls")
    key = serialization.load_pem_private_key(files.client_key.read_bytes(), None)
    encrypted = tmp_path / "client-key-encrypted.pem"
    encrypted.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(SECRET.encode()),
        )
    )

    def connection(password: str | None) -> KafkaConnection:
        return KafkaConnection(
            bootstrap="h:1",
            security_protocol="SSL",
            ssl_cafile=files.ca.cert,
            ssl_certfile=files.client_cert,
            ssl_keyfile=encrypted,
            ssl_key_password=SecretStr(password) if password else None,
        )

    assert connection(SECRET).ssl_context() is not None
    for wrong in ("not-the-password", None):  # None: refused at once, never a prompt
        with pytest.raises(SettingsError, match="STORYWATCH_KAFKA_SSL_KEY_PASSWORD"):
            connection(wrong).ssl_context()
