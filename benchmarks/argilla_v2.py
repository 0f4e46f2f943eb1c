"""Records/s into the real Argilla 2.x server beside the v0 test server, in one run.

    python benchmarks/argilla_v2.py 100000 [--json out.json] [--concurrency 4] [--batch-size 500]

The same generated log (benchmarks/generate.py, seeded) is ingested twice, each time into
a fresh server on 127.0.0.1: the v0 test server (tests/rubrix_server.py) and the real
argilla-server 2.8 (tests/argilla_v2_server.py: SQLite, its own Redis, the no-op search
engine, so Elasticsearch's indexing time is not in the figure). For each: wall time,
records/s, the CPU seconds of client (ingest and its workers) and server, the server's
peak memory (PSS), and the records the server holds afterwards.

The real server on SQLite takes records at about a hundred per second per core, so a
100k-line log (about 400k records) would take an hour or more: ``--limit SECONDS`` sends
ingest SIGTERM after that long, which makes it finish the chunk in flight, flush and
checkpoint (the drain is timed too), and records/s is what was written over the whole
wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

import run as bench  # noqa: E402  (benchmarks/run.py: log generation and measuring)

from tests.argilla_v2_server import ArgillaV2Server  # noqa: E402
from tests.conftest import RubrixServer  # noqa: E402


class PeakMemory:
    """Samples a process tree's PSS every 0.2 s while in a ``with`` block."""

    def __init__(self, pid: int):
        self.pid, self.peak, self._done = pid, 0, threading.Event()
        self._thread = threading.Thread(target=self._sample)

    def _sample(self) -> None:
        while not self._done.is_set():
            self.peak = max(self.peak, bench.memory(bench.descendants(self.pid)))
            self._done.wait(0.2)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()


def run_ingest(cmd: list[str], env: dict[str, str], limit: float | None) -> tuple[float, float, dict]:
    """(wall seconds, client peak PSS in MB, --json summary); SIGTERM after ``limit`` seconds."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    timer = threading.Timer(limit, proc.send_signal, [signal.SIGTERM]) if limit else None
    if timer is not None:
        timer.start()
    with PeakMemory(proc.pid) as client_memory:
        stdout, stderr = proc.communicate()
    if timer is not None:
        timer.cancel()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {stderr.decode()[-2000:]}")
    return time.perf_counter() - started, client_memory.peak / 2**20, json.loads(stdout)


def ingest_into(
    server_pid: int, env: dict[str, str], path: Path, work: Path, extra: list[str], limit: float | None = None
) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "ingest", str(path), "--store", str(work), "--json", "-q", *extra]
    server_cpu = bench.cpu_seconds(server_pid)
    before = os.times()
    with PeakMemory(server_pid) as server_memory:
        seconds, client_peak, summary = run_ingest(cmd, {**os.environ, **env}, limit)
    after = os.times()
    return {
        "seconds": seconds,
        "interrupted": bool(summary.get("interrupted")),
        "lines": summary["lines_read"],
        "records": summary["records_written"],
        "rejected": summary["rejected"],
        "records_per_s": summary["records_written"] / seconds,
        "client_cpu_s": (after.children_user + after.children_system)
        - (before.children_user + before.children_system),
        "client_peak_pss_mb": client_peak,
        "server_cpu_s": bench.cpu_seconds(server_pid) - server_cpu,
        "server_peak_pss_mb": server_memory.peak / 2**20,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("lines", type=int)
    parser.add_argument("--concurrency", default="4")
    parser.add_argument("--batch-size", default="500")
    parser.add_argument("--limit", type=float, help="stop each ingest after this many seconds (SIGTERM)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    path = bench.log_file(args.lines, None)
    bench.warm_page_cache(path)
    extra = ["--concurrency", args.concurrency, "--batch-size", args.batch_size]
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-v2-") as tmp:
        v0 = RubrixServer(api_key="bench.apikey").start()
        try:
            assert v0.proc is not None
            results["v0_test_server"] = ingest_into(
                v0.proc.pid, v0.env(), path, Path(tmp, "v0"), extra, args.limit
            )
            results["v0_test_server"]["stored"] = sum(
                len(v0.records(name))
                for name in ("monitoring_spacy", "monitoring_transformers", "monitoring_translate")
            )
        finally:
            v0.stop()
        v2 = ArgillaV2Server().start()
        try:
            assert v2.proc is not None
            results["argilla_2_8"] = ingest_into(
                v2.proc.pid, v2.env("argilla"), path, Path(tmp, "v2"), extra, args.limit
            )
            results["argilla_2_8"]["stored"] = sum(
                v2.ok("GET", f"/api/v1/datasets/{d['id']}/records", params={"limit": 1})["total"]
                for d in v2.ok("GET", "/api/v1/me/datasets")["items"]
            )
            results["argilla_2_8"]["server_startup_s"] = v2.startup_seconds
        finally:
            v2.stop()
    print(f"{path.name}: {args.lines:,} lines, concurrency {args.concurrency}, batch size {args.batch_size}")
    print(f"{'target':16} {'seconds':>8} {'records':>8} {'rec/s':>8} {'client CPU':>10} {'server CPU':>10} "
          f"{'server PSS':>10} {'stored':>8}")  # fmt: skip
    for name, r in results.items():
        print(f"{name:16} {r['seconds']:8.1f} {r['records']:8,} {r['records_per_s']:8,.0f} "
              f"{r['client_cpu_s']:9.1f}s {r['server_cpu_s']:9.1f}s {r['server_peak_pss_mb']:8.0f}MB "
              f"{r['stored']:8,}" + ("  (stopped by --limit)" if r["interrupted"] else ""))  # fmt: skip
    if args.json:
        args.json.write_text(
            json.dumps({"file": str(path), "lines": args.lines, "results": results}, indent=2)
        )


if __name__ == "__main__":
    main()
