"""Order independence, as a property: the same lines give the same records, rejects and counts
whatever the order of the files, the chunk size (4 KB or 1 MB), the number of worker
processes (-j 1 or -j 2), or a shuffled copy of everything in one file."""

from __future__ import annotations

import itertools
import json
import tempfile
from pathlib import Path

import pandas as pd
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import Ingest
from tests.logstrategies import examples, property_lines, whole_test_timeout

CHUNK_ENV = "RUBRIX_INGEST_CHUNK_BYTES"


def outcome(ingest: Ingest, store: str, summary: dict) -> dict:
    """What a run produced, without what legitimately differs (file names, line numbers)."""
    root = ingest.cwd / store
    records = {}
    for dataset in sorted(p.parent for p in root.glob("*/_dataset.json")):
        frame = pd.read_parquet(dataset)
        for record_id, record in zip(frame["id"], frame["record"], strict=True):
            records[record_id] = (dataset.name, json.loads(record))
    rejects = []
    for path in sorted((root / "_rejects").glob("*.jsonl")):
        for line in path.read_text().split("\n")[:-1]:  # not splitlines: texts hold U+2028
            r = json.loads(line)
            rejects.append((r["raw"], r["reason"], r["record"], r["stage"], r["endpoint"]))
    by_file = summary["by_file"].values()
    return {
        "records": records,
        "rejects": sorted(rejects),
        "counts": {k: summary[k] for k in ("lines_read", "records_written", "rejected", "skipped")},
        "nul_bytes": summary["nul_bytes"],
        "endpoints": summary["endpoints"],
        "lines": {k: sum(c[k] for c in by_file) for k in ("lines", "gave_records", "skipped", "rejected")},
    }


@examples(ci=4, long=60)
@whole_test_timeout()
@given(lines=property_lines(), cuts=st.lists(st.integers(1, 159), max_size=3), data=st.data())
def test_same_lines_same_outcome_whatever_the_order_chunking_and_workers(lines, cuts, data):
    with tempfile.TemporaryDirectory() as tmp:
        ingest = Ingest(Path(tmp))
        bounds = sorted({0, len(lines), *(c for c in cuts if c < len(lines))})
        files = []
        for i, (start, end) in enumerate(itertools.pairwise(bounds)):
            path = ingest.cwd / f"part{i}.jsonl"
            path.write_bytes(b"".join(line + b"\n" for line in lines[start:end]))
            files.append(str(path))
        shuffled = ingest.cwd / "shuffled.jsonl"
        order = data.draw(st.permutations(range(len(lines))))
        shuffled.write_bytes(b"".join(lines[i] + b"\n" for i in order))

        runs = {
            "in order, 1 MB chunks, -j 1": (files, str(1 << 20), "1"),
            "reversed, 4 KB chunks, -j 2": (files[::-1], "4096", "2"),
            "shuffled copy, 4 KB chunks, -j 1": ([str(shuffled)], "4096", "1"),
        }
        results = {}
        for n, (name, (inputs, chunk, jobs)) in enumerate(runs.items()):
            store = f"store{n}"
            proc = ingest(*inputs, "--store", store, "-j", jobs, "--json", env={CHUNK_ENV: chunk})
            assert b"Traceback" not in proc.stderr
            results[name] = outcome(ingest, store, json.loads(proc.stdout))
        first, *others = results.values()
        assert first["lines"]["lines"] == first["counts"]["lines_read"] > 0
        for name, result in zip(list(results)[1:], others, strict=True):
            for key in first:
                assert result[key] == first[key], f"{key} differs for {name}"
