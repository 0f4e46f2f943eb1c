"""The contracts the stages share: the record schema, Batch, Counts, Reject, Delivery.

The transform stage produces ``Batch`` es of valid records (columns in ``SCHEMA``) and
``Counts``; sinks take batches and answer with a ``Delivery``; the summary adds up
counts and deliveries. Everything here is plain data, so any stage (and any new sink,
source or runner) imports it without importing another stage.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypedDict

import pyarrow as pa

if TYPE_CHECKING:
    from ingest.transform.routing import Route

NO_ENDPOINT = "-"  # lines that never got as far as a path
RAW_CAP = 2000  # bytes (characters, for a stored record) of a rejected line kept in its reject

# One row per record. ``record`` is the complete wire record as JSON (what a server is
# sent); the other columns are for the local store's readers and the report.
SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("event_timestamp", pa.timestamp("us", tz="UTC")),
        ("task", pa.string()),
        ("record", pa.string()),
        ("endpoint", pa.string()),
        ("status", pa.int32()),
        ("latency_ms", pa.float64()),
        ("request_id", pa.string()),
        ("text", pa.string()),
        ("predicted_label", pa.string()),
        ("predicted_score", pa.float64()),
        ("n_entities", pa.int32()),
        ("output_text", pa.string()),
        ("source_file", pa.string()),
        ("source_line", pa.int64()),
    ]
)


@dataclass
class Counts:
    """What happened to one endpoint's lines and records."""

    lines: int = 0
    records: int = 0  # mapped and valid, handed to the sink
    written: int = 0  # acknowledged by the sink
    skipped: Counter[str] = field(default_factory=Counter)
    rejected: int = 0
    # (hour since the epoch, status) -> lines: kept in the run log for the report's
    # traffic and error rates, since error lines never become records.
    by_hour: Counter[tuple[int, int]] = field(default_factory=Counter)

    def add(self, other: Counts) -> None:
        self.lines += other.lines
        self.records += other.records
        self.written += other.written
        self.skipped.update(other.skipped)
        self.rejected += other.rejected
        self.by_hour.update(other.by_hour)


@dataclass
class FileCounts:
    """What happened to one file's lines: each line read is exactly one of the three outcomes."""

    lines: int = 0
    gave_records: int = 0  # at least one valid record went to the sink
    skipped: int = 0  # skipped whole, or every record skipped (mapper returned None)
    rejected: int = 0  # rejected whole, or every record rejected
    nul_bytes: int = 0  # NUL bytes skipped: runs of them end a line, and are not lines

    def add(self, other: FileCounts) -> None:
        self.lines += other.lines
        self.gave_records += other.gave_records
        self.skipped += other.skipped
        self.rejected += other.rejected
        self.nul_bytes += other.nul_bytes


@dataclass
class Batch:
    """Valid records of one route's dataset (its workspace and tags), as columns in SCHEMA."""

    route: Route
    task: str
    table: pa.Table
    # What the parent's dataset-level decisions (ingest/transform/datasets.py) need, since a
    # worker cannot know those made from other chunks: ``candidate`` rows are one reading of
    # an output every task could give (an empty list), kept only if the dataset's task is
    # this one; text classification rows carry the ``evidence`` their scores give about the
    # dataset being multi-label and the ``multi_label`` flag their records hold, which the
    # parent settles to the dataset's.
    candidate: bool = False
    evidence: str | None = None  # text classification: mappers.text_classification.evidence
    multi_label: bool | None = None  # text classification: the flag in the rows' records
    first_offset: int = 0  # byte offset of the chunk the rows come from, in its source
    first_line: int = 0  # and its first line: a waiting batch keeps the checkpoint before it
    # Per row, where its record comes from: (line offset, pair index in the line, pairs of the
    # line that gave records, 0 when unknown), an int64 array of shape (rows, 3); None for
    # batches not made by the transform (push reads them back from a store).
    origins: Any = None


class Reject(TypedDict):
    """One line of the rejects file: where the line was, which stage refused it and why.

    ``raw`` is the line (or the stored record) capped at ``RAW_CAP`` and scrubbed of
    credentials; ``record`` is the index of the pair within its line, when known.
    """

    file: str
    line: int | None
    offset: int | None
    record: int | None
    endpoint: str
    stage: str  # parse, pair, map, record, validate, sink, server
    reason: str
    raw: str


ROW_COLUMNS = ["record", "endpoint", "source_file", "source_line"]  # what a sink's reject needs


def rows_of(part: pa.Table, origins: Any = None) -> list[dict[str, Any]]:
    """A batch's rows (or a slice of them, with the same slice of its ``origins``) as dicts
    of ``ROW_COLUMNS``, each with ``offset``, ``index`` and ``pairs`` (its line's byte offset,
    its record's pair index in the line, how many pairs of the line gave records) when the
    origins are known, for ``reject_of_row`` and ``Delivery.refuse``."""
    rows = part.select(ROW_COLUMNS).to_pylist()
    if origins is not None and len(origins) == len(rows):
        for row, (offset, index, pairs) in zip(rows, origins.tolist(), strict=True):
            row["offset"], row["index"], row["pairs"] = offset, index, pairs
    return rows


def reject_of_row(row: dict[str, Any], reason: str, stage: str) -> Reject:
    """The reject of a record a sink refused, from its row (``rows_of``).

    Its ``record`` (pair index) is what makes it a record's reject rather than a whole
    line's in the summary: the line was read and mapped, the target refused one record.
    Rows without origins (``ingest push`` reads them back from a store) leave it None.
    """
    return {
        "file": row["source_file"],
        "line": row["source_line"],
        "offset": row.get("offset"),
        "record": row.get("index"),
        "endpoint": row["endpoint"],
        "stage": stage,
        "reason": reason,
        "raw": row["record"][:RAW_CAP],
    }


@dataclass
class Delivery:
    """What a sink's add or flush did: counts per endpoint, and records the target refused."""

    written: Counter[str] = field(default_factory=Counter)
    already_stored: Counter[str] = field(default_factory=Counter)
    rejects: list[Reject] = field(default_factory=list)
    # (file, line offset, pair index, pairs of the line that gave records) of each refused
    # record whose origin is known: what Summary.count_refused needs to count a line whose
    # every record was refused as a rejected line of its file
    refused: list[tuple[str, int, int, int]] = field(default_factory=list)

    def refuse(self, row: dict[str, Any], reason: str, stage: str) -> None:
        """File the reject of one record (a row of ``rows_of``) the sink or server refused."""
        self.rejects.append(reject_of_row(row, reason, stage))
        if row.get("pairs"):
            self.refused.append((row["source_file"], row["offset"], row["index"], row["pairs"]))

    def refuse_batch(self, batch: Batch, reason: str, stage: str = "sink") -> None:
        """Refuse every record of a batch for one reason (e.g. its dataset holds another task)."""
        for row in rows_of(batch.table, batch.origins):
            self.refuse(row, reason, stage)

    def merge(self, other: Delivery) -> None:
        self.written.update(other.written)
        self.already_stored.update(other.already_stored)
        self.rejects.extend(other.rejects)
        self.refused.extend(other.refused)
