"""Parquet settings for the local store, size against speed: ``python benchmarks/parquet_settings.py LOG``.

The log's batches (as the transform makes them) are written the way the store writes
them (a row group per 8 batches, the store's dictionary columns) with each compression
in turn, into memory; prints the CPU-seconds to encode (best of three) and the bytes.
Use a log of about 20k lines: every batch is held in memory.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SETTINGS: list[tuple[str, dict[str, Any]]] = [
    ("zstd (Arrow's level 1, the store's)", {"compression": "zstd"}),
    ("zstd level 3", {"compression": "zstd", "compression_level": 3}),
    ("zstd level 9", {"compression": "zstd", "compression_level": 9}),
    ("lz4", {"compression": "lz4"}),
    ("snappy", {"compression": "snappy"}),
    ("gzip", {"compression": "gzip"}),
    ("none", {"compression": "none"}),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("log", type=Path)
    args = parser.parse_args()

    import pandas  # noqa: F401 (as ingest imports it before the first conversion)
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ingest.model import SCHEMA
    from ingest.sinks.local.store import DICTIONARY_COLUMNS
    from ingest.sources.read import LineChunks, Source
    from ingest.transform.stage import Transformer, TransformSpec

    transformer = Transformer(TransformSpec(routes={}, selected=None))
    chunks = LineChunks(Source(str(args.log), args.log))
    tables = [b.table for chunk in chunks for b in transformer.process(chunk).batches]
    records = sum(t.num_rows for t in tables)
    print(f"{records:,} records, {sum(t.nbytes for t in tables) / 2**20:.0f} MB in Arrow")
    for name, options in SETTINGS:
        best = float("inf")
        for _ in range(3):
            sink = io.BytesIO()
            started = time.process_time()
            with pq.ParquetWriter(sink, SCHEMA, use_dictionary=DICTIONARY_COLUMNS, **options) as writer:
                for i in range(0, len(tables), 8):  # a spill: several batches, one row group
                    writer.write_table(pa.concat_tables(tables[i : i + 8]))
            best = min(best, time.process_time() - started)
        print(f"{name:36s} {best:5.2f} CPU-s {len(sink.getvalue()) / 2**20:6.1f} MB")


if __name__ == "__main__":
    main()
