"""``python -m streams.cli``: the same as the ``storywatch`` command."""

from streams.cli.main import main

if __name__ == "__main__":  # importing this module (the packaging test imports all) runs nothing
    main()
