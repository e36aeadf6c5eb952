"""One real broker with a listener per security mode, for the security tests: the settings a
client of each mode uses, and listeners that fail on purpose (an expired certificate, a
certificate for another host)."""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from pathlib import Path

from config.settings import Settings
from streams.kafka.certs import LOCAL_HOSTS, CertificateAuthority, TlsFiles, local_tls_files
from streams.kafka.local import (
    BrokerInfo,
    BrokerSecurity,
    ClientListener,
    free_port,
    start_broker,
)

USER = "storywatch-test"

#: mode -> (listener, protocol, mechanism, client certificate)
MODES = {
    "ssl": ("SSL", "SSL", None, False),
    "mtls": ("MTLS", "SSL", None, True),
    "sasl_ssl_scram256": ("SASL_SSL", "SASL_SSL", "SCRAM-SHA-256", False),
    "sasl_ssl_scram512": ("SASL_SSL", "SASL_SSL", "SCRAM-SHA-512", False),
    "sasl_ssl_plain": ("SASL_SSL", "SASL_SSL", "PLAIN", False),  # Confluent Cloud's form
    "sasl_plaintext_plain": ("SASL_PLAINTEXT", "SASL_PLAINTEXT", "PLAIN", False),
}


@dataclass(frozen=True)
class SecureBroker:
    info: BrokerInfo
    ports: dict[str, int]  # listener name -> port
    tls: TlsFiles
    password: str
    folder: Path

    def address(self, listener: str, host: str = "127.0.0.1") -> str:
        return f"{host}:{self.ports[listener]}"

    def env(self, mode: str) -> dict[str, str]:
        """The STORYWATCH_KAFKA_* settings of a client of ``mode``."""
        listener, protocol, mechanism, client_cert = MODES[mode]
        env = {
            "STORYWATCH_KAFKA_BOOTSTRAP": self.address(listener),
            "STORYWATCH_KAFKA_SECURITY_PROTOCOL": protocol,
        }
        if mechanism:
            env |= {
                "STORYWATCH_KAFKA_SASL_MECHANISM": mechanism,
                "STORYWATCH_KAFKA_SASL_USERNAME": USER,
                "STORYWATCH_KAFKA_SASL_PASSWORD": self.password,
            }
        if protocol.endswith("SSL"):
            env["STORYWATCH_KAFKA_SSL_CAFILE"] = str(self.tls.ca.cert)
        if client_cert:
            env["STORYWATCH_KAFKA_SSL_CERTFILE"] = str(self.tls.client_cert)
            env["STORYWATCH_KAFKA_SSL_KEYFILE"] = str(self.tls.client_key)
        return env


def start_secure_broker(folder: Path) -> SecureBroker:
    """Listeners: SASL_PLAINTEXT (PLAIN; the brokers' own), SSL, MTLS (client certificate
    required), SASL_SSL (SCRAM-SHA-256/512), EXPIRED (an SSL listener whose certificate
    expired yesterday), WRONGHOST (an SSL listener whose certificate names another host) and
    SCRAMONLY (SASL_SSL offering SCRAM-SHA-512 only)."""
    settings = Settings()
    tls = local_tls_files(folder / "tls", LOCAL_HOSTS)
    now = dt.datetime.now(dt.UTC)
    expired = folder / "tls" / "expired-keystore.pem"
    tls.ca.issue(
        folder / "tls" / "expired-key.pem",
        folder / "tls" / "expired.pem",
        common_name="expired",
        hosts=LOCAL_HOSTS,
        not_before=now - dt.timedelta(days=10),
        not_after=now - dt.timedelta(days=1),
        chain_with_key=expired,
    )
    wrong_host = folder / "tls" / "wronghost-keystore.pem"
    tls.ca.issue(
        folder / "tls" / "wronghost-key.pem",
        folder / "tls" / "wronghost.pem",
        common_name="kafka.invalid",
        hosts=("kafka.invalid",),
        chain_with_key=wrong_host,
    )
    names = ("SASL_PLAINTEXT", "SSL", "MTLS", "SASL_SSL", "EXPIRED", "WRONGHOST", "SCRAMONLY")
    ports = {name: free_port() for name in names}
    listeners = (
        ClientListener("SASL_PLAINTEXT", "SASL_PLAINTEXT", ports["SASL_PLAINTEXT"]),
        ClientListener("SSL", "SSL", ports["SSL"]),
        ClientListener("MTLS", "SSL", ports["MTLS"], client_auth=True),
        ClientListener("SASL_SSL", "SASL_SSL", ports["SASL_SSL"]),
        ClientListener("EXPIRED", "SSL", ports["EXPIRED"], keystore=expired),
        ClientListener("WRONGHOST", "SSL", ports["WRONGHOST"], keystore=wrong_host),
        ClientListener("SCRAMONLY", "SASL_SSL", ports["SCRAMONLY"], mechanisms=("SCRAM-SHA-512",)),
    )
    password = "pw-" + secrets.token_hex(12)
    info = start_broker(
        settings.kafka_dir,
        settings.kafka_version,
        port=ports["SASL_PLAINTEXT"],
        data_dir=folder / "data",
        security=BrokerSecurity(listeners, tls, {USER: password}),
    )
    return SecureBroker(info, ports, tls, password, folder)


def other_ca(folder: Path) -> Path:
    """The certificate of a CA that signed nothing the broker shows."""
    return CertificateAuthority.create(folder / "other-ca", "Some other CA").cert
