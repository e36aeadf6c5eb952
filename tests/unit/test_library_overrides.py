"""Every override of Faust's or aiokafka's private state (streams/kafka/overrides.py) still
finds what it relies on in the pinned libraries, and takes effect on a built app; a library
change underneath one fails here, naming it."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator
from typing import Any

import pytest
from faust.transport import consumer as faust_consumer
from faust.transport.producer import ProducerBuffer

from streams.kafka import overrides
from streams.kafka.connection import KafkaConnection
from streams.kafka.overrides import OVERRIDES, PINNED, LibraryChanged, check, check_instance
from streams.kafka.transport import (
    DurableApp,
    _DrainableBuffer,
    _GaplessConsumer,
    _IdempotentProducer,
)
from streams.tables import SinglePartitionTable
from streams.topics import DeadLetteringTopic
from tests.conftest import PROJECT_ROOT


def test_the_table_is_read_against_the_versions_pyproject_pins() -> None:
    pins = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    found = {}
    for requirement in pins["dependencies"]:
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)==([^;\s]+)", requirement.strip())
        if match and match[1] in PINNED:
            found[match[1]] = match[2]
    assert found == PINNED


@pytest.mark.parametrize("override", OVERRIDES, ids=lambda o: o.target)
def test_each_override_finds_what_it_relies_on(override: overrides.Override) -> None:
    assert override.library in PINNED and override.reason and override.used_by
    check(override)


@pytest.fixture
def app() -> Iterator[DurableApp]:
    """The worker's app class, built (nothing started: no broker needed)."""
    built = DurableApp("overrides-test", broker="kafka://127.0.0.1:1", store="memory://")
    yield built


async def test_instance_attributes_are_on_built_objects(app: DurableApp) -> None:
    consumer = KafkaConnection("127.0.0.1:1").aio_consumer()
    built = [app.consumer, app.producer, app.producer.buffer, consumer]
    for override in (o for o in OVERRIDES if o.kind == "instance"):
        owner = override.owner()
        holders = [obj for obj in built if isinstance(obj, owner)]
        assert holders, f"no built object is a {owner.__name__} for {override.target}"
        for obj in holders:
            check_instance(override, obj)


def test_the_overrides_take_effect_on_a_built_app(app: DurableApp) -> None:
    assert type(app.consumer) is _GaplessConsumer
    assert type(app.producer) is _IdempotentProducer
    assert type(app.producer.buffer) is _DrainableBuffer
    assert app.producer.buffer.handing_over == 0
    # What Faust's aiokafka producer is built with (it calls _settings_extra in _new_producer)
    assert app.producer._settings_extra()["acks"] == "all"
    assert app.producer._settings_extra()["enable_idempotence"] is True
    # Faust's commit path resolves to the override
    assert type(app.consumer)._new_offset is _GaplessConsumer._new_offset
    assert isinstance(app.rebalancing, bool) and app.flow_control.is_active() in (True, False)
    dead_letters: Any = object()
    topic = DeadLetteringTopic(app, topics=["t"], dead_letters=dead_letters)
    assert topic.clone(is_iterator=True).dead_letters is dead_letters
    table = SinglePartitionTable(app, name="t", partitions=1)
    assert table.partition_for_key("any key") == 0


# --- a changed library fails loudly ---------------------------------------------------------


def _entry(target_end: str) -> overrides.Override:
    (found,) = [o for o in OVERRIDES if o.target.endswith(target_end)]
    return found


def test_a_method_gone_fails_naming_the_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(faust_consumer.Consumer, "_new_offset")
    with pytest.raises(LibraryChanged, match=r"Consumer\._new_offset .*it is gone.*transport"):
        check(_entry("Consumer._new_offset"))


def test_a_changed_signature_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    async def _send_pending(self: Any, fut: Any, timeout: float) -> None: ...

    monkeypatch.setattr(ProducerBuffer, "_send_pending", _send_pending)
    with pytest.raises(LibraryChanged, match=r"parameters are now \('self', 'fut', 'timeout'\)"):
        check(_entry("ProducerBuffer._send_pending"))


def test_a_hook_no_longer_called_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    def _filter_committable_offsets(self: Any, tps: Any) -> dict[Any, int]:
        return {}

    monkeypatch.setattr(
        faust_consumer.Consumer, "_filter_committable_offsets", _filter_committable_offsets
    )
    with pytest.raises(LibraryChanged, match="_filter_committable_offsets no longer calls it"):
        check(_entry("Consumer._new_offset"))


def test_another_installed_version_fails_every_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(overrides, "version", lambda name: "0.99.0")
    for override in OVERRIDES:
        with pytest.raises(LibraryChanged, match=r"0\.99\.0 is installed.*pin "):
            check(override)


def test_an_instance_attribute_gone_fails(monkeypatch: pytest.MonkeyPatch, app: Any) -> None:
    override = _entry("Consumer._read_offset")
    consumer = app.consumer
    monkeypatch.delattr(consumer, "_read_offset")
    with pytest.raises(LibraryChanged, match="a built _GaplessConsumer no longer has it"):
        check_instance(override, consumer)
