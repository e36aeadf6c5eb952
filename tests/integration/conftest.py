"""Fixtures the integration tests share: the secured broker (started once, when first asked)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from config.exceptions import StorywatchError
from streams.kafka.local import stop_broker
from tests.integration.secure_broker import SecureBroker, start_secure_broker


@pytest.fixture(scope="session")
def secure_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureBroker]:
    """One broker with a listener per security mode (tests/integration/secure_broker.py). A
    broker that cannot start FAILS the tests (never skips them)."""
    folder = tmp_path_factory.mktemp("secure-broker")
    try:
        broker = start_secure_broker(folder)
    except StorywatchError as exc:
        pytest.fail(f"the secured test broker did not start: {exc}")
    yield broker
    stop_broker(folder / "data")
