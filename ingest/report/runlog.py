"""The run log: one JSON line per finished run, in ``<store>/_runs.jsonl``.

Error responses and rejected lines never become records, so the report's traffic, error
rates and skip/reject history come from here. A run that fails before its last checkpoint
is not logged: its lines are read again, and counted then, by the next run.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from ingest.report.summary import Summary
from ingest.sinks.local.layout import RUNS_FILE, StoreLayout

__all__ = ["RUNS_FILE", "append_run", "read_runs"]


def append_run(store: Path, summary: Summary, started: datetime, options: dict[str, Any]) -> None:
    entry = {
        "started": started.isoformat(),
        "finished": datetime.now(UTC).isoformat(),
        "target": summary.target,
        "options": options,
        "files": summary.files,
        **{k: v for k, v in summary.to_json().items() if k in ("lines_read", "records_written", "rejected")},
        "skipped": dict(summary.totals().skipped),
        "endpoints": {
            endpoint: {
                "dataset": summary.datasets.get(endpoint),
                "lines": c.lines,
                "written": c.written,
                "skipped": dict(c.skipped),
                "rejected": c.rejected,
                # [hour since the epoch, status, lines]
                "by_hour": sorted([hour, status, n] for (hour, status), n in c.by_hour.items()),
            }
            for endpoint, c in sorted(summary.counts.items())
        },
    }
    store.mkdir(parents=True, exist_ok=True)
    fd = os.open(StoreLayout(store).runs_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, orjson.dumps(entry) + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)


def read_runs(store: Path) -> list[dict[str, Any]]:
    path = StoreLayout(store).runs_file
    if not path.exists():
        return []
    runs = []
    for line in path.read_bytes().splitlines():
        try:
            runs.append(orjson.loads(line))
        except orjson.JSONDecodeError:
            continue  # a line cut short by a crash mid-append
    return runs
