"""Checkpoints: how far each log file has been read, so cron runs read only what is new.

A file is known by its content, a hash of its first line, not by its name or inode:
``access.jsonl`` renamed to ``access.jsonl.1`` and later compressed to ``access.jsonl.2.gz``
is the same file and is not read again, while a new ``access.jsonl`` (another first line)
is read from its start, and so is a file truncated in place (copytruncate) as soon as it
has a new first line. A checkpoint only moves past lines whose records the target has
acknowledged (the pipeline flushes the sink first), so a crash at any moment at worst
re-reads lines, and deterministic ids make that re-delivery harmless.

One run per state file at a time: ``RunLock`` holds an exclusive ``flock`` beside it.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import os
import sqlite3
import struct
import time
from dataclasses import dataclass
from hashlib import blake2b
from pathlib import Path
from typing import IO

from ingest.errors import FileFault, LockHeld
from ingest.sources import objectstore
from ingest.sources.read import GzipStream, Source, describe, open_source, stale

FINGERPRINT_BYTES = 64 * 1024  # a first line longer than this is fingerprinted by its start
# Blank lines and NULs at a file's start looked past for its first line with content; a
# file that starts with more is known by its start (as every file was before).
_BLANK_START_BYTES = 64 << 20


_HELD_LOCK_FDS: set[int] = set()


def close_inherited_locks() -> None:
    """In a forked worker: drop our copy of the lock, so that only the parent holds it.

    flock belongs to the open file, which a fork shares; if the parent is killed, workers
    still holding a copy would keep every later run locked out until they exit.
    """
    for fd in list(_HELD_LOCK_FDS):
        with contextlib.suppress(OSError):
            os.close(fd)
    _HELD_LOCK_FDS.clear()


class RunLock:
    def __init__(self, state_path: Path, wait: bool):
        self.path = state_path.with_name(state_path.name + ".lock")
        self.wait = wait
        self._fh: IO[str] | None = None

    def __enter__(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX if self.wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "unknown"
            fh.close()
            raise LockHeld(
                f"another run holds the lock on {self.path} (pid {holder}); use --wait to queue"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        self._fh = fh
        _HELD_LOCK_FDS.add(fh.fileno())
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fh is not None:
            _HELD_LOCK_FDS.discard(self._fh.fileno())
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()


def fingerprint(source: Source) -> str | None:
    """A hash of the file's first complete line, or None while it has none.

    The last line of a source that cannot grow is complete without its newline. Raises
    OSError or FileFault for a file that cannot be read.
    """
    if source.url is not None:  # one range request, never a download
        first = objectstore.first_line(source.url, FINGERPRINT_BYTES)
        if first is None:
            return None
        if first.strip(b"\0 \t\r\n"):  # the usual case, hashed as it always was
            return blake2b(first.rstrip(b"\r\n"), digest_size=16).hexdigest()
        # a blank or NUL start: read on to the first line with content, as for a local file
    with open_source(source) as opened:
        stream: IO[bytes] | GzipStream = opened
        if source.url is not None and not isinstance(opened, GzipStream):
            stream = io.BufferedReader(opened)  # type: ignore[arg-type]  # fsspec's readline has no limit
        final = source.final or isinstance(stream, GzipStream)
        skipped = 0
        while True:
            try:
                first = stream.readline(FINGERPRINT_BYTES)
            except EOFError:  # a .gz still being written, unless it is an object or has not changed for long
                if source.url is not None or (source.path is not None and stale(source.path)):
                    raise FileFault(
                        f"gzip data cut short (truncated) after {skipped} bytes: the rest is missing"
                    ) from None
                return None
            if not first or (len(first) < FINGERPRINT_BYTES and not first.endswith(b"\n") and not final):
                return None
            # Blank lines and NUL runs say nothing of the file (`echo > log` leaves a newline,
            # copytruncate a NUL run as long as the old log): many files start alike with
            # them, and a file known by them would be taken for another, and read from that
            # one's checkpoint or not at all. The first line with content is the identity;
            # a file with none is the same as before (its start, hashed as it always was).
            content = first.strip(b"\0 \t\r\n")
            if content and not skipped:  # the usual case, hashed as it always was
                return blake2b(first.rstrip(b"\r\n"), digest_size=16).hexdigest()
            if content:  # where it starts is part of it: offsets are the file's own
                start = skipped + len(first) - len(first.lstrip(b"\0 \t\r\n"))
                return blake2b(b"%d\0%s" % (start, content), digest_size=16).hexdigest()
            if not skipped:
                lead = first.rstrip(b"\r\n")
            skipped += len(first)
            if skipped > _BLANK_START_BYTES:
                return blake2b(lead, digest_size=16).hexdigest()


def known_size(source: Source) -> tuple[int | None, bool]:
    """(the decompressed size when it is cheap to know, whether it may be gzip).

    Plain files: their size. Gzip: its trailer's size modulo 2**32, which is the last
    member's only, so for gzip it can say "read to the end" but never "shorter". An object
    in object storage is never rewritten in place (a new version is a new object), so it
    is never taken as "shorter" either.
    """
    if source.url is not None:
        return objectstore.known_size(source.url), True
    assert source.path is not None
    with open(source.path, "rb") as fh:
        if fh.read(2) != b"\x1f\x8b":
            return os.fstat(fh.fileno()).st_size, False
        if os.fstat(fh.fileno()).st_size < 20:  # no room for a header, data and a trailer
            return None, True
        fh.seek(-4, os.SEEK_END)
        return struct.unpack("<I", fh.read(4))[0], True


@dataclass
class Plan:
    """Where to start reading one source, and why."""

    source: Source
    fingerprint: str | None
    offset: int = 0
    line: int = 1
    skip: str | None = None  # a reason not to read it at all
    error: str | None = None  # it could not be read: why


class State:
    """The SQLite state file: how far each file content (its fingerprint) was read, per scope.

    A scope is a target and a selection (see ``scope``): checkpoints say how far a file was
    delivered *there*, so a run to another target (a server after the local store, another
    workspace) or with another selection of endpoints reads the file from its start; ids
    make that re-read harmless. The same file also gets ``pushed`` rows: the part files of
    a local store that ``ingest push`` sent to each target.

    A state file from before scopes (one ``files`` table) is adopted by the first scope
    that opens it.
    """

    def __init__(self, path: Path, scope: str = ""):
        self.path = path
        self.scope = scope
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        with self._db:
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS checkpoints (scope TEXT NOT NULL, fingerprint TEXT NOT NULL,"
                " offset INTEGER NOT NULL, line INTEGER NOT NULL, name TEXT, updated REAL,"
                " PRIMARY KEY (scope, fingerprint))"
            )
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS pushed (target TEXT NOT NULL, file TEXT NOT NULL,"
                " records INTEGER, updated REAL, PRIMARY KEY (target, file))"
            )
            legacy = self._db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'files'"
            ).fetchone()
            if legacy and scope:
                self._db.execute(
                    "INSERT OR IGNORE INTO checkpoints"
                    " SELECT ?, fingerprint, offset, line, name, updated FROM files",
                    (scope,),
                )
                self._db.execute("DROP TABLE files")
            # Halves of pairs logged as two events (KServe, Azure ML, start/finish lines) that
            # wait for their other half: saved with the checkpoints, in the same transaction,
            # and per scope as they are: a half that waits after a file's checkpoint in one
            # scope may have been joined, from the file's start, in another.
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS waiting_halves (scope TEXT NOT NULL, profile TEXT NOT NULL,"
                " key TEXT NOT NULL, side TEXT NOT NULL, ts REAL, source TEXT, line INTEGER,"
                " raw BLOB NOT NULL, PRIMARY KEY (scope, profile, key, side))"
            )
            legacy = self._db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'pending_halves'"
            ).fetchone()
            if legacy and scope:  # from before halves had scopes: adopted as the checkpoints were
                self._db.execute(
                    "INSERT OR IGNORE INTO waiting_halves SELECT ?, * FROM pending_halves", (scope,)
                )
                self._db.execute("DROP TABLE pending_halves")

    def pending(self) -> list[tuple[str, str, str, float, str, int, bytes]]:
        """This scope's saved waiting halves: (profile, key, side, ts, source, line, raw line)."""
        return self._db.execute(
            "SELECT profile, key, side, ts, source, line, raw FROM waiting_halves"
            " WHERE scope = ? ORDER BY ts",
            (self.scope,),
        ).fetchall()

    def get(self, fp: str) -> tuple[int, int] | None:
        row = self._db.execute(
            "SELECT offset, line FROM checkpoints WHERE scope = ? AND fingerprint = ?", (self.scope, fp)
        ).fetchone()
        return (row[0], row[1]) if row else None

    def plan(self, sources: list[Source], from_start: bool) -> list[Plan]:
        plans, seen = [], set()
        for source in sources:
            if source.path is None and source.url is None:
                plans.append(Plan(source, None))
                continue
            try:
                fp = fingerprint(source)
                size, compressed = known_size(source)
            except Exception as exc:  # this file alone: the pipeline reports it, the others are read
                plans.append(Plan(source, None, skip="could not be read", error=describe(exc, source)))
                continue
            if fp is None:
                plans.append(Plan(source, None, skip="no complete line yet"))
                continue
            if fp in seen:
                plans.append(Plan(source, fp, skip="same content as another input"))
                continue
            seen.add(fp)
            saved = None if from_start else self.get(fp)
            if saved is None:
                plans.append(Plan(source, fp))
                continue
            offset, line = saved
            if size is not None and not compressed and size < offset:
                # shorter than what we had read: rewritten in place, start over
                with self._db:
                    self._db.execute(
                        "DELETE FROM checkpoints WHERE scope = ? AND fingerprint = ?", (self.scope, fp)
                    )
                plans.append(Plan(source, fp))
            elif size is not None and size % 2**32 == offset % 2**32:
                plans.append(Plan(source, fp, offset, line, skip="already read"))
            else:
                plans.append(Plan(source, fp, offset, line))
        return plans

    def save(
        self,
        progress: dict[str, tuple[int, int, str]],
        pending: tuple[list[str], list[tuple[str, str, str, float, str, int, bytes]]] | None = None,
    ) -> None:
        """Record (offset, next line, name) per fingerprint, durably, in one transaction.

        ``pending`` is (profiles in use, their waiting halves): those profiles' saved
        halves of this scope are replaced by these, in the same transaction.
        """
        now = time.time()
        with self._db:
            if pending is not None:
                profiles, rows = pending
                self._db.executemany(
                    "DELETE FROM waiting_halves WHERE scope = ? AND profile = ?",
                    [(self.scope, p) for p in profiles],
                )
                self._db.executemany(
                    "INSERT OR REPLACE INTO waiting_halves VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [(self.scope, *row) for row in rows],
                )
            self._db.executemany(
                "INSERT INTO checkpoints (scope, fingerprint, offset, line, name, updated)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(scope, fingerprint) DO UPDATE SET"
                " offset = excluded.offset, line = excluded.line, name = excluded.name,"
                " updated = excluded.updated WHERE excluded.offset >= checkpoints.offset",
                [(self.scope, fp, offset, line, name, now) for fp, (offset, line, name) in progress.items()],
            )

    def pushed(self, target: str) -> set[str]:
        """The store's part files (paths relative to the store) already pushed to ``target``."""
        rows = self._db.execute("SELECT file FROM pushed WHERE target = ?", (target,)).fetchall()
        return {row[0] for row in rows}

    def save_pushed(self, target: str, files: dict[str, int]) -> None:
        """Record part files (relative path -> records) as pushed to ``target``, durably."""
        now = time.time()
        with self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO pushed (target, file, records, updated) VALUES (?, ?, ?, ?)",
                [(target, name, n, now) for name, n in files.items()],
            )

    def close(self) -> None:
        self._db.close()


def scope(target: str, selection: str) -> str:
    """The key of a state's checkpoints: where records go and which endpoints are read.

    ``target`` is ``local store <absolute path>`` or ``rubrix <url>[, workspace <name>]``;
    ``selection`` lists the endpoints read (and the dataset each goes to, when configured),
    ``*`` for all.
    """
    return f"{target}\n{selection}"
