"""The ``ingest`` command line (entry point ``ingest.cli:main``)."""

from ingest.cli.main import main

__all__ = ["main"]
