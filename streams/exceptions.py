"""Errors of the streaming layer: each message says what to do next."""

from __future__ import annotations

from config.exceptions import StorywatchError

__all__ = [
    "BrokerError",
    "BrokerUnavailable",
    "DataDirError",
    "InputFileError",
    "ModelLoadError",
]


class BrokerError(StorywatchError):
    """The local Kafka broker could not be set up, started or stopped."""


class BrokerUnavailable(BrokerError):
    """No Kafka broker answers at the configured address."""


class DataDirError(StorywatchError):
    """The worker's data folder (STORYWATCH_DATA_DIR) cannot be written."""


class InputFileError(StorywatchError):
    """An input file is missing or not JSON lines."""


class ModelLoadError(StorywatchError):
    """The embedding model could not be loaded from its folder or name."""
