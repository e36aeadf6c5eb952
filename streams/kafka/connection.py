"""The one place Kafka clients are built: a frozen :class:`KafkaConnection`, derived from the
Kafka settings group (bootstrap, security protocol, SASL mechanism and login, CA, client
certificate, the hostname check), builds the Faust app's broker credentials, every aiokafka
consumer and every kafka-python producer, consumer and admin client. A client built anywhere
else is how a command silently skips TLS or the login:
``tests/unit/test_kafka_connection.py`` fails on one.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from config.exceptions import SettingsError
from config.groups import KafkaSettings

if TYPE_CHECKING:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient

__all__ = ["KafkaConnection"]

TLS_PROTOCOLS = ("SSL", "SASL_SSL")
SASL_PROTOCOLS = ("SASL_PLAINTEXT", "SASL_SSL")


def _reason(exc: BaseException) -> str:
    return str(getattr(exc, "reason", None) or getattr(exc, "strerror", None) or exc).lower()


@dataclass(frozen=True)
class KafkaConnection:
    """How to reach and log in to the broker; secrets stay :class:`SecretStr` (masked in
    ``repr``) until a client is built."""

    bootstrap: str
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str = "PLAIN"
    sasl_username: str | None = None
    sasl_password: SecretStr | None = field(default=None, repr=False)
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    ssl_key_password: SecretStr | None = field(default=None, repr=False)
    ssl_check_hostname: bool = True

    @classmethod
    def from_settings(cls, kafka: KafkaSettings, bootstrap: str | None = None) -> KafkaConnection:
        """The connection the Kafka settings describe (``bootstrap`` overrides the address);
        the SASL password file is read now."""
        return cls(
            bootstrap=bootstrap or kafka.bootstrap,
            security_protocol=kafka.protocol,
            sasl_mechanism=kafka.kafka_sasl_mechanism or "PLAIN",
            sasl_username=kafka.kafka_sasl_username,
            sasl_password=kafka.sasl_secret(),
            ssl_cafile=kafka.kafka_ssl_cafile,
            ssl_certfile=kafka.kafka_ssl_certfile,
            ssl_keyfile=kafka.kafka_ssl_keyfile,
            ssl_key_password=kafka.kafka_ssl_key_password,
            ssl_check_hostname=kafka.kafka_ssl_check_hostname,
        )

    @classmethod
    def of(cls, target: KafkaConnection | str) -> KafkaConnection:
        """``target`` itself, or a PLAINTEXT connection to the ``host:port`` it names."""
        return target if isinstance(target, KafkaConnection) else cls(bootstrap=target)

    # --- what it is -----------------------------------------------------------------------

    @property
    def uses_tls(self) -> bool:
        return self.security_protocol in TLS_PROTOCOLS

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol in SASL_PROTOCOLS

    def describe(self) -> str:
        """One line for messages: the protocol, mechanism and user, never a secret."""
        text = self.security_protocol
        if self.uses_sasl:
            text += f" {self.sasl_mechanism} as {self.sasl_username!r}"
        if self.uses_tls and self.ssl_certfile:
            text += " with a client certificate"
        return text

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context every client shares (None without TLS): the CA file, else the
        system trust store; the client certificate for mutual TLS; the hostname check."""
        if not self.uses_tls:
            return None
        try:
            context = ssl.create_default_context(
                cafile=str(self.ssl_cafile) if self.ssl_cafile else None
            )
        except (ssl.SSLError, OSError) as exc:
            raise SettingsError(
                f"STORYWATCH_KAFKA_SSL_CAFILE={self.ssl_cafile}: not a readable PEM bundle of CA "
                f"certificates ({_reason(exc)}): point it at the CA's PEM file"
            ) from None
        context.check_hostname = self.ssl_check_hostname
        if self.ssl_certfile:
            try:
                context.load_cert_chain(
                    str(self.ssl_certfile),
                    str(self.ssl_keyfile) if self.ssl_keyfile else None,
                    # "" not None: OpenSSL would prompt on the terminal for an encrypted key
                    self.ssl_key_password.get_secret_value() if self.ssl_key_password else "",
                )
            except (ssl.SSLError, OSError) as exc:
                raise SettingsError(
                    f"STORYWATCH_KAFKA_SSL_CERTFILE={self.ssl_certfile} with "
                    f"STORYWATCH_KAFKA_SSL_KEYFILE={self.ssl_keyfile}: not a certificate and its "
                    f"key ({_reason(exc)}): check both files, and "
                    "STORYWATCH_KAFKA_SSL_KEY_PASSWORD if the key is encrypted"
                ) from None
        return context

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments with the same names in kafka-python and aiokafka."""
        options: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap,
            "security_protocol": self.security_protocol,
        }
        if self.uses_tls:
            options["ssl_context"] = self.ssl_context()
        if self.uses_sasl:
            options["sasl_mechanism"] = self.sasl_mechanism
            options["sasl_plain_username"] = self.sasl_username
            options["sasl_plain_password"] = (
                self.sasl_password.get_secret_value() if self.sasl_password else None
            )
        return options

    # --- Faust --------------------------------------------------------------------------

    def faust_credentials(self) -> Any:
        """``broker_credentials`` for the Faust app (None for PLAINTEXT)."""
        import faust

        if self.uses_sasl:
            return faust.SASLCredentials(
                username=self.sasl_username,
                password=self.sasl_password.get_secret_value() if self.sasl_password else None,
                mechanism=self.sasl_mechanism,
                ssl_context=self.ssl_context(),
            )
        if self.uses_tls:
            return faust.SSLCredentials(self.ssl_context())
        return None

    # --- aiokafka -------------------------------------------------------------------------

    def aio_consumer(self, *topics: str, **options: Any) -> AIOKafkaConsumer:
        """An unstarted :class:`aiokafka.AIOKafkaConsumer`."""
        from aiokafka import AIOKafkaConsumer

        return AIOKafkaConsumer(*topics, **self.client_options(), **options)

    def aio_producer(self, **options: Any) -> AIOKafkaProducer:
        """An unstarted :class:`aiokafka.AIOKafkaProducer`."""
        from aiokafka import AIOKafkaProducer

        return AIOKafkaProducer(**self.client_options(), **options)

    def aio_admin(self, **options: Any) -> AIOKafkaAdminClient:
        """An unstarted :class:`aiokafka.admin.AIOKafkaAdminClient`."""
        from aiokafka.admin import AIOKafkaAdminClient

        return AIOKafkaAdminClient(**self.client_options(), **options)

    # --- kafka-python ---------------------------------------------------------------------

    def producer(self, **options: Any) -> Any:
        """A :class:`kafka.KafkaProducer` (it connects now)."""
        from kafka import KafkaProducer

        return KafkaProducer(**self.client_options(), **options)

    def consumer(self, *topics: str, **options: Any) -> Any:
        """A :class:`kafka.KafkaConsumer` (it connects now)."""
        from kafka import KafkaConsumer

        return KafkaConsumer(*topics, **self.client_options(), **options)

    def admin(self, **options: Any) -> Any:
        """A :class:`kafka.admin.KafkaAdminClient` (it connects now)."""
        from kafka.admin import KafkaAdminClient

        return KafkaAdminClient(**self.client_options(), **options)
