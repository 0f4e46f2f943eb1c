"""Field maps: where a JSON log line keeps the time, the endpoint, the bodies, ...

A path is dotted keys with list indexes: ``captureData.endpointInput.data``,
``record.extra.request``, ``outputs[0].data``; a key holding a dot is quoted:
``extra."http.path"``. A list of paths means the first one present
(``["eventMetadata.inferenceId", "eventMetadata.eventId"]``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

MISSING: Any = type("Missing", (), {"__repr__": lambda self: "MISSING", "__bool__": lambda self: False})()

# The fields a map can name: what a line is for ingest.
FIELDS = (
    "time",
    "endpoint",
    "status",
    "request",
    "response",
    "request_id",
    "latency",
    "content_type",
    "url",
    # what a map can say about how the bodies are written (SageMaker states both per line)
    "request_encoding",
    "response_encoding",
    "response_content_type",
)

_STEP = re.compile(r'\s*(?:"((?:[^"\\]|\\.)*)"|([^.\[\]"]+))((?:\[-?\d+\])*)\s*(?:\.|$)')


class PathError(ValueError):
    """A path that cannot be read; the message says where."""


Path = tuple[str | int, ...]


def compile_path(text: str) -> Path:
    """``a.b[0]."c.d"`` -> ``("a", "b", 0, "c.d")``; raises PathError."""
    if not isinstance(text, str) or not text.strip():
        raise PathError(f"empty field path {text!r}")
    steps: list[str | int] = []
    pos = 0
    while pos < len(text):
        match = _STEP.match(text, pos)
        if not match or match.end() == pos:
            raise PathError(f"cannot read field path {text!r} at character {pos + 1}")
        quoted, plain, indexes = match.groups()
        steps.append(quoted.replace('\\"', '"') if quoted is not None else plain.strip())
        steps.extend(int(i) for i in re.findall(r"-?\d+", indexes))
        pos = match.end()
    if text.rstrip().endswith("."):
        raise PathError(f"field path {text!r} ends with a dot")
    return tuple(steps)


def get(obj: Any, path: Path) -> Any:
    """The value at ``path``, or MISSING when any step is absent."""
    if path and all(isinstance(step, str) for step in path):
        return _get_keys(obj, path)
    for step in path:
        if isinstance(step, int):
            if not isinstance(obj, list) or not -len(obj) <= step < len(obj):
                return MISSING
            obj = obj[step]
        else:
            if not isinstance(obj, dict) or step not in obj:
                return MISSING
            obj = obj[step]
    return obj


def _get_keys(obj: Any, path: Path) -> Any:
    # keys only: indexing a list or a string by a key raises TypeError, a dict lacks it
    try:
        for step in path:
            obj = obj[step]
    except (KeyError, TypeError):
        return MISSING
    return obj


@dataclass(frozen=True)
class FieldMap:
    """For each field, the paths to try in order (empty: the field is not in the line)."""

    paths: dict[str, tuple[Path, ...]]

    @classmethod
    def from_config(cls, table: dict[str, Any], where: str) -> FieldMap:
        """``{"time": "ts", "request_id": ["a.id", "b.id"], ...}``; raises ValueError."""
        paths: dict[str, tuple[Path, ...]] = {}
        for name, given in table.items():
            if name not in FIELDS:
                raise ValueError(f"{where}: unknown field {name!r} (fields: {', '.join(FIELDS)})")
            texts = [given] if isinstance(given, str) else given
            if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
                raise ValueError(f"{where}: {name} must be a path or a list of paths")
            try:
                paths[name] = tuple(compile_path(t) for t in texts)
            except PathError as exc:
                raise ValueError(f"{where}: {name}: {exc}") from None
        return cls(paths)

    def merged(self, other: FieldMap) -> FieldMap:
        """This map with ``other``'s fields replacing its own."""
        return FieldMap({**self.paths, **other.paths})

    def __post_init__(self) -> None:
        # per field, (keys-only?, path) pairs: the per-line lookups skip re-checking the steps
        compiled = {
            name: tuple((all(isinstance(s, str) for s in p), p) for p in paths)
            for name, paths in self.paths.items()
        }
        object.__setattr__(self, "_compiled", compiled)

    def get(self, obj: Any, name: str) -> Any:
        for keys_only, path in self._compiled.get(name, ()):  # type: ignore[attr-defined]
            value = _get_keys(obj, path) if keys_only else get(obj, path)
            if value is not MISSING:
                return value
        return MISSING

    def describe(self, name: str) -> str:
        return " or ".join(".".join(str(s) for s in p) for p in self.paths.get(name, ())) or "(none)"
