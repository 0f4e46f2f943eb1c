"""The local store's id check, on real Parquet files: exact however the writes fall."""

from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter
from pathlib import Path

from ingest.model import Delivery
from ingest.sinks.local.known_ids import KnownIds
from ingest.sinks.local.store import LocalStore, list_datasets, read_dataset
from ingest.sources.read import LineChunks, Source
from ingest.transform.stage import Transformer, TransformSpec
from tests.conftest import SAMPLE_LOGS, Ingest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from generate import generate


def _deliver(store: LocalStore, chunks: list, transformer: Transformer) -> Counter[str]:
    totals: Counter[str] = Counter()
    for chunk in chunks:
        for batch in transformer.process(chunk).batches:
            delivery: Delivery = store.add(batch)
            totals["written"] += sum(delivery.written.values())
            totals["already_stored"] += sum(delivery.already_stored.values())
    delivery = store.flush()
    totals["written"] += sum(delivery.written.values())
    totals["already_stored"] += sum(delivery.already_stored.values())
    return totals


def test_id_check_is_exact_across_writes_days_and_evictions(tmp_path: Path):
    log = generate(400, tmp_path / "access.jsonl", days=6)  # about 1,600 records over 6 days
    chunks = list(LineChunks(Source(log.name, log), chunk_bytes=32 << 10))
    assert len(chunks) > 10
    transformer = Transformer(TransformSpec(routes={}, selected=None))
    root = tmp_path / "store"

    # Every batch is its own write, only two days' ids stay in memory, and only three part
    # files stay open (6 days x 3 datasets).
    store = LocalStore(root, flush_bytes=1, known_ids=KnownIds(max_partitions=2), max_open_parts=3)
    first = _deliver(store, chunks, transformer)
    assert first["already_stored"] == 0 and first["written"] > 1500

    # The same lines again in the same run, last first: every day is evicted and read back.
    again = _deliver(store, chunks[::-1], transformer)
    assert again == {"written": 0, "already_stored": first["written"]}

    # A new run with a log holding the first half twice and 50 new lines after it.
    more = generate(500, tmp_path / "more.jsonl", days=6)
    doubled = tmp_path / "doubled.jsonl"
    new_lines = b"".join(more.read_bytes().splitlines(keepends=True)[-50:])
    doubled.write_bytes(log.read_bytes() + log.read_bytes()[: log.stat().st_size // 2] + new_lines)
    doubled_chunks = list(LineChunks(Source(doubled.name, doubled), chunk_bytes=32 << 10))
    third = _deliver(LocalStore(root, flush_bytes=1), doubled_chunks, transformer)
    assert third["written"] > 0  # the lines from more.jsonl that log does not share

    ids = [
        i for dataset in list_datasets(root) for i in read_dataset(root, dataset, ["id"])["id"].to_pylist()
    ]
    assert len(ids) == len(set(ids)) == first["written"] + third["written"]
    assert not list(root.rglob(".*.tmp"))


def test_spills_share_one_file_per_day_until_the_commit(tmp_path: Path):
    log = generate(400, tmp_path / "access.jsonl", days=6)
    transformer = Transformer(TransformSpec(routes={}, selected=None))
    chunks = list(LineChunks(Source(log.name, log), chunk_bytes=32 << 10))
    records = sum(b.table.num_rows for c in chunks for b in transformer.process(c).batches)
    # The first half of the log again, within the same commit: its ids are only in files
    # still open when the repeat comes.
    lines = log.read_bytes().splitlines(keepends=True)
    doubled = tmp_path / "doubled.jsonl"
    doubled.write_bytes(b"".join(lines + lines[: len(lines) // 2]))
    chunks = list(LineChunks(Source(doubled.name, doubled), chunk_bytes=32 << 10))

    root = tmp_path / "committed"
    # Room for every day's hashes: the repeats must be caught by what each write added.
    store = LocalStore(root, flush_bytes=1, known_ids=KnownIds(max_partitions=64))
    delivered = _deliver(store, chunks, transformer)
    assert delivered["written"] == records and delivered["already_stored"] > records // 3
    days = list(root.glob("*/date=*"))
    assert len(days) == 6 * 3
    assert all(len(list(day.glob("part-*.parquet"))) == 1 for day in days)  # one per day, not per spill
    ids = [i for d in list_datasets(root) for i in read_dataset(root, d, ["id"])["id"].to_pylist()]
    assert len(ids) == len(set(ids)) == records

    # A run that fails before its commit leaves no part file, and no temporary one either.
    failed = LocalStore(tmp_path / "failed", flush_bytes=1)
    for chunk in chunks[:5]:
        for batch in transformer.process(chunk).batches:
            failed.add(batch)
    assert list((tmp_path / "failed").rglob(".*.tmp"))  # spilled into open files
    failed.close()
    assert not list((tmp_path / "failed").rglob("*.parquet"))
    assert not list((tmp_path / "failed").rglob("*.tmp"))


FLAKY_MAPPER = '''
import os

from mappers import BUILTIN


def every_other_first(inputs, outputs):
    """Drops the second item of each batch while FIRST_RUN is set: answers differ on a re-read."""
    if os.environ.get("FIRST_RUN") and isinstance(inputs, str) and inputs.startswith("drop me"):
        return None
    return BUILTIN["text_classification"][0](inputs, outputs)
'''


def test_a_line_stored_in_part_is_completed_on_a_reread(ingest: Ingest):
    """The id check keys on lines, but confirms on ids: a record missing before is written."""
    (ingest.cwd / "flaky.py").write_text(FLAKY_MAPPER)
    response = [{"labels": ["A", "B"], "scores": [0.9, 0.1]}] * 2
    lines = [
        {"ts": f"2026-11-2{i}T10:00:00Z", "path": "/sentiment/", "status": 200,
         "request": [f"keep {i}", f"drop me {i}"], "response": response}
        for i in range(3)
    ]  # fmt: skip
    log = ingest.cwd / "access.jsonl"
    log.write_text("".join(json.dumps(line) + "\n" for line in lines))
    args = [str(log), "-e", "/sentiment/", "--mapper", "flaky:every_other_first"]

    first = ingest.json(*args, env={"FIRST_RUN": "1"})
    assert first["records_written"] == 3 and first["skipped"]["mapper_returned_none"] == 3
    second = ingest.json(*args, "--from-start")
    assert second["records_written"] == 3 and second["skipped"]["already_stored"] == 3
    texts = sorted(r["inputs"]["text"] for r in ingest.records("monitoring_sentiment"))
    assert texts == sorted([f"keep {i}" for i in range(3)] + [f"drop me {i}" for i in range(3)])


def test_a_run_removes_part_files_that_killed_runs_left(ingest: Ingest):
    ingest(str(SAMPLE_LOGS))
    day = next((ingest.store / "monitoring_spacy").glob("date=*"))
    stale, live = day / ".part-killed.parquet.tmp", day / ".part-being-written.parquet.tmp"
    stale.write_bytes(b"PAR1 torn")
    live.write_bytes(b"PAR1 torn")
    two_hours_ago = time.time() - 7200
    os.utime(stale, (two_hours_ago, two_hours_ago))
    ingest(str(SAMPLE_LOGS))
    assert not stale.exists()
    assert live.exists()  # it could be another run's, still being written
