"""Dataset-level decisions, made once per dataset in the parent process (issue 16).

A dataset has one task, and a text classification dataset is single- or multi-label
(Argilla refuses a bulk whose records differ from the dataset's). These are decided
once, in this order: the endpoint's config (``task``/``mapper``, ``multi_label``), else
the dataset as it already exists in the target (the local store's ``_dataset.json``,
the server's dataset and records), else the first records that can tell, in input order
(chunks come back in order, so neither chunk size nor ``-j`` changes the answer).
Records that disagree are rejected with a reason naming the config key that would fix
it.

An output that cannot tell the task (an empty list: no entities, no labels, no
candidates; its candidates of every task come from the worker, one of them is kept) waits
for the decision instead of making it, wherever it falls. While a batch waits, the
checkpoint of its source stays before its chunk, so a crash re-reads it. At the end of the
run a dataset whose task is still unknown rejects its waiting records with the reason. The
first text classification record decides the multi-label kind: multi-label when its scores
sum to more than 1 beyond rounding, else single-label (Rubrix's default, and what a record
that fits either kind fits too).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from ingest.model import Batch, reject_of_row
from ingest.transform.routing import Route
from mappers import Rejected
from mappers import text_classification as tc

TC = tc.TASK

# Waiting records kept in memory per dataset; past this, a dataset whose multi-label kind
# is still open is decided single-label (as at the end of a run), and empty outputs of a
# dataset whose task is unknown are rejected.
MAX_WAITING = 100_000

Lookup = Callable[[Route], "tuple[str | None, bool | None]"]


@dataclass
class DatasetState:
    """What is decided about one dataset (a name in a workspace) so far, and what waits for it.

    ``task``: the dataset's task (``"TextClassification"``, ``"TokenClassification"`` or
    ``"Text2Text"``), None until something tells; ``multi_label``: a text classification
    dataset's kind, None until decided. ``task_from`` and ``multi_from`` say what decided
    each (``"config"``, ``"target"``, ``"records"`` or ``"default"``; ``""`` while
    undecided), for the reject reasons. ``waiting``: the batches held until the task is
    known, in input order. ``Decisions`` keeps one per dataset, for the single-machine run
    (ingest/run.py) and for each Dask task (``TaskDecisions`` in ingest/runners/dask.py).
    """

    task: str | None = None
    task_from: str = ""
    multi_label: bool | None = None
    multi_from: str = ""
    waiting: list[Batch] = field(default_factory=list)

    def waiting_rows(self) -> int:
        """Rows of the waiting batches (records, and the candidates of empty outputs)."""
        return sum(b.table.num_rows for b in self.waiting)

    def adopt(self, task: str | None, multi_label: bool | None, origin: str) -> None:
        """Take what ``origin`` (as in ``task_from``) tells about the dataset, where nothing
        decided it yet: ``task`` a task name (None or ``""``: it does not say), ``multi_label``
        the text classification kind (None: it does not say), taken only while the task is
        unknown or text classification. Never changes a decision made; raises nothing."""
        if self.task is None and task:
            self.task, self.task_from = task, origin
        if self.multi_label is None and multi_label is not None and self.task in (None, TC):
            self.multi_label, self.multi_from = multi_label, origin


@dataclass
class Admitted:
    """What the parent does with a chunk's batches once decisions are applied."""

    batches: list[Batch] = field(default_factory=list)
    rejects: list[dict[str, Any]] = field(default_factory=list)
    records: Counter[str] = field(default_factory=Counter)  # per endpoint, to add (may be < 0)
    rejected: Counter[str] = field(default_factory=Counter)
    # (file, line offset, pair index, pairs of the line) of each record refused here: a line
    # counted as giving records gave none once every one of its pairs is refused (see
    # Summary.count_refused)
    refused: list[tuple[str, int, int, int]] = field(default_factory=list)

    def merge(self, other: Admitted) -> None:
        self.batches += other.batches
        self.rejects += other.rejects
        self.refused += other.refused
        self.records.update(other.records)
        self.rejected.update(other.rejected)


def _endpoint_key(route: Route) -> str:
    return f'[endpoints."{route.endpoint}"]'


class Decisions:
    """Holds each dataset's task and multi-label kind, and the batches waiting for them."""

    def __init__(self, lookup: Lookup | None = None, max_waiting: int = MAX_WAITING):
        self._lookup = lookup
        self._datasets: dict[tuple[str | None, str], DatasetState] = {}
        self.max_waiting = max_waiting
        self._dropped: list[tuple[DatasetState, Batch]] = []  # per admit(): candidates of other tasks
        self._matched: set[str] = set()  # per admit(): ids with a candidate of their dataset's task

    # -- what is known ------------------------------------------------------------------
    def _dataset(self, route: Route) -> DatasetState:
        key = (route.workspace, route.dataset)  # a dataset is a name in a workspace
        found = self._datasets.get(key)
        if found is not None:
            return found
        found = self._datasets[key] = DatasetState()
        if route.configured_task:
            found.task, found.task_from = route.configured_task, "config"
        if route.multi_label is not None:
            found.multi_label, found.multi_from = route.multi_label, "config"
        if (found.task is None or found.multi_label is None) and self._lookup is not None:
            found.adopt(*self._lookup(route), "target")
        return found

    def floors(self) -> dict[str, tuple[int, int]]:
        """Per source, the (offset, line) before the earliest chunk with waiting rows."""
        floors: dict[str, tuple[int, int]] = {}
        for state in self._datasets.values():
            for batch in state.waiting:
                source = batch.table["source_file"][0].as_py() if batch.table.num_rows else None
                if source is None:
                    continue
                here = (batch.first_offset, batch.first_line)
                if source not in floors or here < floors[source]:
                    floors[source] = here
        return floors

    # -- admitting a chunk's batches ------------------------------------------------------
    def admit(self, batches: list[Batch]) -> Admitted:
        """Batches to deliver now, rows rejected, and count corrections, in input order."""
        out = Admitted()
        self._dropped, self._matched = [], set()
        for batch in batches:
            if batch.table.num_rows:
                self._admit(batch, out)
        # An empty output whose reading in the dataset's task failed (e.g. no text for a
        # NER record) has only candidates of other tasks, all dropped: reject it, once.
        dropped = [(self._orphan_reason(state), batch) for state, batch in self._dropped]
        _reject_orphans(dropped, self._matched, out)
        for state in self._datasets.values():
            if state.waiting and state.waiting_rows() > self.max_waiting:
                self._give_up(state, out)
        return out

    def finish(self) -> Admitted:
        """The end of the run: decide or reject whatever still waits."""
        out = Admitted()
        for state in self._datasets.values():
            if state.waiting:
                self._give_up(state, out)
        return out

    def _admit(self, batch: Batch, out: Admitted) -> None:
        state = self._dataset(batch.route)
        if state.task is None and not batch.candidate:
            state.task, state.task_from = batch.task, "records"
            self._release(state, out)
        if state.task is None:
            state.waiting.append(batch)
            return
        if batch.task != state.task:
            if not batch.candidate:
                self._reject(batch, self._task_reason(batch, state), out, counted=True)
            else:  # a candidate of another task: the one of the dataset's task is kept
                self._dropped.append((state, batch))
            return
        if batch.candidate:
            self._matched.update(batch.table["id"].to_pylist())
        if batch.task == TC and state.multi_label is None:
            # The first record decides: multi-label when its scores sum to more than 1 beyond
            # rounding, else single-label (what a softmax gives, and what a record that fits
            # either kind, one label or a top-k cut, fits too). Holding those back until a
            # record tells would hold the checkpoint back with them, for a whole run when no
            # record ever tells (a top_k=1 pipeline); config's multi_label overrides.
            state.multi_label, state.multi_from = batch.evidence == tc.MULTI, "records"
        self._deliver(batch, state, out)
        if state.waiting:
            self._release(state, out)

    def _release(self, state: DatasetState, out: Admitted) -> None:
        waiting, state.waiting = state.waiting, []
        for batch in _drop_other_candidates(waiting, state.task, out, self._orphan_reason(state)):
            self._admit(batch, out)

    def _give_up(self, state: DatasetState, out: Admitted) -> None:
        if state.task is None:
            seen: set[str] = set()
            for batch in state.waiting:
                fresh = [i for i, rid in enumerate(batch.table["id"].to_pylist()) if rid not in seen]
                seen.update(batch.table["id"].to_pylist())
                table = batch.table.take(pa.array(fresh, pa.int64())) if fresh else batch.table.slice(0, 0)
                reason = self._unknown_task_reason(batch.route)
                self._reject(_with_table(batch, table, fresh), reason, out, counted=False)
            state.waiting = []
            return
        if state.task == TC and state.multi_label is None:
            state.multi_label, state.multi_from = False, "default"
        self._release(state, out)

    def _deliver(self, batch: Batch, state: DatasetState, out: Admitted) -> None:
        if batch.candidate:
            out.records.update(_endpoints(batch.table))
        if batch.task == TC and batch.multi_label != state.multi_label:
            batch = self._settle(batch, state, out)
            if batch is None:
                return
        if batch.task == TC:
            batch.multi_label = state.multi_label
        batch.candidate = False
        out.batches.append(batch)

    def _settle(self, batch: Batch, state: DatasetState, out: Admitted) -> Batch | None:
        """Rewrite the rows' records to the dataset's multi-label kind, rejecting those that cannot be."""
        assert state.multi_label is not None
        hint = f"multi_label in {_endpoint_key(batch.route)}"
        records = batch.table["record"].to_pylist()
        kept_rows, new_records, top_scores, failed = [], [], [], []
        for i, raw in enumerate(records):
            record = orjson.loads(raw)
            try:
                record = tc.settle(record, state.multi_label, key_hint=hint)
            except Rejected as exc:
                reason = str(exc)
                if state.multi_from != "config":
                    why = _source(state.multi_from)
                    reason += f" (dataset {batch.route.dataset!r} is single-label: {why})"
                failed.append((i, reason))
                continue
            kept_rows.append(i)
            new_records.append(orjson.dumps(record).decode())
            scores = [item.get("score") for item in (record.get("prediction") or {}).get("labels") or []]
            top_scores.append(max((float(x) for x in scores if isinstance(x, int | float)), default=None))
        for i, reason in failed:
            self._reject(_with_table(batch, batch.table.slice(i, 1), [i]), reason, out, counted=True)
        if not kept_rows:
            return None
        table = batch.table.take(pa.array(kept_rows, pa.int64()))
        column = table.schema.get_field_index("record")
        table = table.set_column(column, "record", pa.array(new_records, pa.string()))
        column = table.schema.get_field_index("predicted_score")
        table = table.set_column(column, "predicted_score", pa.array(top_scores, pa.float64()))
        return _with_table(batch, table, kept_rows)

    # -- reasons ------------------------------------------------------------------------------
    def _task_reason(self, batch: Batch, state: DatasetState) -> str:
        return (
            f"dataset {batch.route.dataset!r} holds {state.task} records ({_source(state.task_from)}), "
            f"this output is {batch.task}; set dataset (or task) in {_endpoint_key(batch.route)}"
        )

    def _orphan_reason(self, state: DatasetState) -> str:
        return f"the empty output does not make a valid {state.task} record"

    def _unknown_task_reason(self, route: Route) -> str:
        return (
            f"the output is empty, which any task could give, and nothing else tells the task of dataset "
            f"{route.dataset!r} (no config, no such dataset in the target, no other record of it in this "
            f"run); set task in {_endpoint_key(route)}"
        )

    def _reject(self, batch: Batch, reason: str, out: Admitted, counted: bool) -> None:
        """Reject every row of a batch; ``counted``: the worker had counted them as records."""
        rows = batch.table.select(["source_file", "source_line", "endpoint", "record"]).to_pylist()
        for i, row in enumerate(rows):
            _reject_row(row, reason, out, _origin(batch, i), counted)


def _source(origin: str) -> str:
    return {
        "config": "its endpoint's config says so",
        "target": "as it exists in the target",
        "records": "decided by its first records in this run",
        "default": "the default when no record tells",
    }.get(origin, origin)


def _endpoints(table: pa.Table) -> Counter[str]:
    return Counter(table["endpoint"].to_pylist())


def _origin(batch: Batch, i: int) -> tuple[int, int, int] | None:
    """Row ``i``'s (line offset, pair index, pairs of its line), when the batch knows them."""
    if batch.origins is None or i >= len(batch.origins):
        return None
    offset, index, pairs = batch.origins[i].tolist()
    return offset, index, pairs


def _with_table(batch: Batch, table: pa.Table, rows: Any) -> Batch:
    """The batch with another table: ``rows``, the positions in the old one of the new one's rows."""
    origins = batch.origins[np.asarray(rows, np.int64)] if batch.origins is not None else None
    return Batch(
        route=batch.route,
        task=batch.task,
        table=table,
        candidate=batch.candidate,
        evidence=batch.evidence,
        multi_label=batch.multi_label,
        first_offset=batch.first_offset,
        first_line=batch.first_line,
        origins=origins,
    )


def _drop_other_candidates(waiting: list[Batch], task: str | None, out: Admitted, reason: str) -> list[Batch]:
    """Waiting batches once the task is known: candidates of other tasks dropped, and the
    empty outputs with no candidate of the dataset's task rejected."""
    if task is None:
        return waiting
    kept_ids: set[str] = set()
    for batch in waiting:
        if batch.candidate and batch.task == task:
            kept_ids.update(batch.table["id"].to_pylist())
    kept, dropped = [], []
    for batch in waiting:
        if not batch.candidate or batch.task == task:
            kept.append(batch)
        else:
            dropped.append((reason, batch))
    _reject_orphans(dropped, kept_ids, out)
    return kept


def _reject_orphans(dropped: list[tuple[str, Batch]], kept_ids: set[str], out: Admitted) -> None:
    """Reject the empty outputs left with no reading: each id of the dropped candidate batches
    (``(reason, batch)``, candidates of a task other than their dataset's) that has no kept
    candidate among ``kept_ids``, once, in input order, with its batch's reason."""
    if not dropped:
        return
    kept = pa.array(sorted(kept_ids), pa.string())
    orphans: dict[str, tuple[str, dict[str, Any], tuple[int, int, int] | None]] = {}
    for reason, batch in dropped:
        mask = pc.invert(pc.is_in(batch.table["id"], kept))
        positions = np.flatnonzero(mask.to_numpy(zero_copy_only=False))
        rows = batch.table.take(pa.array(positions, pa.int64()))
        for i, row in zip(
            positions.tolist(),
            rows.select(["id", "source_file", "source_line", "endpoint", "record"]).to_pylist(),
            strict=True,
        ):
            orphans.setdefault(row["id"], (reason, row, _origin(batch, i)))
    for reason, row, origin in orphans.values():
        _reject_row(row, reason, out, origin)


def _reject_row(
    row: dict[str, Any],
    reason: str,
    out: Admitted,
    origin: tuple[int, int, int] | None,
    counted: bool = False,
) -> None:
    """Reject one record (a row); ``counted``: the worker had counted it as a record (an empty
    output none of whose candidates was kept was not).

    A reject of the record, not of its line: it names the pair (``record``) and the line's
    offset, the record stays counted among the endpoint's records (rejected, so the columns
    still add up), and ``refused`` tells the parent, which counts the line rejected in its
    file once every pair of it is refused. Without an origin (a batch the transform did not
    make) it stays what it was before: a reject of the line, the record taken off the count.
    """
    endpoint = row["endpoint"]
    reject = reject_of_row(row, reason, "dataset")
    if origin:
        reject["offset"], reject["record"] = origin[0], origin[1]
    out.rejects.append(reject)
    out.rejected[endpoint] += 1
    if origin is None:
        if counted:
            out.records[endpoint] -= 1
        return
    if not counted:
        out.records[endpoint] += 1
    out.refused.append((row["source_file"], origin[0], origin[1], origin[2]))
