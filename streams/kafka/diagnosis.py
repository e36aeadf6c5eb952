"""Check a :class:`KafkaConnection` before a command reads or writes anything, and turn each
way it can fail into one line that names the setting to fix.

Kafka clients report a refused TLS handshake or login as "no brokers available" after their
retries run out. Here one short probe, speaking just enough of the Kafka protocol (ApiVersions,
SaslHandshake, Metadata: each request a few bytes), tells them apart in seconds: nobody
listens, a plaintext client on a TLS port or the reverse, an unknown CA or expired
certificate, a hostname mismatch, a missing or refused client certificate, a mechanism the
broker does not offer, a listener that wants a login; and then a real client of the
connection's own kind proves the login. No secret goes into a message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import struct

from streams.exceptions import BrokerUnavailable, KafkaSecurityError
from streams.kafka.connection import KafkaConnection

__all__ = ["check_connection"]

# Why 10 s: a broker answers a handshake or a tiny request in milliseconds; 10 s covers a
# distant managed cluster on a slow link and keeps every failure well inside 60 s.
PROBE_TIMEOUT_S = 10.0
# Why 20 s: the real client's bootstrap after a good probe (the login round trips); with
# the probe's 10 s this stays under the 60 s a failure may take (a refused login is
# answered at once).
LOGIN_TIMEOUT_MS = 20_000
# OpenSSL's X509_V_ERR codes the messages tell apart.
_EXPIRED = 10
_NAME_MISMATCH = (62, 63, 64)  # hostname, e-mail, IP address
# Kafka API keys and the SASL error "unsupported mechanism".
_METADATA, _SASL_HANDSHAKE, _API_VERSIONS = 3, 17, 18
_UNSUPPORTED_SASL_MECHANISM, _ILLEGAL_SASL_STATE = 33, 34
_CLIENT_ID = b"storywatch-check"


class _Closed(Exception):
    """The broker closed the connection instead of answering."""


def _hosts(bootstrap: str) -> list[tuple[str, int]]:
    found = []
    for item in bootstrap.split(","):
        host, _, port = item.strip().rpartition(":")
        if port.isdigit():
            found.append((host.strip("[]") or "127.0.0.1", int(port)))
    return found


def _request(sock: socket.socket, api_key: int, version: int, body: bytes = b"") -> bytes:
    """Send one request (header v1) and answer the response's body (after the correlation
    id); raises :class:`_Closed` when the broker hangs up instead."""
    header = struct.pack(">hhih", api_key, version, 7, len(_CLIENT_ID)) + _CLIENT_ID
    payload = header + body
    sock.sendall(struct.pack(">i", len(payload)) + payload)
    size = struct.unpack(">i", _read(sock, 4))[0]
    return _read(sock, size)[4:]


def _read(sock: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise _Closed
        data += chunk
    return data


def _string(text: str) -> bytes:
    raw = text.encode()
    return struct.pack(">h", len(raw)) + raw


def _offered_mechanisms(body: bytes) -> list[str]:
    """SaslHandshake v1 response: error code, then an array of strings."""
    count = struct.unpack(">i", body[2:6])[0]
    names, at = [], 6
    for _ in range(max(count, 0)):
        size = struct.unpack(">h", body[at : at + 2])[0]
        names.append(body[at + 2 : at + 2 + size].decode(errors="replace"))
        at += 2 + size
    return names


def _speaks_plaintext_kafka(host: str, port: int) -> bool:
    """True if ``host:port`` answers a plaintext ApiVersions request."""
    try:
        with socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S) as sock:
            _request(sock, _API_VERSIONS, 0)
            return True
    except (OSError, _Closed, struct.error):
        return False


def _tls_wrap(
    raw: socket.socket, connection: KafkaConnection, host: str, port: int
) -> ssl.SSLSocket:
    context = connection.ssl_context()
    assert context is not None
    where = f"the broker at {host}:{port}"
    try:
        return context.wrap_socket(raw, server_hostname=host)
    except ssl.SSLCertVerificationError as exc:
        if exc.verify_code in _NAME_MISMATCH:
            raise KafkaSecurityError(
                f"{where} shows a certificate that does not name {host!r}: connect by a name "
                "it holds (STORYWATCH_KAFKA_BOOTSTRAP), or turn the check off with "
                "STORYWATCH_KAFKA_SSL_CHECK_HOSTNAME=false on a network you trust"
            ) from None
        trust = (
            f"STORYWATCH_KAFKA_SSL_CAFILE={connection.ssl_cafile}"
            if connection.ssl_cafile
            else "the system trust store (STORYWATCH_KAFKA_SSL_CAFILE is unset)"
        )
        if exc.verify_code == _EXPIRED:
            raise KafkaSecurityError(
                f"{where} shows an expired certificate (checked against {trust}): renew the "
                "broker's certificate, or check STORYWATCH_KAFKA_SSL_CAFILE names the right CA"
            ) from None
        raise KafkaSecurityError(
            f"{where} shows a certificate {trust} does not trust ({exc.verify_message}): set "
            "STORYWATCH_KAFKA_SSL_CAFILE to the PEM file of the CA that signed it"
        ) from None
    except (ssl.SSLError, ConnectionError) as exc:
        if _speaks_plaintext_kafka(host, port):
            raise KafkaSecurityError(
                f"{where} does not speak TLS on that port, but STORYWATCH_KAFKA_SECURITY_PROTOCOL="
                f"{connection.security_protocol}: set it to PLAINTEXT or SASL_PLAINTEXT, or point "
                "STORYWATCH_KAFKA_BOOTSTRAP at the broker's TLS port"
            ) from None
        if isinstance(exc, ssl.SSLError):
            raise _tls_refused(exc, connection, where) from None
        raise
    except TimeoutError as exc:
        raise KafkaSecurityError(
            f"{where} broke off the TLS handshake ({type(exc).__name__}): if that port "
            "speaks plaintext, set STORYWATCH_KAFKA_SECURITY_PROTOCOL to PLAINTEXT or "
            "SASL_PLAINTEXT, or point STORYWATCH_KAFKA_BOOTSTRAP at the TLS port"
        ) from None


def _tls_refused(exc: ssl.SSLError, connection: KafkaConnection, where: str) -> Exception:
    reason = str(getattr(exc, "reason", "") or exc).upper()
    if "WRONG_VERSION" in reason or "RECORD_LAYER" in reason or "PACKET_LENGTH" in reason:
        return KafkaSecurityError(
            f"{where} does not speak TLS on that port, but STORYWATCH_KAFKA_SECURITY_PROTOCOL="
            f"{connection.security_protocol}: set it to PLAINTEXT or SASL_PLAINTEXT, or point "
            "STORYWATCH_KAFKA_BOOTSTRAP at the broker's TLS port"
        )
    wants_cert = any(
        word in reason for word in ("CERTIFICATE_REQUIRED", "HANDSHAKE_FAILURE", "BAD_CERTIFICATE")
    )
    if wants_cert and not connection.ssl_certfile:
        return KafkaSecurityError(
            f"{where} wants a client certificate (mutual TLS): set "
            "STORYWATCH_KAFKA_SSL_CERTFILE and STORYWATCH_KAFKA_SSL_KEYFILE"
        )
    if any(word in reason for word in ("CERTIFICATE", "UNKNOWN_CA", "HANDSHAKE_FAILURE")):
        return KafkaSecurityError(
            f"{where} refused the client certificate STORYWATCH_KAFKA_SSL_CERTFILE="
            f"{connection.ssl_certfile} ({reason.lower()}): use one signed by a CA the broker "
            "trusts, and not expired"
        )
    return KafkaSecurityError(
        f"the TLS handshake with {where} failed ({reason.lower()}): check "
        "STORYWATCH_KAFKA_SECURITY_PROTOCOL and the STORYWATCH_KAFKA_SSL_* settings"
    )


def _speaks_tls(host: str, port: int) -> bool:
    """True if ``host:port`` completes a TLS handshake (nothing verified: only asking)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # a question, never a session
    try:
        with (
            socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S) as raw,
            context.wrap_socket(raw, server_hostname=host),
        ):
            return True
    except (OSError, ssl.SSLError):
        return False


def _probe(connection: KafkaConnection, host: str, port: int) -> None:
    """One connection to one broker: transport, TLS, then the requests a client sends first."""
    where = f"the broker at {host}:{port}"
    try:
        raw = socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S)
    except OSError as exc:
        raise BrokerUnavailable(
            f"no Kafka broker answers at {host}:{port} ({exc.strerror or exc}): run "
            "`storywatch kafka start` or fix STORYWATCH_KAFKA_BOOTSTRAP"
        ) from None
    sock: socket.socket = raw
    try:
        if connection.uses_tls:
            sock = _tls_wrap(raw, connection, host, port)
        try:
            _request(sock, _API_VERSIONS, 0)
        except (_Closed, ConnectionError, TimeoutError, ssl.SSLError) as exc:
            if isinstance(exc, ssl.SSLError):
                raise _tls_refused(exc, connection, where) from None
            if not connection.uses_tls and _speaks_tls(host, port):
                raise KafkaSecurityError(
                    f"{where} speaks TLS on that port, but STORYWATCH_KAFKA_SECURITY_PROTOCOL="
                    f"{connection.security_protocol}: set it to SSL (or SASL_SSL with a login) "
                    "and STORYWATCH_KAFKA_SSL_CAFILE to the broker's CA"
                ) from None
            if connection.uses_tls and not connection.ssl_certfile:
                raise KafkaSecurityError(
                    f"{where} closed the TLS connection at once: if it wants a client "
                    "certificate (mutual TLS), set STORYWATCH_KAFKA_SSL_CERTFILE and "
                    "STORYWATCH_KAFKA_SSL_KEYFILE"
                ) from None
            raise KafkaSecurityError(
                f"{where} closed the connection without answering: check "
                "STORYWATCH_KAFKA_SECURITY_PROTOCOL and STORYWATCH_KAFKA_BOOTSTRAP (the port)"
            ) from None
        if connection.uses_sasl:
            _check_mechanism(sock, connection, where)
        else:
            _check_no_login_needed(sock, connection, where)
    finally:
        with contextlib.suppress(OSError):
            sock.close()


def _check_mechanism(sock: socket.socket, connection: KafkaConnection, where: str) -> None:
    try:
        body = _request(sock, _SASL_HANDSHAKE, 1, _string(connection.sasl_mechanism))
    except (_Closed, ConnectionError, ssl.SSLError):
        raise KafkaSecurityError(
            f"{where} does not take a SASL login on that port, but "
            f"STORYWATCH_KAFKA_SECURITY_PROTOCOL={connection.security_protocol}: set it to "
            f"{'SSL' if connection.uses_tls else 'PLAINTEXT'} and unset "
            "STORYWATCH_KAFKA_SASL_*, or use the broker's SASL port"
        ) from None
    error = struct.unpack(">h", body[:2])[0]
    if error == _ILLEGAL_SASL_STATE:  # a listener without SASL answers the handshake so
        raise KafkaSecurityError(
            f"{where} does not take a SASL login on that port, but "
            f"STORYWATCH_KAFKA_SECURITY_PROTOCOL={connection.security_protocol}: set it to "
            f"{'SSL' if connection.uses_tls else 'PLAINTEXT'} and unset "
            "STORYWATCH_KAFKA_SASL_*, or use the broker's SASL port"
        )
    if error == _UNSUPPORTED_SASL_MECHANISM:
        offered = ", ".join(_offered_mechanisms(body)) or "none"
        raise KafkaSecurityError(
            f"{where} does not offer STORYWATCH_KAFKA_SASL_MECHANISM="
            f"{connection.sasl_mechanism}; it offers {offered}: set one of those"
        )


def _check_no_login_needed(sock: socket.socket, connection: KafkaConnection, where: str) -> None:
    try:
        _request(sock, _METADATA, 0, struct.pack(">i", 0))
    except (_Closed, ConnectionError) as exc:
        raise KafkaSecurityError(
            f"{where} wants a login (SASL): set STORYWATCH_KAFKA_SECURITY_PROTOCOL="
            f"SASL_{'SSL' if connection.uses_tls else 'PLAINTEXT'}, "
            "STORYWATCH_KAFKA_SASL_MECHANISM, STORYWATCH_KAFKA_SASL_USERNAME and "
            "STORYWATCH_KAFKA_SASL_PASSWORD"
        ) from exc
    except ssl.SSLError as exc:
        raise _tls_refused(exc, connection, where) from None


def _check_login(connection: KafkaConnection) -> None:
    """A real client of this connection bootstraps (and so logs in). aiokafka reports a
    refused login at once, where kafka-python retries until its timeout."""
    from aiokafka.errors import KafkaError

    async def bootstrap() -> None:
        admin = connection.aio_admin(request_timeout_ms=LOGIN_TIMEOUT_MS)
        try:
            await admin.start()
        finally:
            await admin.close()

    quiet = logging.getLogger("aiokafka")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)  # its "Unable connect" line would repeat ours
    try:
        asyncio.run(asyncio.wait_for(bootstrap(), LOGIN_TIMEOUT_MS / 1000))
    except (KafkaError, OSError, TimeoutError) as exc:
        if connection.uses_sasl:
            raise KafkaSecurityError(
                f"the broker at {connection.bootstrap} refused the login "
                f"({connection.sasl_mechanism} as {connection.sasl_username!r}, "
                "STORYWATCH_KAFKA_SASL_MECHANISM): check STORYWATCH_KAFKA_SASL_USERNAME and "
                "STORYWATCH_KAFKA_SASL_PASSWORD (or STORYWATCH_KAFKA_SASL_PASSWORD_FILE)"
            ) from None
        raise BrokerUnavailable(
            f"cannot reach Kafka at {connection.bootstrap} ({type(exc).__name__}, "
            f"{connection.describe()}): check STORYWATCH_KAFKA_BOOTSTRAP and "
            "STORYWATCH_KAFKA_SECURITY_PROTOCOL"
        ) from None
    finally:
        quiet.setLevel(level)


def check_connection(connection: KafkaConnection) -> None:
    """Raise :class:`BrokerUnavailable` (or its :class:`KafkaSecurityError`) with one line
    naming the setting to fix unless a broker of ``connection.bootstrap`` takes this
    connection's TLS and login. Takes seconds; nothing is written."""
    hosts = _hosts(connection.bootstrap)
    if not hosts:
        raise BrokerUnavailable(
            f"STORYWATCH_KAFKA_BOOTSTRAP={connection.bootstrap!r} names no host:port: fix it"
        )
    failures: list[BrokerUnavailable] = []
    for host, port in hosts:
        try:
            _probe(connection, host, port)
        except KafkaSecurityError:
            raise  # the same settings meet every broker: the first answer says it all
        except BrokerUnavailable as exc:
            failures.append(exc)
            continue
        break
    else:
        raise failures[0]
    _check_login(connection)
