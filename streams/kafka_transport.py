"""The worker's Faust app with durable producers: every record it writes is sent with
``acks=all`` and idempotence, so a broker that dies mid-write neither loses an acked record
(with ``min.insync.replicas`` >= 2 on a cluster) nor makes a retried send appear twice."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TransportT

__all__ = ["DurableApp"]


class _IdempotentProducer(faust_aiokafka.Producer):
    def _settings_extra(self) -> Mapping[str, Any]:
        return {**super()._settings_extra(), "acks": "all", "enable_idempotence": True}


class _DurableTransport(faust_aiokafka.Transport):
    Producer = _IdempotentProducer


class DurableApp(faust.App):
    """``faust.App`` whose producer (tables' changelogs, every topic send) is idempotent.

    Faust turns idempotence on only inside transactions (exactly-once mode, which this
    pipeline does not use: its effects are idempotent by key instead)."""

    def _new_transport(self) -> TransportT:
        return _DurableTransport(self.conf.broker_consumer, self)

    def _new_producer_transport(self) -> TransportT:
        return _DurableTransport(self.conf.broker_producer, self)
