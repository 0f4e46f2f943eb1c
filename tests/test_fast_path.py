"""Parity: the fast path (ingest/transform/fast.py) and the general path give the same store.

The same logs go through the real CLI twice, with ``RUBRIX_INGEST_FAST_PATH=0`` and
without, into two stores: the sample logs, a generated log like the benchmark's, and logs
of mutated lines (tests/edge_logs.py: odd types, booleans as offsets, huge numbers,
non-ASCII, whitespace of every kind, rejects of every reason). Every dataset's rows
(sorted by id, every column), its ``_dataset.json``, the rejects file and the summary must
be equal. In process, larger mutated logs are compared table by table, and the fast path
must have taken most ordinary lines (else the comparison would prove nothing).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import sys
import types
from pathlib import Path

import pyarrow.dataset as ds
import pytest

from ingest.sources.read import LineChunks, Source
from ingest.transform import fast
from ingest.transform.routing import Route
from ingest.transform.stage import Transformer, TransformSpec
from tests import format_samples as samples
from tests.conftest import SAMPLE_LOGS, Ingest, write_log
from tests.edge_logs import mutated_lines

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from generate import generate

CUSTOM_MAPPER = """
def sentiment(inputs, outputs):
    return {"inputs": {"text": inputs}, "prediction": {"labels": [
        {"class": l, "score": s} for l, s in zip(outputs["labels"], outputs["scores"])]}}
"""

CONFIG = """
[endpoints."/spacy/"]
dataset = "ner"
mapper = "token_classification"
metadata = ["method", "client", "request_id"]
tags = { model = "spacy" }

[endpoints."/transformers/"]
mapper = "mymappers:sentiment"

[endpoints."/translate/"]
mapper = "text2text"
workspace = "team"
metadata = ["client"]

[endpoints."/other/"]
mapper = "text_classification"
"""


def _write(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def _store_contents(store: Path) -> dict:
    """Everything a reader of the store sees: per dataset its metadata and its rows."""
    contents = {}
    for meta in sorted(store.glob("*/_dataset.json")):
        table = ds.dataset(meta.parent, format="parquet", partitioning="hive").to_table()
        rows = sorted(table.to_pylist(), key=lambda r: (r["id"], r["source_file"], r["source_line"]))
        # and the part files themselves, byte for byte (their names hold a time and a uuid)
        files = sorted(
            (part.parent.name, hashlib.blake2b(part.read_bytes()).hexdigest())
            for part in meta.parent.glob("date=*/part-*.parquet")
        )
        contents[meta.parent.name] = {"meta": json.loads(meta.read_text()), "rows": rows, "files": files}
    return contents


def _rejects(store: Path) -> list[str]:
    return [line for f in sorted((store / "_rejects").glob("*.jsonl")) for line in f.read_text().splitlines()]


def _both_paths(ingest: Ingest, *args: str) -> tuple[dict, dict]:
    """The summary and store of one run with the general path, and of one with the fast path."""
    runs = {}
    for name, env in (("general", {"RUBRIX_INGEST_FAST_PATH": "0"}), ("fast", {})):
        store = ingest.cwd / f"store-{name}"
        summary = ingest.json(*args, "--store", str(store), env=env)
        for key in ("seconds", "rejects_file", "target"):
            summary.pop(key)
        runs[name] = {"summary": summary, "store": _store_contents(store), "rejects": _rejects(store)}
    return runs["general"], runs["fast"]


def _assert_same(general: dict, fast: dict) -> None:
    assert fast["summary"] == general["summary"]
    assert fast["rejects"] == general["rejects"]
    assert fast["store"].keys() == general["store"].keys()
    for dataset, expected in general["store"].items():
        got = fast["store"][dataset]
        assert got["meta"] == expected["meta"]
        assert got["files"] == expected["files"], dataset
        assert len(got["rows"]) == len(expected["rows"]), dataset
        for mine, theirs in zip(got["rows"], expected["rows"], strict=True):
            assert mine == theirs


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_generated_and_sample_logs_give_the_same_store(tmp_path: Path, ingest: Ingest, jobs: str):
    log = generate(5000, tmp_path / "generated.jsonl", days=4)
    general, fast = _both_paths(ingest, str(log), str(SAMPLE_LOGS), "--jobs", jobs)
    assert general["summary"]["records_written"] > 20_000
    _assert_same(general, fast)


@pytest.mark.parametrize("seed", [1, 2])
def test_mutated_logs_give_the_same_store_rejects_and_summary(tmp_path: Path, ingest: Ingest, seed: int):
    log = _write(tmp_path / "edge.jsonl", mutated_lines(3000, seed))
    general, fast = _both_paths(ingest, str(log), "--jobs", "1")
    assert general["summary"]["rejected"] > 300 and general["summary"]["records_written"] > 2000
    _assert_same(general, fast)


def test_configured_mappers_metadata_and_custom_mappers_give_the_same_store(tmp_path: Path, ingest: Ingest):
    (ingest.cwd / "mymappers.py").write_text(CUSTOM_MAPPER)
    (ingest.cwd / "ingest.toml").write_text(CONFIG)
    log = _write(tmp_path / "edge.jsonl", mutated_lines(3000, 3))
    general, fast = _both_paths(ingest, str(log), "--config", "ingest.toml", "--jobs", "1")
    assert {"ner", "monitoring_transformers", "monitoring_translate"} <= general["store"].keys()
    _assert_same(general, fast)


def test_other_log_formats_give_the_same_store(ingest: Ingest):
    """Profiles (SageMaker, KServe, BentoML, structlog, loguru) map their pairs through the
    same ``_map_line``, so their records may take the fast path too."""
    samples.write_sagemaker(ingest.cwd / "capture")
    samples.write_bentoml(ingest.cwd)
    write_log(ingest.cwd / "events.jsonl", samples.kserve_lines())
    write_log(ingest.cwd / "app.log", samples.structlog_lines())
    write_log(ingest.cwd / "loguru.jsonl", samples.loguru_lines())
    inputs = ("capture/", "monitoring/", "events.jsonl", "app.log", "loguru.jsonl")
    general, fast = _both_paths(ingest, *inputs, "--jobs", "1")
    assert general["summary"]["records_written"] >= 15
    _assert_same(general, fast)


def _transform(path: Path, fast: bool, routes: dict[str, Route] | None = None) -> tuple[list, int]:
    transformer = Transformer(TransformSpec(routes=routes or {}, selected=None))
    transformer.fast = fast
    results = [
        transformer.process(chunk) for chunk in LineChunks(Source(path.name, path), chunk_bytes=64 << 10)
    ]
    flat = [
        (
            r.lines,
            r.end_offset,
            r.rejects,
            r.counts,
            [
                (b.route, b.task, b.candidate, b.evidence, b.multi_label, b.table.schema, b.table.to_pylist())
                for b in r.batches
            ],
        )
        for r in results
    ]
    return flat, transformer.fast_lines


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_mutated_lines_in_process_chunk_by_chunk(tmp_path: Path, seed: int):
    log = _write(tmp_path / "edge.jsonl", mutated_lines(8000, seed, share=0.8))
    general, none = _transform(log, fast=False)
    through_fast, taken = _transform(log, fast=True)
    assert none == 0
    assert through_fast == general
    # Most lines are mutated, yet the fast path must still have had real work to compare.
    assert 1500 < taken < 7000


def test_the_fast_path_takes_ordinary_lines(tmp_path: Path):
    if not all(fast.current(task) for task in fast.FINGERPRINTS):
        pytest.skip("a task's fast path is off: see the fingerprint test")
    log = generate(2000, tmp_path / "generated.jsonl")
    general, _ = _transform(log, fast=False)
    through_fast, taken = _transform(log, fast=True)
    assert through_fast == general
    answered = sum(1 for line in log.read_text().splitlines() if '"status": 200' in line)
    # Entities next to punctuation, batches, non-ASCII: all handled without the general path.
    assert taken == answered


def test_each_fast_function_was_checked_against_the_general_path_of_today():
    """A change to a mapper, records.py, validate.py or the stage's _map_line turns the
    fast path of the tasks it touches off (output stays right, throughput drops by a third).
    To turn it back on: make ingest/transform/fast.py reproduce the change, run this file's
    parity tests, and record the new values that ``python -m ingest.transform.fast`` prints
    in its FINGERPRINTS."""
    stale = {task: fast.fingerprint(task) for task in fast.FINGERPRINTS if not fast.current(task)}
    assert not stale, (
        f"the fast path is off for {sorted(stale)}: its general path changed since it was checked "
        f"(now {stale}). Make ingest/transform/fast.py reproduce the change and record the new "
        "values once this file's parity tests pass; or, to leave a task on the general path for "
        "now, take its line out of fast._BY_MAPPER (correct either way, only slower)."
    )


# Bugs a fast function could have, each as (what drifts, text of ingest/transform/fast.py, the
# bug): the parity comparison must see every one of them on a mutated log, else it proves
# nothing about the fast path. Each is a drift that once happened or easily could: a boolean
# offset taken for an integer (JSON ``true`` where the general path rejects, or the ``1`` a
# compiled build wrote), a default score written as an integer, tokens from the response
# ignored, the last of equal scores taken as the top one, a span cut inside a word accepted,
# a text classification record's multi-label evidence not computed.
MUTANTS = [
    ("booleans taken as offsets", "type(start) is not int\n", "not isinstance(start, int)\n"),
    (
        "a text's default score as an integer",
        'return {"text": item, "score": 1.0}',
        'return {"text": item, "score": 1}',
    ),
    ("tokens of the response ignored", 'or outputs.get("tokens")\n', "or False\n"),
    ("the last of equal top scores", "score > top_score:", "score >= top_score:"),
    ("a span ending inside a word", "and _inside_word(text, end):", "and False:"),
    ("no multi-label evidence", "evidence = _tc.evidence(scores)", "evidence = _tc.OPEN"),
]


def _mutant(original: str, bug: str) -> types.ModuleType:
    """ingest/transform/fast.py with one bug planted, as a module of its own."""
    source = inspect.getsource(fast)
    assert source.count(original) == 1, original
    module = types.ModuleType("fast_mutant")
    exec(compile(source.replace(original, bug), fast.__file__, "exec"), module.__dict__)
    return module


def test_the_parity_comparison_catches_every_planted_bug(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    log = _write(tmp_path / "edge.jsonl", mutated_lines(4000, 21))
    general, _ = _transform(log, fast=False)
    unseen = []
    for what, original, bug in MUTANTS:
        # the stage finds fast functions through fast._BY_MAPPER (by the built-in mapper)
        monkeypatch.setattr(fast, "_BY_MAPPER", _mutant(original, bug)._BY_MAPPER)
        through_fast, taken = _transform(log, fast=True)
        assert taken > 1000, what  # the mutant ran
        if through_fast == general:
            unseen.append(what)
    monkeypatch.undo()
    assert _transform(log, fast=True)[0] == general  # and without a bug, no difference
    assert not unseen, f"the parity comparison did not see these bugs in the fast path: {unseen}"
