"""``python -m streams.cli``: the same as the ``storywatch`` command."""

from streams.cli.main import main

main()
