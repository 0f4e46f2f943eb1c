"""CPU-seconds per stage of ``ingest`` in one process: where a line's time goes.

    python benchmarks/stages.py access.jsonl [--general] [--store DIR]

Wall times on a shared machine are noise; the CPU time of one process is not (much). This
runs the stages of a local-store ingest one after the other, in this process, each timed
with ``time.process_time``:

1. ``read``: the file as chunks of whole lines (ingest/sources/read.py);
2. ``parse``: ``orjson.loads`` of every line (not a stage of its own in ingest: the
   transform parses again; here for scale, as parse-only is in benchmarks/run.py);
3. ``transform``: parse, route, map, validate, ids, record JSON and analysis columns
   (``Transformer.process``), of which ``to_batch`` (rows to Arrow tables) is shown apart;
4. ``store``: the local store fed the transform's batches (id check, Parquet, fsync), into
   a fresh directory.

``--general`` turns the transform's fast path off (RUBRIX_INGEST_FAST_PATH=0), to compare
the two on the same lines. Prints one JSON object of seconds per stage.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("log", type=Path)
    parser.add_argument("--general", action="store_true", help="the general path only (no fast path)")
    parser.add_argument("--store", type=Path, help="store directory (default: a temporary one)")
    args = parser.parse_args()
    if args.general:
        os.environ["RUBRIX_INGEST_FAST_PATH"] = "0"

    import pandas  # noqa: F401 (pyarrow imports it at the first conversion: ingest does it before forking)
    import pyarrow as pa

    from ingest.sinks.local.store import LocalStore
    from ingest.sources.read import LineChunks, Source
    from ingest.transform import stage
    from ingest.transform.stage import Transformer, TransformSpec

    pa.set_memory_pool(pa.system_memory_pool())  # as ingest/run.py does
    timings: dict[str, float] = {}

    started = time.process_time()
    chunks = list(LineChunks(Source(str(args.log), args.log)))
    timings["read"] = time.process_time() - started

    started = time.process_time()
    lines = 0
    for chunk in chunks:
        for raw in chunk.data.split(b"\n")[:-1]:
            orjson.loads(raw)
            lines += 1
    timings["parse"] = time.process_time() - started

    to_batch = stage._Columns.to_batch
    in_batches = 0.0

    def timed_to_batch(self, *a, **k):  # type: ignore[no-untyped-def]
        nonlocal in_batches
        t = time.process_time()
        try:
            return to_batch(self, *a, **k)
        finally:
            in_batches += time.process_time() - t

    stage._Columns.to_batch = timed_to_batch  # type: ignore[method-assign]
    transformer = Transformer(TransformSpec(routes={}, selected=None))
    started = time.process_time()
    results = [transformer.process(chunk) for chunk in chunks]
    timings["transform"] = time.process_time() - started
    timings["of which to_batch"] = in_batches
    del chunks

    work = args.store or Path(tempfile.mkdtemp(prefix="stages-"))
    store = LocalStore(work / "store")
    started = time.process_time()
    records = 0
    for result in results:
        for batch in result.batches:
            records += batch.table.num_rows
            store.add(batch)
    delivery = store.flush()
    store.close()
    timings["store"] = time.process_time() - started
    if args.store is None:
        shutil.rmtree(work, ignore_errors=True)
    timings["total (without parse)"] = timings["read"] + timings["transform"] + timings["store"]
    report = {
        "lines": lines,
        "records": records,
        "written": sum(delivery.written.values()),
        "fast_path": not args.general,
        "cpu_seconds": {k: round(v, 3) for k, v in timings.items()},
    }
    print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
