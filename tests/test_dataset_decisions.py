"""Dataset-level decisions, made once (issue 16): task and multi_label per dataset.

Whole runs of the real CLI into the local store and the test server, and the transform
stage with the parent's decisions in-process over different chunkings and line orders:
the records written must not depend on where a line falls.
"""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path

import httpx
import pytest

from ingest.run import _before_waiting
from ingest.sources.read import Chunk
from ingest.transform.datasets import Decisions
from ingest.transform.stage import Transformer, TransformSpec
from tests.conftest import Ingest, RubrixServer, entry, write_log


def ner(text: str, *spans: tuple[str, int, int]) -> dict:
    return {"text": text, "entities": [{"label": label, "start": s, "end": e} for label, s, e in spans]}


def hf_line(path: str, text: str, response: object, **fields: object) -> dict:
    """An Inference API style exchange: one input, the pipeline's answer for it."""
    return entry(path=path, request={"inputs": text}, response=response, **fields)


EMPTY_1 = hf_line("/ner/", "Nothing to see here", [])
EMPTY_2 = hf_line("/ner/", "Still nothing", [], ts="2026-11-24T10:00:05Z")
FOUND = hf_line(
    "/ner/",
    "I live in Lisbon",
    [{"entity_group": "LOC", "score": 0.99, "word": "Lisbon", "start": 10, "end": 16}],
    ts="2026-11-24T10:00:02Z",
)


def stored(ingest: Ingest, dataset: str) -> dict[str, dict]:
    return {r["id"]: r for r in ingest.records(dataset)}


# -- the task ----------------------------------------------------------------------------------


@pytest.mark.parametrize("order", [(0, 1, 2), (1, 0, 2), (2, 0, 1)])
def test_empty_outputs_take_the_task_of_their_dataset_wherever_they_fall(tmp_path: Path, order):
    lines = [EMPTY_1, FOUND, EMPTY_2]
    ingest = Ingest(tmp_path)
    summary = ingest.json(str(write_log(tmp_path / "a.jsonl", [lines[i] for i in order])))
    assert summary["records_written"] == 3 and summary["rejected"] == 0
    records = ingest.records("monitoring_ner")
    assert {r["text"] for r in records} == {"Nothing to see here", "I live in Lisbon", "Still nothing"}
    assert all("tokens" in r for r in records)  # TokenClassification, all three
    assert json.loads((ingest.store / "monitoring_ner" / "_dataset.json").read_text())["task"] == (
        "TokenClassification"
    )


def test_only_empty_outputs_wait_for_config_then_are_rejected_with_the_key(tmp_path: Path, ingest: Ingest):
    log = write_log(tmp_path / "a.jsonl", [EMPTY_1, EMPTY_2])
    summary = ingest.json(str(log))
    assert summary["records_written"] == 0 and summary["rejected"] == 2
    reasons = {r["reason"] for r in ingest.rejects()}
    (reason,) = reasons
    assert "any task could give" in reason and 'set task in [endpoints."/ner/"]' in reason
    config = tmp_path / "ingest.toml"
    config.write_text('[endpoints."/ner/"]\ntask = "TokenClassification"\n')
    summary = ingest.json(str(log), "--config", str(config), "--from-start")
    assert summary["records_written"] == 2
    assert all(r["tokens"] for r in ingest.records("monitoring_ner"))


def test_the_dataset_in_the_store_decides_the_task_of_later_empty_outputs(tmp_path: Path, ingest: Ingest):
    ingest.json(str(write_log(tmp_path / "a.jsonl", [FOUND])))
    summary = ingest.json(str(write_log(tmp_path / "b.jsonl", [EMPTY_1])))
    assert summary["records_written"] == 1
    assert any(r["text"] == "Nothing to see here" and "tokens" in r for r in ingest.records("monitoring_ner"))


def test_a_preflight_and_an_empty_body_decide_nothing(tmp_path: Path, ingest: Ingest):
    text = "I live in Paris."
    log = write_log(
        tmp_path / "a.jsonl",
        [
            entry(path="/spacy/", method="OPTIONS", request="", response="OK"),
            entry(path="/spacy/", method="POST", request="", response="OK"),
            entry(path="/spacy/", request=[text], response=[ner(text, ("GPE", 10, 15))]),
        ],
    )
    summary = ingest.json(str(log))
    assert summary["skipped"] == {"options_request": 1, "empty_request": 1}
    (record,) = ingest.records("monitoring_spacy")
    assert record["prediction"]["entities"][0]["start"] == 10 and record["tokens"][-1] == "."


def test_a_record_of_another_task_is_rejected_naming_the_config_key(tmp_path: Path, ingest: Ingest):
    log = write_log(
        tmp_path / "a.jsonl",
        [FOUND, hf_line("/ner/", "hello", [{"generated_text": "hello world"}], ts="2026-11-24T10:00:09Z")],
    )
    summary = ingest.json(str(log))
    assert summary["records_written"] == 1 and summary["rejected"] == 1
    (reject,) = ingest.rejects()
    assert "holds TokenClassification records (decided by its first records in this run)" in reject["reason"]
    assert '[endpoints."/ner/"]' in reject["reason"]


def test_configured_task_maps_every_output_as_that_task(tmp_path: Path, ingest: Ingest):
    config = tmp_path / "ingest.toml"
    config.write_text('[endpoints."/ner/"]\ntask = "Text2Text"\n')
    log = write_log(tmp_path / "a.jsonl", [FOUND, EMPTY_1])
    summary = ingest.json(str(log), "--config", str(config))
    assert summary["records_written"] == 1 and summary["rejected"] == 1  # an entity list is no text
    assert "another task's output" in ingest.rejects()[0]["reason"]


def test_config_rejects_a_task_that_contradicts_the_mapper(tmp_path: Path, ingest: Ingest):
    config = tmp_path / "ingest.toml"
    config.write_text('[endpoints."/ner/"]\ntask = "Text2Text"\nmapper = "token_classification"\n')
    proc = ingest(str(write_log(tmp_path / "a.jsonl", [FOUND])), "--config", str(config), check=False)
    assert proc.returncode == 2 and b"gives TokenClassification records, not task Text2Text" in proc.stderr


# -- multi_label -------------------------------------------------------------------------------


def tc_line(text: str, scores: list[float], second: int = 0) -> dict:
    labels = ["a", "b", "c"][: len(scores)]
    return entry(
        path="/cls/",
        request=[text],
        response=[{"labels": labels, "scores": scores}],
        ts=f"2026-11-24T10:00:{second:02d}Z",
    )


def test_one_dataset_one_kind_and_rounded_softmax_is_single_label(tmp_path: Path, ingest: Ingest):
    log = write_log(
        tmp_path / "a.jsonl",
        [
            tc_line("top-1 only", [0.7], 1),  # the first record: fits single-label, which it decides
            tc_line("rounded", [0.34, 0.33, 0.34], 2),  # a softmax rounded to 2 decimals: single
            tc_line("sigmoid", [0.9, 0.8, 0.3], 3),  # multi-label in a single-label dataset
        ],
    )
    summary = ingest.json(str(log))
    assert summary["records_written"] == 2 and summary["rejected"] == 1
    records = {r["inputs"]["text"]: r for r in ingest.records("monitoring_cls")}
    assert {r["multi_label"] for r in records.values()} == {False}
    assert sum(p["score"] for p in records["rounded"]["prediction"]["labels"]) == pytest.approx(1.0)
    (reject,) = ingest.rejects()
    assert 'set multi_label in [endpoints."/cls/"] = true' in reject["reason"]
    assert "decided by its first records in this run" in reject["reason"]
    meta = json.loads((ingest.store / "monitoring_cls" / "_dataset.json").read_text())
    assert meta["multi_label"] is False


def test_multi_label_decided_by_the_first_record_or_config(tmp_path: Path, ingest: Ingest):
    lines = [
        tc_line("sigmoid", [0.9, 0.8, 0.3], 1),
        tc_line("top-1 only", [0.7], 2),
        tc_line("soft", [0.2, 0.8], 3),
    ]
    log = write_log(tmp_path / "a.jsonl", lines)
    summary = ingest.json(str(log))
    assert summary["records_written"] == 3  # the others fit a multi-label dataset too
    assert {r["multi_label"] for r in ingest.records("monitoring_cls")} == {True}
    other = Ingest(tmp_path / "other")
    (tmp_path / "other").mkdir()
    config = tmp_path / "ingest.toml"
    config.write_text('[endpoints."/cls/"]\nmulti_label = false\n')
    summary = other.json(str(log), "--config", str(config))
    assert summary["records_written"] == 2 and summary["rejected"] == 1
    assert "set multi_label = true" in other.rejects()[0]["reason"]


def test_the_store_keeps_the_kind_for_later_runs(tmp_path: Path, ingest: Ingest):
    ingest.json(str(write_log(tmp_path / "a.jsonl", [tc_line("sigmoid", [0.9, 0.8, 0.3], 1)])))
    summary = ingest.json(str(write_log(tmp_path / "b.jsonl", [tc_line("soft", [0.2, 0.8], 2)])))
    assert summary["records_written"] == 1
    assert {r["multi_label"] for r in ingest.records("monitoring_cls")} == {True}
    summary = ingest.json(str(write_log(tmp_path / "c.jsonl", [tc_line("top-1 only", [0.7], 3)])))
    assert summary["records_written"] == 1  # known from the store: no waiting, no default


# -- the test server's rule and the server as the target -------------------------------------


def bulk(server: RubrixServer, records: list[dict]) -> httpx.Response:
    return httpx.post(
        f"{server.url}/api/datasets/monitoring_cls/TextClassification:bulk",
        headers={"X-Argilla-Api-Key": server.api_key},
        json={"records": records},
    )


def tc_record(i: int, multi: bool) -> dict:
    scores = [0.9, 0.8] if multi else [0.4, 0.6]
    return {
        "id": f"r{i}",
        "inputs": {"text": "x"},
        "multi_label": multi,
        "prediction": {"labels": [{"class": c, "score": s} for c, s in zip("ab", scores, strict=True)]},
    }


def test_server_refuses_records_whose_multi_label_differs_from_the_dataset(server: RubrixServer):
    assert bulk(server, [tc_record(1, False), tc_record(2, True)]).status_code == 422
    assert bulk(server, [tc_record(1, True)]).status_code == 200
    refused = bulk(server, [tc_record(2, False)])
    assert refused.status_code == 400 and "Can't mix multi-label and single-label" in refused.text
    assert bulk(server, [tc_record(3, True)]).status_code == 200


def test_the_server_dataset_decides_the_kind(tmp_path: Path, ingest: Ingest, server: RubrixServer):
    assert bulk(server, [tc_record(1, True)]).status_code == 200
    log = write_log(tmp_path / "a.jsonl", [tc_line("soft", [0.25, 0.75], 1), tc_line("top", [0.7], 2)])
    summary = ingest.json(str(log), env=server.env())
    assert summary["records_written"] == 2 and summary["rejected"] == 0
    assert {r["multi_label"] for r in server.records("monitoring_cls")} == {True}


# -- offsets rules, end to end ------------------------------------------------------------------


def test_subword_spans_need_the_config_key(tmp_path: Path, ingest: Ingest):
    text = "Visit the Zürichsee"
    log = write_log(
        tmp_path / "a.jsonl", [entry(path="/ner/", request=[text], response=[ner(text, ("LOC", 10, 16))])]
    )
    summary = ingest.json(str(log))
    assert summary["rejected"] == 1 and "set subword_spans = true" in ingest.rejects()[0]["reason"]
    config = tmp_path / "ingest.toml"
    config.write_text('[endpoints."/ner/"]\nsubword_spans = true\n')
    summary = ingest.json(str(log), "--config", str(config), "--from-start")
    assert summary["records_written"] == 1


def test_utf16_offsets_in_a_log_are_stored_on_the_right_characters(tmp_path: Path, ingest: Ingest):
    text = "😀 I moved to Lisbon today"
    start = text.index("Lisbon") + 1  # UTF-16: the emoji counts two
    log = write_log(
        tmp_path / "a.jsonl",
        [entry(path="/ner/", request=[text], response=[ner(text, ("LOC", start, start + 6))])],
    )
    ingest.json(str(log))
    (record,) = ingest.records("monitoring_ner")
    entity = record["prediction"]["entities"][0]
    assert text[entity["start"] : entity["end"]] == "Lisbon"


# -- chunking and order never change what is written --------------------------------------------


def _run_in_process(lines: list[bytes], cuts: list[int]) -> tuple[dict[str, str], set[tuple[int, str]]]:
    """The transform stage over chunks cut at the given line indexes, then the parent's decisions."""
    transformer = Transformer(TransformSpec(routes={}, selected=None))
    decisions = Decisions()
    records: dict[str, str] = {}
    rejects: set[tuple[int, str]] = set()
    offset, bounds = 0, [0, *cuts, len(lines)]
    admitted = []
    for a, b in itertools.pairwise(bounds):
        if a == b:
            continue
        data = b"".join(lines[a:b])
        result = transformer.process(Chunk("log", a + 1, offset, data))
        offset += len(data)
        rejects.update((r["line"], r["reason"]) for r in result.rejects)
        admitted.append(decisions.admit(result.batches))
    admitted.append(decisions.finish())
    for out in admitted:
        rejects.update((r["line"], r["reason"]) for r in out.rejects)
        for batch in out.batches:
            for rid, record in zip(
                batch.table["id"].to_pylist(), batch.table["record"].to_pylist(), strict=True
            ):
                assert rid not in records
                records[rid] = record
    return records, rejects


def test_records_do_not_depend_on_chunking_or_where_undecided_lines_fall():
    """Lines that cannot tell the task (empty outputs) and one-label scores (single-label,
    as the rounded softmax that decides) go anywhere, chunks are cut anywhere: the same
    records and rejects. The lines that decide keep their order (the first of them decides,
    by design: config is the way to fix a dataset's kind)."""
    deciding = [
        FOUND,
        tc_line("rounded", [0.34, 0.33, 0.34], 2),  # decides single-label
        tc_line("sigmoid", [0.9, 0.8, 0.3], 3),  # then rejected, wherever it falls after
    ]
    undecided = [
        EMPTY_1,
        EMPTY_2,
        tc_line("top-1 only", [0.7], 1),
        tc_line("top-1 again", [0.6], 4),
        entry(path="/only-empty/", request={"inputs": "x"}, response=[]),
    ]
    rng = random.Random(16)
    outcomes = set()
    for trial in range(16):
        lines = list(deciding)
        for line in undecided:
            lines.insert(rng.randint(0, len(lines)) if trial else len(lines), line)
        raw = [json.dumps(line).encode() + b"\n" for line in lines]
        cuts = sorted(rng.sample(range(1, len(raw)), rng.randint(0, len(raw) - 1))) if trial % 4 else []
        records, rejects = _run_in_process(raw, cuts)
        by_line = {i + 1: json.dumps(line, sort_keys=True) for i, line in enumerate(lines)}
        outcomes.add((frozenset(records.items()), frozenset((by_line[n], reason) for n, reason in rejects)))
    (only,) = outcomes  # one outcome for every placement and chunking
    records, rejects = only
    assert len(records) == 6  # NER: 3; classification: rounded and the two top-1s, all single-label
    assert {r for _, r in rejects} == {
        next(r for _, r in rejects if "multi_label" in r),
        next(r for _, r in rejects if "any task could give" in r),
    }


def test_checkpoints_stay_before_waiting_records():
    progress = {"fp": (1000, 40, "log")}
    assert _before_waiting(progress, {"log": (200, 9)}) == {"fp": (200, 9, "log")}
    assert _before_waiting(progress, {}) == progress
    lines = [json.dumps(EMPTY_1).encode() + b"\n"]
    transformer = Transformer(TransformSpec(routes={}, selected=None))
    decisions = Decisions()
    result = transformer.process(Chunk("log", 7, 300, b"".join(lines)))
    assert decisions.admit(result.batches).batches == []
    assert decisions.floors() == {"log": (300, 7)}
    decisions.finish()
    assert decisions.floors() == {}


def test_an_empty_output_with_no_reading_in_its_datasets_task_is_rejected(tmp_path: Path, ingest: Ingest):
    blank = hf_line("/ner/", "   ", [], ts="2026-11-24T10:00:07Z")  # a text classification or text2text
    for lines in ([FOUND, blank], [blank, FOUND]):  # the task known before it, or decided after
        store = tmp_path / f"store-{len(list(tmp_path.iterdir()))}"
        summary = ingest.json(str(write_log(tmp_path / "a.jsonl", lines)), "--store", str(store))
        assert summary["records_written"] == 1 and summary["rejected"] == 1
        (reject,) = [
            json.loads(x) for p in (store / "_rejects").glob("*.jsonl") for x in p.read_text().splitlines()
        ]
        assert reject["reason"] == "the empty output does not make a valid TokenClassification record"
