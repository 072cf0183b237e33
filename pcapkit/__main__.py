"""``python -m pcapkit`` is the ``kaflow`` command."""

from pcapkit.cli import main

main()
