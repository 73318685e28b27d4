"""``python -m fedswarm`` is the ``fedswarm`` command."""

from fedswarm.cli import main

main()
