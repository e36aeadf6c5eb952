"""Every place Storywatch overrides or reads Faust's or aiokafka's private state, in one table
with its reason, and the checks that fail loudly when the pinned library changes under it.

Faust 0.15.3 and aiokafka 0.14.0 offer no public hook for what the overrides do (a commit
that covers only acked records, a flush that waits for the table writes, idempotent
producers outside transactions, a fresh metadata fetch). Each entry names the library's
attribute, the signature the override was written against (its parameter names), the
library code that must still call it (else an override is silently dead), where
Storywatch relies on it and why. ``tests/unit/test_library_overrides.py`` runs
:func:`check` on every entry, and :func:`check_instance` on a built app's consumer and
producer: upgrading either library turns that test red, naming the entry, before a worker
runs on code that no longer does what its override assumed.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from importlib.metadata import version
from typing import Any, Literal

from config.exceptions import StorywatchError

__all__ = ["OVERRIDES", "PINNED", "LibraryChanged", "Override", "check", "check_instance"]

# The versions every entry below was read against (pyproject.toml pins the same).
PINNED = {"faust-streaming": "0.15.3", "aiokafka": "0.14.0"}

Kind = Literal["method", "attribute", "instance"]


class LibraryChanged(StorywatchError):
    """A private part of Faust or aiokafka that Storywatch overrides or reads has changed."""


@dataclass(frozen=True)
class Override:
    library: str  # the distribution: a key of PINNED
    target: str  # "module:Class.attribute"
    # method: a callable on the class; attribute: on the class; instance: set by __init__
    kind: Kind
    used_by: str  # where Storywatch relies on it
    reason: str
    parameters: tuple[str, ...] | None = None  # a method's parameter names, self included
    called_from: str | None = None  # "module:Class.method" whose code must still call it

    @property
    def attribute(self) -> str:
        return self.target.rpartition(".")[2]

    def owner(self) -> Any:
        """The class (or module) that holds the attribute."""
        module_name, _, path = self.target.partition(":")
        found: Any = importlib.import_module(module_name)
        for part in path.split(".")[:-1]:
            found = getattr(found, part)
        return found


_FAUST_CONSUMER = "faust.transport.consumer:Consumer"
_AIOKAFKA_CONSUMER = "faust.transport.drivers.aiokafka:Consumer"
_TRANSPORT = "streams/kafka/transport.py"

OVERRIDES: tuple[Override, ...] = (
    Override(
        "faust-streaming",
        "faust.app.base:App._new_transport",
        "method",
        f"{_TRANSPORT} DurableApp",
        "the consumer's transport is built with _GaplessConsumer (Faust has no setting for "
        "the consumer class)",
        ("self",),
        "faust.app.base:App.transport",
    ),
    Override(
        "faust-streaming",
        "faust.app.base:App._new_producer_transport",
        "method",
        f"{_TRANSPORT} DurableApp",
        "the producer's transport is built with _IdempotentProducer",
        ("self",),
        "faust.app.base:App.producer_transport",
    ),
    Override(
        "faust-streaming",
        "faust.transport.drivers.aiokafka:Transport.Consumer",
        "attribute",
        f"{_TRANSPORT} _DurableTransport",
        "the class the transport instantiates for the app's consumer",
    ),
    Override(
        "faust-streaming",
        "faust.transport.drivers.aiokafka:Transport.Producer",
        "attribute",
        f"{_TRANSPORT} _DurableTransport",
        "the class the transport instantiates for the app's producer",
    ),
    Override(
        "faust-streaming",
        f"{_FAUST_CONSUMER}._new_offset",
        "method",
        f"{_TRANSPORT} _GaplessConsumer._new_offset",
        "Faust's commit offset is off by one past ONE unacked record (module doc of "
        "transport.py): a commit here covers only an unbroken run of acked offsets",
        ("self", "tp"),
        f"{_FAUST_CONSUMER}._filter_committable_offsets",
    ),
    Override(
        "faust-streaming",
        f"{_FAUST_CONSUMER}.getmany",
        "method",
        f"{_TRANSPORT} _GaplessConsumer.getmany",
        "records fetched after a jump in offsets or during a rebalance are sought back to "
        "and read again instead of being skipped",
        ("self", "timeout"),
        f"{_FAUST_CONSUMER}._drain_messages",
    ),
    Override(
        "faust-streaming",
        f"{_FAUST_CONSUMER}.__post_init__",
        "method",
        f"{_TRANSPORT} _GaplessConsumer.__post_init__",
        "mode's construction hook: where the override's own state is set up",
        ("self",),
    ),
    *(
        Override(
            "faust-streaming",
            f"{_FAUST_CONSUMER}.{name}",
            "instance",
            f"{_TRANSPORT} _GaplessConsumer{where}",
            why,
        )
        for name, where, why in (
            ("_acked", "._new_offset", "the acked offsets per partition, trimmed on commit"),
            ("_acked_index", "._new_offset", "the set kept beside _acked, trimmed with it"),
            ("_gap", "._new_offset/.getmany", "offsets known absent (compaction), chopped"),
            ("_committed_offset", "._new_offset", "the committed offset (the next to read)"),
            ("_unacked_messages", "._new_offset", "a stalled head still in flight"),
            ("_read_offset", ".getmany", "Faust's last read offset: a jump past it"),
        )
    ),
    Override(
        "faust-streaming",
        f"{_FAUST_CONSUMER}._committed_offset",
        "instance",
        "streams/kafka/consumer_lag.py ConsumerLag.refresh",
        "the committed offsets the lag gauge subtracts (Faust asks the broker otherwise)",
    ),
    Override(
        "faust-streaming",
        "faust.transport.producer:ProducerBuffer._send_pending",
        "method",
        f"{_TRANSPORT} _DrainableBuffer._send_pending",
        "counts the record being handed to the client, so a flush waits for it too",
        ("self", "fut"),
        "faust.transport.producer:ProducerBuffer._handle_pending",
    ),
    Override(
        "faust-streaming",
        "faust.transport.producer:ProducerBuffer.__post_init__",
        "method",
        f"{_TRANSPORT} _DrainableBuffer.__post_init__",
        "mode's construction hook: where the hand-over counter is set up",
        ("self",),
    ),
    Override(
        "faust-streaming",
        "faust.transport.producer:ProducerBuffer.size",
        "attribute",
        f"{_TRANSPORT} _IdempotentProducer.flush",
        "the flush drains Faust's buffer of table writes before the client's flush",
    ),
    Override(
        "faust-streaming",
        "faust.transport.producer:ProducerBuffer.message_sent",
        "instance",
        f"{_TRANSPORT} _IdempotentProducer.flush",
        "the flush waits on it for the buffer to move",
    ),
    Override(
        "faust-streaming",
        "faust.transport.producer:Producer.buffer",
        "instance",
        f"{_TRANSPORT} _IdempotentProducer.__init__",
        "replaced by a _DrainableBuffer right after Faust builds its own",
    ),
    Override(
        "faust-streaming",
        f"{_AIOKAFKA_CONSUMER.replace('Consumer', 'Producer')}._settings_extra",
        "method",
        f"{_TRANSPORT} _IdempotentProducer._settings_extra",
        "acks=all and idempotence outside transactions (Faust sets them only inside)",
        ("self",),
        f"{_AIOKAFKA_CONSUMER.replace('Consumer', 'Producer')}._new_producer",
    ),
    Override(
        "faust-streaming",
        "faust.app.base:App.rebalancing",
        "attribute",
        f"{_TRANSPORT} _GaplessConsumer.holds_back",
        "records fetched while a rebalance runs are held back",
    ),
    Override(
        "faust-streaming",
        "faust.app.base:App.flow_control",
        "attribute",
        f"{_TRANSPORT} _GaplessConsumer.holds_back",
        "records fetched while Faust's flow control is off are held back",
    ),
    Override(
        "faust-streaming",
        "faust.topics:Topic._clone_args",
        "method",
        "streams/topics.py DeadLetteringTopic._clone_args",
        "a cloned topic (what an agent reads) keeps its dead letters",
        ("self",),
        "faust.channels:Channel._clone",
    ),
    Override(
        "faust-streaming",
        "faust.tables.base:Collection.partition_for_key",
        "method",
        "streams/tables.py SinglePartitionTable.partition_for_key",
        "a write after the batch's iteration goes to partition 0 (Faust refuses writes "
        "outside an event)",
        ("self", "key"),
        "faust.tables.table:Table.on_key_set",
    ),
    Override(
        "aiokafka",
        "aiokafka.consumer.consumer:AIOKafkaConsumer._client",
        "instance",
        "streams/kafka/readers.py topic_partitions, cluster_partitions",
        "the consumer's client: the metadata calls below have no public counterpart",
    ),
    Override(
        "aiokafka",
        "aiokafka.client:AIOKafkaClient.force_metadata_update",
        "method",
        "streams/kafka/readers.py topic_partitions",
        "a topic created after the consumer started is seen within 5 s",
        ("self",),
    ),
    Override(
        "aiokafka",
        "aiokafka.client:AIOKafkaClient.fetch_all_metadata",
        "method",
        "streams/kafka/readers.py cluster_partitions",
        "every topic's partitions (the consumer's metadata covers only its own)",
        ("self",),
    ),
)


def _fail(override: Override, what: str) -> LibraryChanged:
    return LibraryChanged(
        f"{override.target} ({override.library}, read against {PINNED[override.library]}): "
        f"{what}. Storywatch relies on it in {override.used_by}: {override.reason}. Re-read "
        f"that code against the installed {override.library} {version(override.library)}, "
        f"or pin {override.library}=={PINNED[override.library]} again"
    )


def _resolve(dotted: str) -> Any:
    module_name, _, path = dotted.partition(":")
    found: Any = importlib.import_module(module_name)
    for part in path.split("."):
        found = inspect.getattr_static(found, part)
    return found


def _source(function: Any) -> str:
    unwrapped: Any = function.fget if isinstance(function, property) else function
    unwrapped = getattr(unwrapped, "__func__", unwrapped)
    unwrapped = getattr(unwrapped, "fun", unwrapped)  # mode's @Service.task wrapper
    return inspect.getsource(unwrapped)


def check(override: Override) -> None:
    """Raise :class:`LibraryChanged` if the installed library no longer has what
    ``override`` relies on (the version, the attribute, its signature, its caller)."""
    installed = version(override.library)
    if installed != PINNED[override.library]:
        raise _fail(override, f"{override.library} {installed} is installed")
    try:
        owner = override.owner()
    except (ImportError, AttributeError) as exc:
        raise _fail(override, f"its module or class is gone ({exc})") from None
    if override.kind == "instance":
        # Set by the constructor (__init__, or mode's __post_init__); a built object is
        # checked by check_instance.
        setters = [getattr(owner, name, None) for name in ("__init__", "__post_init__")]
        if not any(f is not None and override.attribute in _source(f) for f in setters):
            raise _fail(override, "its class's constructor no longer sets it")
        return
    if not hasattr(owner, override.attribute):
        raise _fail(override, "it is gone")
    if override.kind == "method":
        member = inspect.getattr_static(owner, override.attribute)
        function = getattr(member, "__func__", member)
        if not callable(function):
            raise _fail(override, "it is no longer a method")
        if override.parameters is not None:
            found = tuple(inspect.signature(function).parameters)
            if found != override.parameters:
                raise _fail(override, f"its parameters are now {found}, not {override.parameters}")
    if override.called_from is not None:
        try:
            caller = _resolve(override.called_from)
        except (ImportError, AttributeError):
            raise _fail(override, f"{override.called_from}, which called it, is gone") from None
        if override.attribute not in _source(caller):
            raise _fail(override, f"{override.called_from} no longer calls it")


def check_instance(override: Override, instance: Any) -> None:
    """Raise :class:`LibraryChanged` if a built ``instance`` (a consumer, a producer) lacks
    the instance attribute ``override`` relies on."""
    if not hasattr(instance, override.attribute):
        raise _fail(override, f"a built {type(instance).__name__} no longer has it")
