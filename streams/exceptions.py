"""Errors of the streaming layer: each message says what to do next."""

from __future__ import annotations

from config.exceptions import StorywatchError

__all__ = [
    "BrokerError",
    "BrokerUnavailable",
    "DataDirError",
    "InputFileError",
    "KafkaSecurityError",
    "ModelLoadError",
    "ReplayError",
    "TimeRangeError",
    "TopicNotFound",
]


class BrokerError(StorywatchError):
    """The local Kafka broker could not be set up, started or stopped."""


class BrokerUnavailable(BrokerError):
    """No Kafka broker answers at the configured address."""


class KafkaSecurityError(BrokerUnavailable):
    """The broker answers, but the TLS handshake or the SASL login with it fails."""


class DataDirError(StorywatchError):
    """The worker's data folder (STORYWATCH_DATA_DIR) cannot be written."""


class InputFileError(StorywatchError):
    """An input file is missing or not JSON lines."""


class ModelLoadError(StorywatchError):
    """The embedding model could not be loaded from its folder or name."""


class TimeRangeError(StorywatchError, ValueError):
    """A time or time range that cannot be read or makes no sense (end before start)."""

    def __init__(self, message: str, field: str = "time") -> None:
        super().__init__(message)
        self.field = field


class TopicNotFound(StorywatchError):
    """A topic a command reads does not exist on the broker."""


class ReplayError(StorywatchError):
    """A replay, history or rebuild run cannot go on (empty range, bad override...)."""
