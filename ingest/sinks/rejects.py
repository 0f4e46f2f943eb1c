"""The rejects file: one JSON line per rejected line or record, with its file and line.

Opened only when the first reject arrives, so a clean run leaves no empty file behind.
Raw lines are capped and scrubbed of credentials where they are rejected; every reject is
scrubbed once more here, whatever stage filed it (a record refused by a dataset decision or
a sink carries the record's JSON as its raw text), so that no path to the file skips it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO, Any

import orjson

from ingest.accesslog.redact import redact_text


def scrubbed(reject: dict[str, Any]) -> dict[str, Any]:
    """The reject with credentials masked in its raw text and its reason (ingest/accesslog/redact.py)."""
    out = dict(reject)
    for key in ("raw", "reason"):
        if isinstance(out.get(key), str):
            out[key] = redact_text(out[key])
    return out


class RejectsFile:
    def __init__(self, path: Path):
        self.path = path
        self.count = 0
        self._fh: IO[bytes] | None = None

    def write(self, rejects: list[dict[str, Any]]) -> None:
        if not rejects:
            return
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "ab")  # noqa: SIM115 (closed in close())
            if _ends_cut_short(self._fh):
                # a --rejects file that every run appends to, left mid-line by a crash: the
                # first reject would be glued to that line, unreadable
                self._fh.write(b"\n")
        self._fh.write(b"".join(orjson.dumps(scrubbed(r)) + b"\n" for r in rejects))
        self.count += len(rejects)

    def sync(self) -> None:
        """Make the rejects so far durable: a checkpoint may only pass lines once recorded."""
        if self._fh is not None:
            self._fh.flush()
            os.fsync(self._fh.fileno())

    def close(self) -> None:
        if self._fh is not None:
            self.sync()
            self._fh.close()
            self._fh = None


def _ends_cut_short(fh: IO[bytes]) -> bool:
    """True when the file open for appending ends without a newline."""
    size = os.fstat(fh.fileno()).st_size
    if size == 0:
        return False
    with open(fh.name, "rb") as read:
        read.seek(size - 1)
        return read.read(1) != b"\n"


class RejectsPreview:
    """Dry runs write nothing: keep the first few rejects to show instead."""

    def __init__(self, keep: int = 5):
        self.path = None
        self.count = 0
        self.kept: list[dict[str, Any]] = []
        self._keep = keep

    def write(self, rejects: list[dict[str, Any]]) -> None:
        self.count += len(rejects)
        self.kept.extend(scrubbed(r) for r in rejects[: max(0, self._keep - len(self.kept))])

    def sync(self) -> None:
        pass

    def close(self) -> None:
        pass
