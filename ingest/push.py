"""``ingest push``: send what a local store holds to a Rubrix server.

For staged backfills (ingest to the store, look, then push) and for catching up after an
outage. Records go out exactly as stored, ids included, so pushing twice replaces rather
than duplicates. Datasets are streamed a Parquet batch at a time, never whole.

Push keeps checkpoints as ``run`` does, in the store's state file: the part files (which
never change once in place) pushed to each target (server URL and workspace). A push sends
only the part files not yet pushed there; ``--since``/``--until`` send the records of that
window from every part file and leave these checkpoints alone; ``--from-start`` ignores them.
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds

from ingest.model import Batch
from ingest.report.summary import Summary
from ingest.run import record_acknowledged, record_delivery
from ingest.sinks import Sink
from ingest.sinks.local.layout import StoreLayout
from ingest.sinks.rejects import RejectsFile
from ingest.sources.checkpoint import State
from ingest.transform.routing import Route

READ_ROWS = 50_000
COLUMNS = ["id", "record", "endpoint", "source_file", "source_line"]


def part_files(layout: StoreLayout, name: str, since: datetime | None, until: datetime | None) -> list[Path]:
    """A dataset's finished part files in date order, leaving out days wholly outside the window."""
    found = []
    for partition in sorted(layout.dataset_dir(name).glob("date=*")):
        day = partition.name.removeprefix("date=")
        if since is not None and day < since.date().isoformat():
            continue
        if until is not None and day > until.date().isoformat():
            continue
        found.extend(layout.parts(partition))
    return found


def push(
    store: Path,
    datasets: list[str],
    sink: Sink,
    rejects: RejectsFile,
    summary: Summary,
    state: State | None = None,
    target: str = "",
    since: datetime | None = None,
    until: datetime | None = None,
    from_start: bool = False,
) -> Summary:
    """Send the part files of ``datasets`` not yet pushed to ``target`` (all with ``from_start``),
    or a time window of every one; record what was pushed once the server acknowledged it."""
    started = time.perf_counter()
    layout = StoreLayout(store)
    windowed = since is not None or until is not None
    done = state.pushed(target) if state is not None and not (from_start or windowed) else set()
    try:
        for name in datasets:
            meta = layout.read_meta(name) or {}
            route = Route(endpoint=f"(store) {name}", dataset=name, workspace=meta.get("workspace"),
                          tags=meta.get("tags") or {})  # fmt: skip
            pushed: dict[str, int] = {}
            for path in part_files(layout, name, since, until):
                key = str(path.relative_to(store))
                if key in done:
                    summary.skipped_files[key] = "already pushed to this target"
                    continue
                rows = _push_file(path, name, meta["task"], route, sink, rejects, summary, since, until)
                pushed[key] = rows
            record_delivery(sink.flush(), summary, rejects)
            if state is not None and not windowed and pushed:
                state.save_pushed(target, pushed)
    except Exception as exc:
        record_acknowledged(exc, summary, rejects)
        raise
    finally:
        sink.close()
        rejects.close()
    if len(summary.skipped_files) > 3:  # one line for the usual case: everything pushed before
        n = len(summary.skipped_files)
        summary.skipped_files = {f"{n} part files": "already pushed to this target"}
    if rejects.count:
        summary.rejects_file = str(rejects.path)
    summary.seconds = time.perf_counter() - started
    return summary


def _push_file(
    path: Path,
    name: str,
    task: str,
    route: Route,
    sink: Sink,
    rejects: RejectsFile,
    summary: Summary,
    since: datetime | None,
    until: datetime | None,
) -> int:
    """Send one part file's records (those in the window); returns how many were read."""
    window = None
    if since is not None:
        window = ds.field("event_timestamp") >= pa.scalar(since, pa.timestamp("us", tz="UTC"))
    if until is not None:
        before = ds.field("event_timestamp") < pa.scalar(until, pa.timestamp("us", tz="UTC"))
        window = before if window is None else window & before
    rows = 0
    for record_batch in ds.dataset(path, format="parquet").to_batches(
        columns=COLUMNS, filter=window, batch_size=READ_ROWS
    ):
        table = pa.Table.from_batches([record_batch])
        rows += table.num_rows
        for endpoint in table["endpoint"].to_pylist():
            summary.counts_for(endpoint).records += 1
            summary.datasets.setdefault(endpoint, name)
        if table.num_rows:
            record_delivery(sink.add(Batch(route, task, table)), summary, rejects)
    return rows
