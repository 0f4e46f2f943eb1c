"""The ceiling of ``ingest`` with record building made free: the costs every design keeps.

    python benchmarks/ceiling.py access.jsonl [--budget 0.2]

Issue 19 asks for 0.2x parse-only on two cores. This measures, in CPU-seconds of one
process, what ingest must spend per line whatever builds its records, with the outputs
it has today (a record's JSON bytes, the analysis columns, Parquet files, worker
processes):

- ``read``: the file as chunks of whole lines (ingest/sources/read.py);
- ``parse``: ``orjson.loads`` of every line;
- ``ids``: the line's content hash (records.line_digest, blake2b);
- ``dumps``: ``orjson.dumps`` of every finished record (the dicts are rebuilt from the
  store's JSON beforehand, untimed);
- ``to_batch``: the rows, already built, turned into Arrow tables (stage._Columns._batch);
- ``pipes``: each chunk's result pickled and unpickled as it crosses a worker's pipe
  (transform/workers.py send/receive, without the pipe itself);
- ``store``: the local store fed those tables (id check, zstd Parquet, fsync).

Everything else ingest does (parse the log line's fields, route, map, validate, make the
record dicts, tokenize, columns) is what is left to build records in: the budget. With
``parse_only`` the same file's parse-only wall time measured here as benchmarks/run.py
does (best of three), the most two cores can give is ``2 * parse_only / ratio`` CPU
seconds for the whole run; the budget per record is that minus the kept costs, divided
by the records. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.run import PARSE_ONLY


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("log", type=Path)
    parser.add_argument("--budget", type=float, default=0.2, help="target ratio to parse-only (default 0.2)")
    args = parser.parse_args()

    import pandas  # noqa: F401 (as benchmarks/stages.py: pyarrow imports it at the first conversion)
    import pyarrow as pa

    from ingest.sinks.local.store import LocalStore
    from ingest.sources.read import LineChunks, Source
    from ingest.transform import stage
    from ingest.transform.records import line_digest
    from ingest.transform.stage import Transformer, TransformSpec

    pa.set_memory_pool(pa.system_memory_pool())
    cpu: dict[str, float] = {}

    # parse-only wall seconds, as benchmarks/run.py's baseline: best of three processes
    walls = []
    for _ in range(3):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", PARSE_ONLY, str(args.log)], check=True, capture_output=True)
        walls.append(time.perf_counter() - started)
    parse_only_wall = min(walls)

    started = time.process_time()
    chunks = list(LineChunks(Source(str(args.log), args.log)))
    cpu["read"] = time.process_time() - started

    lines = [raw for chunk in chunks for raw in chunk.data.split(b"\n")[:-1]]
    started = time.process_time()
    for raw in lines:
        orjson.loads(raw)
    cpu["parse"] = time.process_time() - started

    started = time.process_time()
    for raw in lines:
        line_digest(raw)
    cpu["ids"] = time.process_time() - started
    del lines

    # Untimed: the records and rows as the transform makes them today.
    transformer = Transformer(TransformSpec(routes={}, selected=None))
    results = [transformer.process(chunk) for chunk in chunks]
    del chunks
    tables = [batch.table for result in results for batch in result.batches]
    records = sum(table.num_rows for table in tables)

    dicts = [orjson.loads(text) for table in tables for text in table.column("record").to_pylist()]
    started = time.process_time()
    for record in dicts:
        orjson.dumps(record)
    cpu["dumps"] = time.process_time() - started
    del dicts

    columns = []
    for result in results:
        for batch in result.batches:
            variant = (batch.candidate, batch.evidence, batch.multi_label)
            rebuilt = stage._Columns(batch.route, batch.task, variant)
            values = {name: batch.table.column(name).to_pylist() for name in batch.table.column_names}
            values["record"] = [text.encode() for text in values["record"]]  # the transform's bytes
            rebuilt.rows = list(zip(*values.values(), strict=True))
            rebuilt.origins = batch.origins.tolist()
            columns.append(rebuilt)
    started = time.process_time()
    for rebuilt in columns:
        rebuilt._batch()
    cpu["to_batch"] = time.process_time() - started
    del columns

    started = time.process_time()
    for result in results:
        buffers: list[pickle.PickleBuffer] = []
        head = pickle.dumps(result, protocol=5, buffer_callback=buffers.append)
        pickle.loads(head, buffers=[bytes(b.raw()) for b in buffers])
    cpu["pipes"] = time.process_time() - started

    work = Path(tempfile.mkdtemp(prefix="ceiling-"))
    store = LocalStore(work / "store")
    started = time.process_time()
    for result in results:
        for batch in result.batches:
            store.add(batch)
    store.flush()
    store.close()
    cpu["store"] = time.process_time() - started
    shutil.rmtree(work, ignore_errors=True)

    kept = sum(cpu.values())
    allowed = 2 * parse_only_wall / args.budget
    report = {
        "log": str(args.log),
        "records": records,
        "parse_only_wall_s": round(parse_only_wall, 3),
        "kept_cpu_s": {k: round(v, 3) for k, v in cpu.items()},
        "kept_total_cpu_s": round(kept, 3),
        "ceiling_ratio_two_cores": round(2 * parse_only_wall / kept, 3),
        f"cpu_s_allowed_at_{args.budget}x": round(allowed, 3),
        "left_for_building_records_cpu_s": round(allowed - kept, 3),
        "left_per_record_us": round((allowed - kept) / records * 1e6, 2),
    }
    print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
