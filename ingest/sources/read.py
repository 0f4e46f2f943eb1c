"""Sources: paths, globs, directories and stdin, read as chunks of whole lines.

Files are streamed in bounded chunks (never whole in memory); gzip is detected by its
magic bytes, so rotated ``.gz`` files and misnamed ones both read transparently. A last
line without its newline is a write still in progress, not a bad line: it is left unread
and reported, and a later run reads it once it is complete.
"""

from __future__ import annotations

import glob
import gzip
import os
import pickle
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, SupportsIndex

from ingest.errors import InputError

CHUNK_BYTES = 1 << 20
_GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True)
class Source:
    name: str  # what the user sees in summaries and rejects
    path: Path | None  # None for stdin and object storage
    url: str | None = None  # an object in object storage (s3://, gs://, az://), read through fsspec


@dataclass(slots=True)
class Chunk:
    source: str
    first_line: int  # 1-based number of the chunk's first line
    offset: int  # byte offset of the first line in the (decompressed) stream
    data: bytes  # whole lines, each ending with b"\n"

    def __reduce_ex__(self, protocol: SupportsIndex) -> tuple[Any, ...]:
        # The data may travel out of band (pickle protocol 5) to a worker process, uncopied.
        data = pickle.PickleBuffer(self.data) if int(protocol) >= 5 else self.data
        return Chunk, (self.source, self.first_line, self.offset, data)


# In a directory, only files named like logs (rotated and compressed ones included:
# access.jsonl, access.jsonl.1, access.jsonl.2.gz, api.log-20261124.gz) are inputs.
_LOG_NAME = re.compile(r"\.(jsonl|ndjson|json|log)([.-].*)?$")


def _files_in(directory: Path) -> list[Path]:
    found = []
    for root, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith((".", "_")))
        found.extend(Path(root, f) for f in sorted(files) if not f.startswith(".") and _LOG_NAME.search(f))
    return found


def expand(inputs: list[str]) -> list[Source]:
    """Every file the inputs name, in order, each once; raises InputError for the first bad one."""
    sources: list[Source] = []
    seen: set[Path] = set()

    def add(path: Path) -> None:
        resolved = path.resolve()
        if resolved not in seen:
            seen.add(resolved)
            sources.append(Source(str(path), path))

    for given in inputs:
        if given == "-":
            sources.append(Source("<stdin>", None))
            continue
        path = Path(given)
        if path.is_dir():
            for file in _files_in(path):
                add(file)
        elif path.exists():
            if not os.access(path, os.R_OK):
                raise InputError(f"cannot read {given}: permission denied")
            add(path)
        elif glob.has_magic(given):
            matches = sorted(glob.glob(given, recursive=True))
            if not matches:
                raise InputError(f"no file matches {given}")
            for match in matches:
                if Path(match).is_file():
                    add(Path(match))
        else:
            raise InputError(f"no such file or directory: {given}")
    return sources


def open_source(source: Source) -> BinaryIO:
    if source.url is not None:
        from ingest.sources import objectstore

        stream = objectstore.open_url(source.url)
        head = stream.read(2)
        stream.seek(0)
        if head == _GZIP_MAGIC:
            return gzip.GzipFile(fileobj=stream, mode="rb")  # type: ignore[return-value]
        return stream
    if source.path is None:
        raw: BinaryIO = sys.stdin.buffer
    else:
        raw = open(source.path, "rb")  # noqa: SIM115 (closed by the caller)
    head = raw.peek(2)[:2] if hasattr(raw, "peek") else b""
    if head == _GZIP_MAGIC:
        return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    return raw


class LineChunks:
    """Iterates a source as chunks of complete lines; ``incomplete_tail`` is set at the end."""

    def __init__(
        self,
        source: Source,
        start_offset: int = 0,
        start_line: int = 1,
        chunk_bytes: int = CHUNK_BYTES,
    ):
        self.source = source
        self.chunk_bytes = chunk_bytes
        self.start_offset = start_offset
        self.start_line = start_line
        self.incomplete_tail = b""
        self.end_offset = start_offset  # just past the last complete line read

    def __iter__(self) -> Iterator[Chunk]:
        stream = open_source(self.source)
        try:
            yield from self._chunks(stream)
        finally:
            if stream is not sys.stdin.buffer:
                stream.close()

    def _chunks(self, stream: BinaryIO) -> Iterator[Chunk]:
        _skip(stream, self.start_offset)
        offset, line = self.start_offset, self.start_line
        carry = b""
        while True:
            try:
                block = stream.read(self.chunk_bytes)
            except EOFError:  # a .gz cut short (still being compressed): read the rest next run
                break
            if not block:
                break
            data = carry + block
            cut = data.rfind(b"\n") + 1
            if cut == 0:
                carry = data
                continue
            carry = data[cut:]
            whole = data[:cut]
            yield Chunk(self.source.name, line, offset, whole)
            offset += len(whole)
            line += whole.count(b"\n")
            self.end_offset = offset
        self.incomplete_tail = carry


def _skip(stream: BinaryIO, offset: int) -> None:
    if offset <= 0:
        return
    if stream.seekable() and not isinstance(stream, gzip.GzipFile):
        stream.seek(offset)
        return
    remaining = offset
    while remaining:
        got = stream.read(min(remaining, CHUNK_BYTES))
        if not got:
            break
        remaining -= len(got)
