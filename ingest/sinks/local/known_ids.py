"""Which record ids a date partition of the local store already holds, for the id check.

Every write checks its records against the ids on disk, so that reading a line twice (a
file and its copy, ``--from-start``, a run killed after a write) never stores it twice.
Reading a partition's id column at every write made a busy day quadratic: each write
re-read all of the day's ids, and a day of 200k lines took twice as long as the same lines
spread over a quarter. So a partition's ids are read once per run and kept as 64-bit
hashes, sorted; each write adds its own. Only the line part of an id is hashed (its first
16 characters): an id is ``<hash of its log line>-<index>``, and a line's records share a
date and a dataset, so they are written together, in one file. That is 8 bytes a line
rather than a record. A
match is confirmed against the ids themselves, so a collision (or a custom mapper that
answers differently the second time) can cost a read but never drops a record.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ingest.sinks.local.layout import StoreLayout

# Partitions whose hashes stay in memory: a log is mostly in time order, so a run writes
# to few days at a time; one evicted and touched again is read from disk again.
MAX_PARTITIONS = 8


def stored_ids(directory: Path, ignore: Callable[[str], bool] | None = None) -> pa.Array:
    """Every id in one partition (but in files whose name ``ignore`` picks); only the id column is read."""
    files = StoreLayout.parts(directory)
    if ignore is not None:
        files = [f for f in files if not ignore(f.name)]
    chunks = [c for f in files for c in pq.read_table(f, columns=["id"])["id"].chunks]
    return pa.concat_arrays(chunks) if chunks else pa.array([], pa.string())


_PREFIX = 16  # characters of an id hashed: 64 bits of its line's digest, in hex
_MIX = (np.uint64(0x9E3779B97F4A7C15), np.uint64(0xC2B2AE3D27D4EB4F))


def _line_hashes(ids: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """One 64-bit hash per id, of its first 16 characters: 64 bits of its line's digest.

    Any function of the id would keep the check exact (a match is confirmed against the
    ids themselves); one of the line part keeps a line's records to one hash, and one
    computed in numpy over Arrow's buffers costs no Python object per id.
    """
    arrays = ids.chunks if isinstance(ids, pa.ChunkedArray) else [ids]
    hashes = [_prefix_hashes(a) for a in arrays if len(a)]
    return np.concatenate(hashes) if hashes else np.empty(0, np.int64)


def _prefix_hashes(ids: pa.Array) -> np.ndarray:
    prefixes = pc.utf8_slice_codeunits(ids, 0, _PREFIX)
    _, offsets_buffer, data_buffer = prefixes.buffers()
    n = len(prefixes)
    offsets = np.frombuffer(offsets_buffer, dtype=np.int32)[prefixes.offset : prefixes.offset + n + 1]
    if prefixes.null_count or not (np.diff(offsets) == _PREFIX).all():
        # Not all ids as the stage makes them: one at a time, the same hash for those that are.
        return np.fromiter(map(_prefix_hash, prefixes.to_pylist()), dtype=np.int64, count=n)
    data = np.frombuffer(data_buffer, dtype=np.uint8)[offsets[0] : offsets[-1]]
    words = data.view(np.uint64).reshape(n, 2)  # the 16 characters as two 64-bit words
    return (words[:, 0] * _MIX[0] ^ words[:, 1] * _MIX[1]).view(np.int64)


def _prefix_hash(prefix: str | None) -> int:
    """``_prefix_hashes`` of one id's prefix, in Python."""
    data = (prefix or "").encode()
    if len(data) != _PREFIX:
        return hash(data)  # any value will do for an id unlike the stage's (a match is confirmed)
    low, high = int.from_bytes(data[:8], "little"), int.from_bytes(data[8:], "little")
    value = ((low * int(_MIX[0])) ^ (high * int(_MIX[1]))) & 0xFFFF_FFFF_FFFF_FFFF
    return value - (1 << 64) if value >= 1 << 63 else value


def _held_ids(
    directory: Path, unsaved: Iterable[pa.ChunkedArray], ignore: Callable[[str], bool] | None = None
) -> pa.Array:
    """The ids of the partition's files, and those written to a file not in place yet."""
    chunks = [stored_ids(directory, ignore)]
    chunks += [c for ids in unsaved for c in ids.chunks]
    return pa.concat_arrays(chunks)


class _Partition:
    def __init__(self, held: pa.Array):
        self.hashes = np.unique(_line_hashes(held))

    def may_hold(self, hashes: np.ndarray) -> np.ndarray:
        at = np.searchsorted(self.hashes, hashes)
        found = np.zeros(len(hashes), dtype=bool)
        inside = at < len(self.hashes)
        found[inside] = self.hashes[at[inside]] == hashes[inside]
        return found

    def add(self, hashes: np.ndarray) -> None:
        new = np.unique(hashes)
        self.hashes = np.insert(self.hashes, np.searchsorted(self.hashes, new), new)


class KnownIds:
    """The id check of the local store's writes, one partition (directory) at a time.

    ``unsaved`` is what the partition holds in a file still being written: those ids are
    not on disk for a re-read to find, after an eviction or for a confirmation.
    """

    def __init__(self, max_partitions: int = MAX_PARTITIONS, ignore: Callable[[str], bool] | None = None):
        self.max_partitions = max_partitions
        # A backfill's task ignores the files of the run's other tasks: the run's commit
        # step settles ids two of them wrote, in input order, whichever finished first.
        self.ignore = ignore
        self._partitions: OrderedDict[Path, _Partition] = OrderedDict()

    def fresh(self, directory: Path, table: pa.Table, unsaved: Iterable[pa.ChunkedArray] = ()) -> pa.Table:
        """The rows of ``table`` whose ids the partition does not hold yet, which it holds
        from now on: the caller writes them (a failed write fails the run)."""
        held: pa.Array | None = None
        partition = self._partitions.pop(directory, None)
        if partition is None:
            held = _held_ids(directory, unsaved, self.ignore)
            partition = _Partition(held)
        self._partitions[directory] = partition  # most recently used last
        while len(self._partitions) > self.max_partitions:
            self._partitions.popitem(last=False)
        hashes = _line_hashes(table["id"])
        if partition.may_hold(hashes).any():
            if held is None:
                held = _held_ids(directory, unsaved, self.ignore)
            keep = pc.invert(pc.is_in(table["id"], value_set=held))
            table, hashes = table.filter(keep), hashes[keep.to_numpy(zero_copy_only=False)]
        partition.add(hashes)
        return table
