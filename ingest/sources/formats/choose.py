"""Which format each input is read with, and what a format needs before reading (schemas)."""

from __future__ import annotations

import fnmatch
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from ingest.sources import objectstore
from ingest.sources.formats import DEFAULT, SCHEMA, FormatError, detect
from ingest.sources.formats.builtin import BentoML
from ingest.sources.formats.profile import Profile
from ingest.sources.read import Source, open_source

HEAD_BYTES = 64 << 10
# A first line longer than HEAD_BYTES (a capture of a long document, an image as base64) is
# looked for up to this many bytes, reading 8 times more each time, before detection gives up.
HEAD_MAX_BYTES = 32 << 20


@dataclass
class Choice:
    formats: dict[str, str] = field(default_factory=dict)  # source name -> format
    how: dict[str, str] = field(default_factory=dict)  # format -> "2 files, detected"
    not_read: dict[str, str] = field(default_factory=dict)  # source name -> why it is not a log
    sources: list[Source] = field(default_factory=list)  # the sources to read


def _head(source: Source) -> list[bytes]:
    """The source's first whole lines (at least one when it has one within HEAD_MAX_BYTES);
    none when it cannot be read (reading it says why)."""
    size = HEAD_BYTES
    while True:
        try:
            if source.url is not None:
                data = objectstore.head(source.url, size)
            else:
                with open_source(source) as stream:
                    data = _read_up_to(stream, size)
        except Exception:  # unreadable, removed, damaged gzip: reported by the read stage, per file
            data = b""
        if b"\n" in data or len(data) < size or size >= HEAD_MAX_BYTES:
            break
        size *= 8
    lines = data.split(b"\n")
    return lines[:-1] if len(lines) > 1 else []  # whole lines only


def _read_up_to(stream: Any, size: int) -> bytes:
    """``size`` bytes, or fewer at the end: a decompressing stream may return less per read.
    What was read before a fault (damaged gzip data) is kept: the read stage reports it."""
    parts, got = [], 0
    while got < size:
        try:
            part = stream.read(size - got)
        except Exception:
            if not parts:
                raise
            break
        if not part:
            break
        parts.append(part)
        got += len(part)
    return b"".join(parts)


def _configured(source: Source, inputs: dict[str, str]) -> str | None:
    """The format of the first ``[inputs]`` prefix or glob that the source's name as given
    matches, or its absolute path (config files name inputs relative to themselves)."""
    names = [source.name]
    if source.path is not None:
        names.append(os.path.abspath(source.path))
    for pattern, fmt in inputs.items():
        for name in names:
            if name.startswith(pattern) or fnmatch.fnmatchcase(name, pattern):
                return fmt
    return None


def choose(
    sources: list[Source],
    profiles: dict[str, Profile],
    forced: str | None = None,
    inputs: dict[str, str] | None = None,
    default: str | None = None,
) -> Choice:
    """Each source's format: --format, else the config's [inputs], else its format key, else
    detected from the first lines, else the access log. Raises FormatError for an unknown name."""
    for name in [forced, default, *(inputs or {}).values()]:
        if name is not None and name not in profiles:
            raise FormatError(f"unknown format {name!r} (known: {', '.join(profiles)})")
    choice = Choice()
    how: Counter[tuple[str, str]] = Counter()
    for source in sources:
        fmt = forced or _configured(source, inputs or {}) or default
        reason = "given" if fmt else ""
        if fmt is None and source.path is None and source.url is None:
            fmt, reason = DEFAULT, "default"  # stdin cannot be peeked at without reading it
        # `--format bentoml` on a monitor's folder names its schema files too: they are read
        # for their columns (below), not as logs, as when the format is detected
        given_bentoml = fmt is not None and isinstance(profiles[fmt], BentoML)
        if given_bentoml and (source.path or source.url) and detect(_head(source), profiles)[0] == SCHEMA:
            choice.not_read[source.name] = "a BentoML schema file, read for its columns"
            continue
        if fmt is None:
            found, candidates = detect(_head(source), profiles)
            if found == SCHEMA:
                choice.not_read[source.name] = "a BentoML schema file, read for its columns"
                continue
            if found is None:
                fmt, reason = (
                    DEFAULT,
                    ("default" if len(candidates) < 2 else "ambiguous: " + "/".join(candidates)),
                )
            else:
                fmt, reason = found, "detected"
        choice.formats[source.name] = fmt
        choice.sources.append(source)
        how[(fmt, reason)] += 1
    for (fmt, reason), n in sorted(how.items()):
        text = f"{n} file{'s' if n > 1 else ''}, {reason}"
        choice.how[fmt] = f"{choice.how[fmt]}; {text}" if fmt in choice.how else text
    for source in choice.sources:
        profile = profiles[choice.formats[source.name]]
        if isinstance(profile, BentoML):
            columns = bentoml_schema(source)
            if columns is not None:
                profile.schemas[source.name] = columns
    return choice


_BENTOML_DATA = re.compile(r"/data/data\.(\d+)\.log(\.[^/]*)?$")


def bentoml_schema(source: Source) -> list[list[dict[str, object]]] | None:
    """The columns of a BentoML data file, from its worker's schema file: one list per worker
    start, the last start's first (a data file can hold lines of several starts)."""
    match = _BENTOML_DATA.search(source.name)
    if not match:
        return None
    folder = source.name[: match.start()] + "/schema/"
    candidates = [folder + f"schema.{match.group(1)}.log"]
    if source.url is None:
        candidates += sorted(str(p) for p in Path(folder).glob("schema.*.log"))
    for location in candidates:
        try:
            text = objectstore.read_text(location)
        except (OSError, objectstore.StorageError, UnicodeDecodeError):
            continue
        except Exception:  # a store's "not found" is not always an OSError
            continue
        starts = []
        for line in reversed(text.splitlines()):
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if isinstance(obj, dict) and isinstance(obj.get("columns"), list):
                starts.append([c for c in obj["columns"] if isinstance(c, dict) and "name" in c])
        if starts:
            return starts
    return None


__all__ = ["Choice", "FormatError", "choose"]


# Files named in the wrong-format warning, at most (each costs a look at its first lines).
HINTED_FILES = 5


def wrong_format_warning(
    not_requests: int,
    lines: int,
    sources: list[Source],
    formats: dict[str, str],
    profiles: dict[str, Profile],
    requests: int = 0,
) -> str | None:
    """The warning for a run most of whose lines the format read did not take for requests
    (``not_a_request``): the symptom of a wrong ``--format`` (or ``[inputs]``), which would
    otherwise exit 0 with nothing ingested while the checkpoints move past every line.

    Names, for the first files read, the format their first lines look like, when that is
    another one. None when at most half of the lines were counted so, and when some lines
    (``requests``: lines that named an endpoint) were requests while no file looks like
    another format: an app log's other events (structlog, loguru) are ``not_a_request`` too,
    often most of its lines, and its format is the right one.
    """
    if not not_requests or not_requests * 2 <= lines:
        return None
    used = sorted({formats[s.name] for s in sources if s.name in formats})
    hints = []
    for source in sources:
        if len(hints) >= HINTED_FILES:
            break
        if source.path is None and source.url is None:  # stdin: read once, already read
            continue
        fmt = formats.get(source.name)
        found, _ = detect(_head(source), profiles)
        if found is not None and found not in (fmt, SCHEMA):
            hints.append(f"{source.name} looks like {found} (--format {found}?)")
    if requests and not hints:
        return None
    text = (
        f"{not_requests} of {lines} lines read are not requests in the format read ({', '.join(used)}): "
        "counted not_a_request, nothing ingested from them"
    )
    if hints:
        text += "; " + "; ".join(hints)
    return text + (
        "; is the format right? Their checkpoints moved: once it is, read them again with --from-start"
    )
