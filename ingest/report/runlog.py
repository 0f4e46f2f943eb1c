"""The run log: one JSON line per finished run, in ``<store>/_runs.jsonl``.

Error responses and rejected lines never become records, so the report's traffic, error
rates and skip/reject history come from here. A run that fails before its last checkpoint
is not logged: its lines are read again, and counted then, by the next run.

Each log line's traffic is counted once, however often it is read (``--from-start``, a time
window, a new target or selection of endpoints): every run logs which lines of which file
(by fingerprint) it read, ``<store>/_runs.counted.json`` keeps, per fingerprint, the first
line not counted yet, and a run counts the traffic of lines from there on only.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from ingest.report.summary import Summary
from ingest.sinks.local.layout import RUNS_FILE, StoreLayout

__all__ = ["COUNTED_FILE", "RUNS_FILE", "append_run", "counted_lines", "read_runs"]

# Where counting ends per file, beside the run log (see the module doc).
COUNTED_FILE = "_runs.counted.json"


def counted_lines(store: Path) -> dict[str, int]:
    """Per file fingerprint, the first line whose traffic no logged run has counted yet."""
    try:
        return orjson.loads((store / COUNTED_FILE).read_bytes())
    except (OSError, orjson.JSONDecodeError):
        pass
    counted: dict[str, int] = {}  # lost or never written: the run log has the same facts
    for run in read_runs(store):
        for fp, (_, end) in run.get("lines", {}).items():
            counted[fp] = max(counted.get(fp, 1), end)
    return counted


def append_run(
    store: Path,
    summary: Summary,
    started: datetime,
    options: dict[str, Any],
    fingerprints: dict[str, str] | None = None,
) -> None:
    """Log a finished run; ``fingerprints`` (file name -> fingerprint) say which lines it counted."""
    lines = {
        fingerprints[name]: read
        for name, read in summary.read_lines.items()
        if fingerprints and name in fingerprints
    }
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
    if lines:
        entry["lines"] = lines
    store.mkdir(parents=True, exist_ok=True)
    counted = counted_lines(store)  # before the append: else rebuilt from it, with this run
    path = StoreLayout(store).runs_file
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        # a line cut short by a crash mid-append: ours starts on a line of its own, or it
        # would be glued to it and lost with it
        os.write(fd, (b"\n" if _ends_cut_short(path) else b"") + orjson.dumps(entry) + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    if lines:
        for fp, (_, end) in lines.items():
            counted[fp] = max(counted.get(fp, 1), end)
        partial = store / f".{COUNTED_FILE}.partial"
        partial.write_bytes(orjson.dumps(counted))
        partial.replace(store / COUNTED_FILE)


def _ends_cut_short(path: Path) -> bool:
    """True when the file's last byte is not a newline (an append a crash cut short)."""
    with open(path, "rb") as fh:
        if fh.seek(0, os.SEEK_END) == 0:
            return False
        fh.seek(-1, os.SEEK_END)
        return fh.read(1) != b"\n"


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
