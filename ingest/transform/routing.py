"""Which dataset, mapper and options each endpoint's lines go to.

Endpoints are matched by exact path, as Rubrix's middleware matches them. Without
configuration every endpoint is routed to a dataset named after it, with the task
detected from the response shape.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from hashlib import blake2b

DATASET_NAME = re.compile(r"^(?!-|_)[a-z0-9-_]+$")  # the server's rule
_NOT_NAME_CHARS = re.compile(r"[^a-z0-9-]+")


@dataclass(frozen=True)
class Route:
    endpoint: str
    dataset: str
    mapper: str | None = None  # None: detect from the response shape
    workspace: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    metadata_fields: tuple[str, ...] = ()
    format: str | None = None  # a log format for this endpoint's lines (ingest.sources.formats)
    labels: tuple[str, ...] = ()  # Argilla 2.x: every label option, declared when the dataset is made
    # Dataset-level decisions fixed by config (issue 16); None: from the target, else the records.
    task: str | None = None  # TextClassification, TokenClassification or Text2Text
    multi_label: bool | None = None  # text classification only
    subword_spans: bool = False  # accept entity spans that start or end inside a word
    # the dataset was named (config's ``dataset``, --dataset), not derived from the path: an
    # endpoint that shares it with another does so on purpose (Summary.check_shared_datasets)
    dataset_named: bool = field(default=False, compare=False, repr=False)  # repr: backfill run ids

    @property
    def configured_task(self) -> str | None:
        """The task config fixes: ``task``, else the built-in ``mapper``'s task."""
        if self.task is not None:
            return self.task
        from mappers import TASKS

        return TASKS.get(self.mapper) if self.mapper else None


# Dataset names become directory names (255 bytes at most on common file systems) and URL
# path segments; a name derived from a path is kept well below both.
MAX_DERIVED_NAME = 100


def dataset_for_endpoint(path: str) -> str:
    """``/spacy/`` -> ``monitoring_spacy``, the tutorial's naming, always a valid name."""
    slug = _NOT_NAME_CHARS.sub("_", path.lower()).strip("_")
    return bounded_name(f"monitoring_{slug or 'root'}", path)


def bounded_name(name: str, source: str) -> str:
    """A derived dataset name kept within ``MAX_DERIVED_NAME``: a longer one is cut and ends
    with a hash of ``source`` (what it was derived from), so two long ones never collide."""
    if len(name) <= MAX_DERIVED_NAME:
        return name
    digest = blake2b(source.encode("utf-8", "surrogatepass"), digest_size=6).hexdigest()
    return f"{name[: MAX_DERIVED_NAME - len(digest) - 1].rstrip('_')}_{digest}"


def check_dataset_name(name: str) -> None:
    if not DATASET_NAME.match(name):
        raise ValueError(
            f"invalid dataset name {name!r}: use lower-case letters, digits, '-' and '_', "
            "not starting with '-' or '_'"
        )


class Router:
    """Routes a path to its Route, or None when the path is not selected."""

    def __init__(self, routes: dict[str, Route], selected: frozenset[str] | None):
        self._routes = dict(routes)
        # Explicit --endpoint wins; otherwise a config that names endpoints selects them.
        self._selected = selected if selected else (frozenset(routes) if routes else None)

    def route(self, path: str) -> Route | None:
        found = self._routes.get(path)
        if found is not None:
            return found if self._selected is None or path in self._selected else None
        if self._selected is not None and path not in self._selected:
            return None
        found = Route(endpoint=path, dataset=dataset_for_endpoint(path))
        self._routes[path] = found
        return found


def named_datasets(routes: dict[str, Route]) -> frozenset[str]:
    """The endpoints whose dataset is named (config's ``dataset``, --dataset), not derived."""
    return frozenset(endpoint for endpoint, route in routes.items() if route.dataset_named)
