"""Joining the two halves of a pair logged as two events, across chunks, files and runs.

KServe logs a request and its response as two CloudEvents with one id, in either order;
Azure ML writes inputs and outputs to two collections joined by correlation id; apps log
``request_started`` and ``request_finished`` with one request id. ``Joiner`` holds each
half until its other half arrives. A half waits ``join_window`` seconds of *event* time
on the other side's clock (the newest event time seen among the other side's events, not
the wall clock, so a backfill of last year's logs joins as a live tail does): past that, a
request without its response is counted as ``missing_output`` (KServe sends no response
event for a non-200 answer) and a response without its request as
``response_without_request``. The other side's clock, not one for both: Azure ML's inputs
and outputs are two folders, and a directory's files are read in name order, so every
input is read before the first output; inputs hours ahead must not make the earlier ones
give up before their outputs come. Whether a half's window had passed is decided by the
lines read before its other half, so it does not depend on where chunks were cut (the
per-chunk ``expired`` only counts what the lines already decided). Halves still waiting when a run ends
are saved in the state file with the checkpoint, in one transaction, and loaded by the
next run, so a pair split by a run boundary is joined, exactly once. A half loaded from the
state that expires was read, and counted as a line, by the run that read it: it is not a
line of the run that finds it expired, which only says how many (``earlier_expired``).

Records of a joined pair hash both lines, request first: the ids do not depend on the
order the events came in, nor on which run joined them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ingest.sources.formats.profile import Half, Item, Profile

_OTHER = {"request": "response", "response": "request"}


@dataclass(slots=True)
class Waiting:
    profile: str
    half: Half
    source: str
    line: int
    earlier: bool = False  # loaded from the state: read by an earlier run


class Joiner:
    """Pending halves of every joining profile, keyed by (profile, key, side)."""

    def __init__(self) -> None:
        self.pending: dict[tuple[str, str, str], Waiting] = {}
        # per (profile, side): the newest event time seen among that side's events
        self.newest: dict[tuple[str, str], datetime] = {}
        self._stale: list[Waiting] = []  # found past their window when their other half came
        # skip reason -> halves read by an earlier run that expired in this one
        self.earlier_expired: Counter[str] = Counter()

    def add(self, profile: Profile, half: Half, source: str, line: int) -> list[Item] | None:
        """The joined pair's items when ``half`` completes one, else None (it waits)."""
        other = self.pending.pop((profile.name, half.key, _OTHER[half.side]), None)
        if other is not None and self._late(other, profile.join_window):
            # its window passed before this line was read: what a chunk boundary in between
            # would have expired is expired without one too
            self._stale.append(other)
            other = None
        self._see(profile.name, half)
        if other is None:
            # the same half read again (a re-read) replaces the waiting one; another line of
            # the same key and side displaces it: it can no longer be joined, and is counted
            key = (profile.name, half.key, half.side)
            before = self.pending.get(key)
            if before is not None and before.half.raw != half.raw:
                self._stale.append(before)
            self.pending[key] = Waiting(profile.name, half, source, line)
            return None
        request, response = (half, other.half) if half.side == "request" else (other.half, half)
        return profile.join(request, response)

    def expired(
        self, profiles: dict[str, Profile], flush: bool = False, end: bool = False
    ) -> list[tuple[Half, str]]:
        """Halves whose window has passed (all of them with ``flush``), with their skip reason;
        those read by an earlier run are counted in ``earlier_expired`` instead.

        ``end``: the end of a run. A run that saw no event at all of a half's other side
        (an Azure ML deployment that collects model_inputs only) measures the window on the
        half's own side's clock there, else such halves would wait in the state forever.
        """
        out = []
        gone, self._stale = self._stale, []
        for key, waiting in list(self.pending.items()):
            profile = profiles.get(waiting.profile)
            if flush or profile is None or self._late(waiting, profile.join_window, end):
                del self.pending[key]
                gone.append(waiting)
        for waiting in gone:
            reason = "missing_output" if waiting.half.side == "request" else "response_without_request"
            if waiting.earlier:
                self.earlier_expired[reason] += 1
            else:
                out.append((waiting.half, reason))
        return out

    def _see(self, profile: str, half: Half) -> None:
        newest = self.newest.get((profile, half.side))
        if newest is None or half.ts > newest:
            self.newest[(profile, half.side)] = half.ts

    def _late(self, waiting: Waiting, window: float, end: bool = False) -> bool:
        """True when the other side's clock (at the end of a run that saw none of the other
        side, its own side's) is past the half's window."""
        clock = self.newest.get((waiting.profile, _OTHER[waiting.half.side]))
        if clock is None and end:
            clock = self.newest.get((waiting.profile, waiting.half.side))
        return clock is not None and (clock - waiting.half.ts).total_seconds() > window

    def rows(self) -> list[tuple[str, str, str, float, str, int, bytes]]:
        """The waiting halves as state rows: (profile, key, side, ts, source, line, raw line)."""
        return [
            (w.profile, w.half.key, w.half.side, w.half.ts.timestamp(), w.source, w.line, w.half.raw)
            for w in self.pending.values()
        ]

    def load(self, rows: list[tuple[Any, ...]], profiles: dict[str, Profile]) -> int:
        """Waiting halves saved by an earlier run, parsed again from their lines; returns how many."""
        loaded = 0
        for name, _key, _side, _ts, source, line, raw in rows:
            profile = profiles.get(name)
            if profile is None:
                continue  # that profile is not in use in this run: its halves stay saved
            for item in profile.parse(bytes(raw), source):
                if isinstance(item, Half):
                    waiting = Waiting(name, item, source, line, earlier=True)
                    self.pending[(name, item.key, item.side)] = waiting
                    self._see(name, item)
                    loaded += 1
        return loaded
