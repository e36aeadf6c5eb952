"""The secured local broker of ``storywatch kafka start --security MODE``: its listener, TLS
files and SASL user, and the ``STORYWATCH_*`` settings a client needs to reach it."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from streams.kafka.certs import local_tls_files
from streams.kafka.local import BrokerSecurity, ClientListener

__all__ = ["SECURITY_MODES", "LocalSecurity", "local_security"]

#: mode -> (listener security protocol, client certificate required, SASL mechanism)
SECURITY_MODES: dict[str, tuple[str, bool, str | None]] = {
    "ssl": ("SSL", False, None),
    "mtls": ("SSL", True, None),
    "sasl_ssl": ("SASL_SSL", False, "SCRAM-SHA-512"),
    "sasl_plaintext": ("SASL_PLAINTEXT", False, "PLAIN"),
}
DEFAULT_USER = "storywatch"


@dataclass(frozen=True)
class LocalSecurity:
    security: BrokerSecurity
    env: dict[str, str]  # what a client exports: never a password, a password file at most


def _password_file(folder: Path) -> Path:
    """A generated password, in a file only its owner reads (made once, then reused)."""
    path = folder / "client-password"
    if not path.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(secrets.token_urlsafe(18) + "\n")
    return path


def local_security(
    mode: str,
    port: int,
    data_dir: Path,
    *,
    username: str | None = None,
    password: SecretStr | None = None,
) -> LocalSecurity:
    """The broker side and the client settings of ``mode`` on 127.0.0.1:``port``. The SASL
    user is ``username``/``password`` when given, else ``storywatch`` with a generated
    password kept in ``data_dir/client-password``."""
    protocol, client_auth, mechanism = SECURITY_MODES[mode]
    tls_on = protocol in ("SSL", "SASL_SSL")
    tls = local_tls_files(data_dir / "tls") if tls_on else None
    env = {
        "STORYWATCH_KAFKA_BOOTSTRAP": f"127.0.0.1:{port}",
        "STORYWATCH_KAFKA_SECURITY_PROTOCOL": protocol,
    }
    users: dict[str, str] = {}
    if mechanism is not None:
        env["STORYWATCH_KAFKA_SASL_MECHANISM"] = mechanism
        if username and password is not None:
            users[username] = password.get_secret_value()
            env["STORYWATCH_KAFKA_SASL_USERNAME"] = username
        else:
            secret_file = _password_file(data_dir)
            users[DEFAULT_USER] = secret_file.read_text(encoding="utf-8").strip()
            env["STORYWATCH_KAFKA_SASL_USERNAME"] = DEFAULT_USER
            env["STORYWATCH_KAFKA_SASL_PASSWORD_FILE"] = str(secret_file)
    if tls is not None:
        env["STORYWATCH_KAFKA_SSL_CAFILE"] = str(tls.ca.cert)
        if client_auth:
            env["STORYWATCH_KAFKA_SSL_CERTFILE"] = str(tls.client_cert)
            env["STORYWATCH_KAFKA_SSL_KEYFILE"] = str(tls.client_key)
    listener = ClientListener(protocol, protocol, port, client_auth=client_auth)
    return LocalSecurity(BrokerSecurity((listener,), tls, users), env)
