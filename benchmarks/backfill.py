"""``ingest`` and ``ingest backfill`` on one and two Dask workers, on the same files, in one run.

    python benchmarks/backfill.py 2000000 [--files 8] [--split-bytes 64MiB] [--file LOG] [--json out.json]

The log of N lines (benchmarks/generate.py, seeded) is cut into ``--files`` files, the set
a backfill reads. Each step ingests all of them into a fresh local store, as a separate
process, page cache warm:

1. ``ingest FILES`` (one machine, its own worker processes: the CLI's choice of jobs);
2. ``ingest backfill FILES --cluster local --workers 1`` (a Dask LocalCluster);
3. the same with ``--workers 2``.

Besides lines/s and peak memory (PSS of the process tree, Dask's workers included), it
prints what the scaling model in the README needs: the input and store bytes per line, a
worker's rate from the task times in the backfill manifest, the time outside the tasks
(planning, scheduling, the commit step), and a plain read of the files for the read rate.
Not a timed test: the machine is shared and noisy, so ratios within one run are what count.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import log_file, measure, warm_page_cache


def split_files(log: Path, files: int, into: Path) -> list[Path]:
    """The log cut into ``files`` files of whole lines, about the same size each."""
    into.mkdir(parents=True, exist_ok=True)
    size = log.stat().st_size
    paths = []
    with open(log, "rb") as src:
        for i in range(files):
            path = into / f"access-{i:02d}.jsonl"
            target = size * (i + 1) // files
            with open(path, "wb") as out:
                while src.tell() < target:
                    out.write(src.readline())
            paths.append(path)
    return paths


def read_rate(paths: list[Path]) -> float:
    """Bytes/s of reading the files from the page cache: the I/O floor of a worker."""
    started, total = time.perf_counter(), 0
    for path in paths:
        with open(path, "rb") as fh:
            while block := fh.read(8 << 20):
                total += len(block)
    return total / (time.perf_counter() - started)


def store_bytes(store: Path) -> int:
    return sum(p.stat().st_size for p in store.glob("*/date=*/*.parquet"))


def manifest_tasks(store: Path) -> list[dict[str, Any]]:
    tasks = []
    for path in (store / "_backfill").glob("*.jsonl"):
        tasks += [e for e in map(json.loads, path.read_text().splitlines()) if "task" in e]
    return tasks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("lines", type=int)
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--split-bytes", default="64MiB")
    parser.add_argument("--file", type=Path, help="cut this log instead of a generated one")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    log = log_file(args.lines, args.file)
    work = Path(tempfile.mkdtemp(prefix="bench-backfill-"))
    py = sys.executable
    results: dict[str, dict[str, Any]] = {}
    try:
        paths = split_files(log, args.files, work / "logs")
        total_bytes = sum(p.stat().st_size for p in paths)
        for path in paths:
            warm_page_cache(path)
        files = [str(p) for p in paths]
        backfill = [py, "-m", "ingest", "backfill", *files, "--cluster", "local", "--workers"]
        steps = {
            "ingest": [py, "-m", "ingest", *files],
            "backfill_1_worker": [*backfill, "1"],
            "backfill_2_workers": [*backfill, "2"],
        }
        for name, cmd in steps.items():
            store = work / f"store-{name}"
            before, load_before = os.times(), os.getloadavg()[0]
            step = measure([*cmd, "--store", str(store), "--json", "-q"] + (
                ["--split-bytes", args.split_bytes] if "backfill" in name else []))  # fmt: skip
            after = os.times()
            # CPU of the whole tree (Dask's worker processes are reaped by the client, so
            # they count): lines per CPU-second hardly depend on what else the machine runs.
            step["cpu_s"] = sum(after[2:4]) - sum(before[2:4])
            # the machine's 1-minute load average at the start and end: how shared the cores were
            step["load"] = [round(load_before, 1), round(os.getloadavg()[0], 1)]
            summary = json.loads(step.pop("stdout"))
            result = {**step, "lines": summary["lines_read"], "records": summary["records_written"],
                      "store_bytes": store_bytes(store)}  # fmt: skip
            result["lines_per_s"] = result["lines"] / result["seconds"]
            result["lines_per_cpu_s"] = result["lines"] / result["cpu_s"]
            tasks = manifest_tasks(store)
            if tasks:
                workers = int(cmd[-1])
                task_seconds = sum(t["seconds"] for t in tasks)
                result["tasks"] = len(tasks)
                result["task_seconds"] = task_seconds
                result["worker_lines_per_s"] = result["lines"] / task_seconds  # one worker, one core
                # CPU of the tasks' threads alone: r of the README's model, on an idle core
                result["task_cpu_s"] = sum(t.get("cpu_seconds", 0.0) for t in tasks)
                result["worker_lines_per_cpu_s"] = result["lines"] / max(result["task_cpu_s"], 1e-9)
                result["outside_tasks_s"] = result["seconds"] - task_seconds / workers
            results[name] = result
            shutil.rmtree(store, ignore_errors=True)
        rate = read_rate(paths)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    lines = results["ingest"]["lines"]
    report = {
        "lines": lines,
        "files": args.files,
        "input_bytes": total_bytes,
        "input_bytes_per_line": total_bytes / lines,
        "store_bytes_per_line": results["ingest"]["store_bytes"] / lines,
        "read_bytes_per_s": rate,
        "cpus": os.cpu_count(),
        "steps": results,
    }
    print(f"{lines:,} lines in {args.files} files, {total_bytes / 2**20:,.0f} MB "
          f"({total_bytes / lines:,.0f} B/line in, {report['store_bytes_per_line']:,.0f} B/line stored), "
          f"{os.cpu_count()} CPUs; reading them: {rate / 2**20:,.0f} MB/s")  # fmt: skip
    print(f"{'step':20} {'seconds':>8} {'lines/s':>10} {'CPU s':>7} {'l/CPU-s':>8} {'peak PSS':>9} "
          f"{'tasks':>6} {'worker l/s':>11} {'task l/CPU-s':>13} {'outside tasks':>14} "
          f"{'load':>9}")  # fmt: skip
    for name, r in results.items():
        extra = (f"{r['tasks']:6} {r['worker_lines_per_s']:11,.0f} {r['worker_lines_per_cpu_s']:13,.0f} "
                 f"{r['outside_tasks_s']:13.1f}s"
                 if "tasks" in r else f"{'-':>6} {'-':>11} {'-':>13} {'-':>14}")  # fmt: skip
        print(f"{name:20} {r['seconds']:8.1f} {r['lines_per_s']:10,.0f} {r['cpu_s']:7.1f} "
              f"{r['lines_per_cpu_s']:8,.0f} {r['peak_pss_mb']:7.0f}MB {extra} "
              f"{r['load'][0]:4.1f}-{r['load'][1]:<4.1f}")  # fmt: skip
    one, two = results["backfill_1_worker"], results["backfill_2_workers"]
    print(
        f"two workers / one: {two['lines_per_s'] / one['lines_per_s']:.2f}x; "
        f"backfill on two / ingest: {two['lines_per_s'] / results['ingest']['lines_per_s']:.2f}x"
    )
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
