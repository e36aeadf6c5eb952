"""The ``storywatch`` command line (``streams.cli:main``), one module per command group."""

from streams.cli.main import main

__all__ = ["main"]
