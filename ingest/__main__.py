"""``python -m ingest``: the command line, with our own modules importable as ours.

``python -m`` puts the current directory first on ``sys.path``, so a user's ``mappers.py``
there would be imported in place of our ``mappers`` package and break the run. The current
directory is taken off the path before anything of ours is imported (unless it is the
directory this package lives in: a source checkout); user modules are loaded from it
explicitly, under private names, by ``mappers.resolve``.
"""

import os
import sys


def _without_cwd() -> None:
    if not sys.path:
        return
    first = os.path.realpath(sys.path[0] or os.curdir)
    ours = os.path.realpath(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if first == os.path.realpath(os.getcwd()) and first != ours:
        del sys.path[0]


_without_cwd()

from ingest.cli import main  # noqa: E402

main()
