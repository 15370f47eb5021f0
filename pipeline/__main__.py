"""``python -m pipeline`` is the ``augbeam`` command."""

from pipeline.cli import entry

entry()
