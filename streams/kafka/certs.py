"""A private CA and the certificates a local TLS broker and its clients need, as PEM files
(Kafka 3.9 reads PEM keystores: ``ssl.keystore.type=PEM``). Made with ``cryptography``; nothing
is downloaded. For ``storywatch kafka start --security ...`` and the tests; a real deployment
uses the certificates its operator issues.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["CertificateAuthority", "TlsFiles", "client_properties", "local_tls_files"]

#: The names the local broker is reached by (it listens on 127.0.0.1 only).
LOCAL_HOSTS = ("127.0.0.1", "localhost")
# Why 825 days: the longest validity browsers and most TLS stacks still accept for a leaf;
# a local broker's certificates should not expire under a long-lived demo.
_VALID_DAYS = 825


def _write_private(path: Path, data: bytes) -> None:
    """Write a key file readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,  # the form Kafka's PEM keystore reads
        serialization.NoEncryption(),
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True)
class CertificateAuthority:
    """A CA that signs certificates; ``cert`` is the file clients trust."""

    cert: Path
    key: Path

    @classmethod
    def create(cls, folder: Path, name: str = "Storywatch local CA") -> CertificateAuthority:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=_VALID_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .sign(key, hashes.SHA256())
        )
        folder.mkdir(parents=True, exist_ok=True)
        ca = cls(folder / "ca.pem", folder / "ca-key.pem")
        _write_private(ca.key, _key_pem(key))
        ca.cert.write_bytes(_cert_pem(cert))
        return ca

    def issue(
        self,
        key_path: Path,
        cert_path: Path,
        *,
        common_name: str,
        hosts: Sequence[str] = (),
        server: bool = True,
        client: bool = True,
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
        chain_with_key: Path | None = None,
    ) -> None:
        """Write a key and a certificate signed by this CA, for ``hosts`` (IP addresses and
        names in the SAN). ``chain_with_key``: also write key + certificate + CA in one PEM
        file, the form of Kafka's PEM keystore."""
        ca_key = serialization.load_pem_private_key(self.key.read_bytes(), None)
        ca_cert = x509.load_pem_x509_certificate(self.cert.read_bytes())
        assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        usages = ([ExtendedKeyUsageOID.SERVER_AUTH] if server else []) + (
            [ExtendedKeyUsageOID.CLIENT_AUTH] if client else []
        )
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before or now - dt.timedelta(minutes=5))
            .not_valid_after(not_after or now + dt.timedelta(days=_VALID_DAYS))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
            )
        )
        names: list[x509.GeneralName] = []
        for host in hosts:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        cert = builder.sign(ca_key, hashes.SHA256())
        _write_private(key_path, _key_pem(key))
        cert_path.write_bytes(_cert_pem(cert))
        if chain_with_key is not None:
            _write_private(chain_with_key, _key_pem(key) + _cert_pem(cert) + _cert_pem(ca_cert))


@dataclass(frozen=True)
class TlsFiles:
    """What a local TLS broker and its clients use: the CA clients trust, the broker's PEM
    keystore (key + certificate chain), and a client certificate for mutual TLS."""

    ca: CertificateAuthority
    keystore: Path
    client_cert: Path
    client_key: Path


def client_properties(files: TlsFiles, path: Path) -> Path:
    """A properties file for Kafka's own command-line tools (``--command-config``): TLS with
    the CA of ``files`` (a healthcheck's ``kafka-broker-api-versions.sh``)."""
    path.write_text(
        "security.protocol=SSL\n"
        "ssl.truststore.type=PEM\n"
        f"ssl.truststore.location={files.ca.cert.name}\n",
        encoding="utf-8",
    )
    return path


def local_tls_files(folder: Path, hosts: Sequence[str] = LOCAL_HOSTS) -> TlsFiles:
    """The CA, broker and client certificates in ``folder``: made once, then reused (a client
    keeps trusting the CA file across broker restarts)."""
    files = TlsFiles(
        CertificateAuthority(folder / "ca.pem", folder / "ca-key.pem"),
        folder / "broker-keystore.pem",
        folder / "client.pem",
        folder / "client-key.pem",
    )
    wanted = (files.ca.cert, files.ca.key, files.keystore, files.client_cert, files.client_key)
    if all(path.is_file() for path in wanted):
        return files
    ca = CertificateAuthority.create(folder)
    ca.issue(
        folder / "broker-key.pem",
        folder / "broker.pem",
        common_name="storywatch-broker",
        hosts=hosts,
        chain_with_key=files.keystore,
    )
    ca.issue(files.client_key, files.client_cert, common_name="storywatch-client", server=False)
    return files
