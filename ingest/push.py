"""``ingest push``: send what a local store holds to a Rubrix server.

For staged backfills (ingest to the store, look, then push) and for catching up after an
outage. Records go out exactly as stored, ids included, so pushing twice replaces rather
than duplicates. Datasets are streamed a Parquet batch at a time, never whole.
"""

from __future__ import annotations

import time
from pathlib import Path

import pyarrow as pa

from ingest.model import Batch
from ingest.report.summary import Summary
from ingest.run import record_acknowledged, record_delivery
from ingest.sinks import Sink
from ingest.sinks.local.layout import StoreLayout
from ingest.sinks.rejects import RejectsFile
from ingest.transform.routing import Route

READ_ROWS = 50_000
COLUMNS = ["id", "record", "endpoint", "source_file", "source_line"]


def push(store: Path, datasets: list[str], sink: Sink, rejects: RejectsFile, summary: Summary) -> Summary:
    started = time.perf_counter()
    layout = StoreLayout(store)
    try:
        for name in datasets:
            meta = layout.read_meta(name) or {}
            route = Route(endpoint=f"(store) {name}", dataset=name, workspace=meta.get("workspace"),
                          tags=meta.get("tags") or {})  # fmt: skip
            parts = layout.open_dataset(name)
            for record_batch in parts.to_batches(columns=COLUMNS, batch_size=READ_ROWS):
                table = pa.Table.from_batches([record_batch])
                for endpoint in table["endpoint"].to_pylist():
                    summary.counts_for(endpoint).records += 1
                    summary.datasets.setdefault(endpoint, name)
                record_delivery(sink.add(Batch(route, meta["task"], table)), summary, rejects)
        record_delivery(sink.flush(), summary, rejects)
    except Exception as exc:
        record_acknowledged(exc, summary, rejects)
        raise
    finally:
        sink.close()
        rejects.close()
    if rejects.count:
        summary.rejects_file = str(rejects.path)
    summary.seconds = time.perf_counter() - started
    return summary
