"""Sources: what the inputs name, read as chunks of whole lines, with checkpoints and the lock.

``read`` expands paths, globs, directories and ``-`` (stdin) into ``Source`` s and reads
them in chunks; ``checkpoint`` fingerprints files, plans where each is read from and holds
the run's lock. Inputs with a URL scheme (``s3://...``) go to the expander registered for
that scheme in ``SCHEMES`` (``module:function`` taking the list of such inputs); every
other input is a local path.
"""

from __future__ import annotations

import importlib
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ingest.sources.read import Source

_SCHEME = re.compile(r"^([a-z][a-z0-9+.-]*)://", re.IGNORECASE)

# scheme -> "module:expand"; object storage through fsspec (extras s3, gcs, azure)
SCHEMES: dict[str, str] = {
    scheme: "ingest.sources.objectstore:expand_inputs"
    for scheme in ("s3", "s3a", "gs", "gcs", "az", "abfs", "abfss")
}


def expand(inputs: list[str]) -> list[Source]:
    """Every source the inputs name, in order, each once. Raises InputError for the first
    input that names nothing readable."""
    from ingest.sources import read

    def scheme(given: str) -> str | None:
        match = _SCHEME.match(given)
        return match.group(1).lower() if match and match.group(1).lower() in SCHEMES else None

    if not any(scheme(given) for given in inputs):
        return read.expand(inputs)
    sources: list[Source] = []
    for given in inputs:  # one at a time keeps the inputs' order
        name = scheme(given)
        if name is None:
            sources.extend(s for s in read.expand([given]) if s not in sources)
        else:
            module_name, _, attr = SCHEMES[name].partition(":")
            sources.extend(getattr(importlib.import_module(module_name), attr)([given]))
    return sources
