"""End to end through the real CLI: real log files in, a real Parquet store out."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import SAMPLE_LOGS, Ingest, entry, write_log

TC_RESPONSE = [{"labels": ["NEGATIVE", "POSITIVE"], "scores": [0.1, 0.9]}]


def sample_lines() -> list[tuple[str, int, str]]:
    found = []
    for path in sorted(SAMPLE_LOGS.glob("access.jsonl*")):
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as fh:
            found.extend((str(path), n, line) for n, line in enumerate(fh, 1))
    return found


def test_sample_logs_every_line_accounted_for(ingest: Ingest):
    summary = ingest.json(str(SAMPLE_LOGS))
    lines = sample_lines()
    assert summary["lines_read"] == len(lines)
    eps = summary["endpoints"]
    assert {eps[e]["dataset"] for e in ("/spacy/", "/transformers/", "/translate/")} == {
        "monitoring_spacy",
        "monitoring_transformers",
        "monitoring_translate",
    }
    assert summary["skipped"] == {"error_status": 1, "non_json_body": 1}
    assert summary["rejected"] == 2
    # each line is written, skipped or rejected: the per-endpoint lines add up to the input
    accounted = sum(e["lines"] for k, e in eps.items() if k != "-") + eps["-"]["rejected"]
    assert accounted == len(lines)
    for name in ("monitoring_spacy", "monitoring_transformers", "monitoring_translate"):
        frame = ingest.dataset(name)
        assert frame["id"].is_unique
        assert len(frame) == summary["endpoints"]["/" + name.split("_")[1] + "/"]["written"]
    assert summary["records_written"] == sum(e["written"] for e in eps.values())


def test_sample_logs_rejects_have_file_line_offset_and_reason(ingest: Ingest):
    ingest(str(SAMPLE_LOGS))
    rejects = {r["reason"].split(":")[0]: r for r in ingest.rejects()}
    assert set(rejects) == {"invalid JSON", "batch size mismatch"}
    for reject in rejects.values():
        path, line = reject["file"], reject["line"]
        raw = Path(path).read_bytes()
        assert raw.splitlines()[line - 1].decode() == reject["raw"]
        assert raw[reject["offset"] :].startswith(reject["raw"].encode())


def test_reingest_never_duplicates(ingest: Ingest):
    first = ingest.json(str(SAMPLE_LOGS))
    assert ingest.json(str(SAMPLE_LOGS))["lines_read"] == 0  # checkpoints: nothing new to read
    second = ingest.json(str(SAMPLE_LOGS), "--from-start")
    assert second["records_written"] == 0
    assert second["skipped"]["already_stored"] == first["records_written"]
    assert len(ingest.dataset("monitoring_spacy")) == first["endpoints"]["/spacy/"]["written"]


def test_ids_are_the_same_from_a_copy_or_gzip(tmp_path: Path, ingest: Ingest):
    ingest(str(SAMPLE_LOGS / "access.jsonl"))
    ids = set(ingest.dataset("monitoring_spacy")["id"])
    other = Ingest(tmp_path / "other")
    other.cwd.mkdir()
    copy = other.cwd / "renamed.log.3.gz"
    copy.write_bytes(gzip.compress((SAMPLE_LOGS / "access.jsonl").read_bytes()))
    other(str(copy))
    assert set(other.dataset("monitoring_spacy")["id"]) == ids
    # and the same line in a file with CRLF endings
    crlf = other.cwd / "crlf.jsonl"
    crlf.write_bytes((SAMPLE_LOGS / "access.jsonl").read_bytes().replace(b"\n", b"\r\n"))
    assert other.json(str(crlf), "--from-start")["records_written"] == 0


def test_record_fields_come_from_the_log_line(tmp_path: Path, ingest: Ingest):
    log = write_log(
        tmp_path / "a.jsonl",
        [
            entry(
                ts="2026-03-01T08:30:00.250+02:00",
                url="http://h:8000/spacy/",
                latency_ms=12.5,
                request_id="req-1",
                method="POST",
            ),
            entry(
                ts="2026-03-01T10:00:00",
                request=["Berlin"],
                response=[{"entities": [{"label": "GPE", "start": 0, "end": 6}]}],
            ),
        ],
    )
    ingest(str(log))
    records = sorted(ingest.records("monitoring_spacy"), key=lambda r: r["event_timestamp"])
    assert records[0]["event_timestamp"] == "2026-03-01T06:30:00.250000"
    assert records[0]["prediction"]["agent"] == "http://h:8000/spacy/"
    assert records[0]["metadata"] == {
        "endpoint": "/spacy/",
        "status": 200,
        "latency_ms": 12.5,
        "request_id": "req-1",
    }
    assert records[1]["event_timestamp"] == "2026-03-01T10:00:00.000000"  # naive is UTC
    assert records[1]["prediction"]["agent"] == "/spacy/"
    assert records[1]["tokens"] == ["Berlin"]
    frame = ingest.dataset("monitoring_spacy")
    assert str(frame["event_timestamp"].min()) == "2026-03-01 06:30:00.250000+00:00"


@pytest.mark.parametrize(
    "ts, expected",
    [
        (1764000000, "2025-11-24T16:00:00.000000"),
        (1764000000123, "2025-11-24T16:00:00.123000"),
        (1764000000.5, "2025-11-24T16:00:00.500000"),
        ("2025-11-24T16:00:00Z", "2025-11-24T16:00:00.000000"),
        ("2025-11-24 17:00:00+01:00", "2025-11-24T16:00:00.000000"),
    ],
)
def test_timestamp_formats(tmp_path: Path, ingest: Ingest, ts, expected):
    ingest(str(write_log(tmp_path / "a.jsonl", [entry(ts=ts)])))
    assert ingest.records("monitoring_spacy")[0]["event_timestamp"] == expected


def test_bodies_as_json_strings(tmp_path: Path, ingest: Ingest):
    log = write_log(
        tmp_path / "a.jsonl",
        [
            entry(
                path="/transformers/",
                request=json.dumps(["nice"]),
                response=json.dumps(TC_RESPONSE),
            ),
        ],
    )
    assert ingest.json(str(log))["records_written"] == 1
    assert ingest.records("monitoring_transformers")[0]["inputs"] == {"text": "nice"}


def test_bad_lines_are_rejected_with_reasons(tmp_path: Path, ingest: Ingest):
    log = tmp_path / "bad.jsonl"
    good = json.dumps(entry()).encode()
    log.write_bytes(
        b"\n".join(
            [
                good,
                b"",
                b'{"ts": "2026-01-01", "path": "/spacy/", "status": 200, '
                b'"request": ["caf\xe9"], "response": []}',
                b"[1, 2, 3]",
                json.dumps({"ts": "2026-01-01", "path": "/spacy/", "status": 200}).encode(),
                json.dumps(entry(status="200")).encode(),
                json.dumps(entry(path=5)).encode(),
                json.dumps(entry(ts="yesterday")).encode(),
                json.dumps(entry(ts=[1])).encode(),
                b"   ",
                b'{"not closed": ' + b"x" * 5000,
                good,
            ]
        )
        + b"\n"
    )
    summary = ingest.json(str(log))
    reasons = [(r["line"], r["reason"]) for r in ingest.rejects()]
    assert [line for line, _ in reasons] == [3, 4, 5, 6, 7, 8, 9, 11]
    text = " | ".join(reason for _, reason in reasons)
    for expected in (
        "invalid UTF-8",
        "JSON list, expected an object",
        "missing field 'request', 'response'",
        "status has type str",
        "path has type int",
        "neither ISO-8601",
        "ts has type list",
        "invalid JSON",
    ):
        assert expected in text
    assert max(len(r["raw"]) for r in ingest.rejects()) <= 2000
    assert summary["skipped"] == {"blank_line": 2, "already_stored": 1}
    assert summary["records_written"] == 1


def test_incomplete_last_line_is_left_for_the_next_run(tmp_path: Path, ingest: Ingest):
    log = write_log(
        tmp_path / "a.jsonl",
        [entry(), entry(request=["Paris"], response=[{"entities": []}])],
        trailing_newline=False,
    )
    proc = ingest(str(log))
    assert "incomplete last line" in proc.stderr.decode()
    assert len(ingest.dataset("monitoring_spacy")) == 1
    assert ingest.rejects() == []
    with open(log, "a") as fh:
        fh.write("\n")
    summary = ingest.json(str(log))
    assert summary["records_written"] == 1 and summary["incomplete_last_lines"] == {}
    assert summary["lines_read"] == 1  # only the line completed since the last run


def test_batches_pair_one_to_one_and_mismatch_rejects(tmp_path: Path, ingest: Ingest):
    log = write_log(
        tmp_path / "a.jsonl",
        [
            entry(path="/transformers/", request=["a", "b"], response=TC_RESPONSE * 2),
            entry(path="/transformers/", request=["a", "b", "c"], response=TC_RESPONSE * 2),
            entry(path="/transformers/", request="single", response=TC_RESPONSE[0]),
            entry(path="/transformers/", request="single list", response=TC_RESPONSE),
        ],
    )
    summary = ingest.json(str(log))
    assert summary["records_written"] == 4
    assert [r["reason"] for r in ingest.rejects()] == [
        "batch size mismatch: request has 3 inputs, response 2 outputs"
    ]


def test_one_invalid_record_is_rejected_alone(tmp_path: Path, ingest: Ingest):
    bad = {"labels": ["a", "b"], "scores": [0.5, 1.5]}
    log = write_log(
        tmp_path / "a.jsonl",
        [
            entry(
                path="/transformers/",
                request=["x", "y", "z"],
                response=[TC_RESPONSE[0], bad, TC_RESPONSE[0]],
            ),
        ],
    )
    summary = ingest.json(str(log))
    assert summary["records_written"] == 2
    (reject,) = ingest.rejects()
    assert reject["record"] == 1 and reject["stage"] == "validate" and "within [0, 1]" in reject["reason"]


def test_skips_errors_non_json_and_filters(tmp_path: Path, ingest: Ingest):
    log = write_log(
        tmp_path / "a.jsonl",
        [
            entry(status=500, response={"detail": "boom"}),
            entry(status=422),
            entry(content_type="text/plain"),
            entry(request="{not json at all"),
            {**entry(), "response": None},
            entry(path="/other/"),
            entry(ts="2026-11-23T23:59:59Z"),
            entry(ts="2026-11-25T00:00:00Z"),
            entry(ts="2026-11-24T12:00:00Z"),
        ],
    )
    summary = ingest.json(str(log), "--endpoint", "/spacy/", "--since", "2026-11-24", "--until", "2026-11-25")
    assert summary["skipped"] == {
        "error_status": 2,
        "non_json_body": 3,
        "endpoint_not_selected": 1,
        "outside_time_window": 2,
    }
    assert summary["records_written"] == 1


def test_task_is_detected_from_the_response_shape(tmp_path: Path, ingest: Ingest):
    log = write_log(
        tmp_path / "a.jsonl",
        [
            entry(
                path="/transformers/",
                request=["x"],
                response=[[{"label": "POS", "score": 0.7}, {"label": "NEG", "score": 0.3}]],
            ),
            entry(path="/translate/", request={"text": "hi"}, response=[{"translation_text": "salut"}]),
            entry(path="/multi/", request="x", response={"labels": ["a", "b"], "scores": [0.9, 0.8]}),
            entry(path="/weird/", request="x", response={"what": 1}),
        ],
    )
    summary = ingest.json(str(log))
    assert summary["records_written"] == 3
    assert (
        json.loads(ingest.dataset("monitoring_translate")["record"][0])["prediction"]["sentences"][0]["text"]
        == "salut"
    )
    assert ingest.records("monitoring_multi")[0]["multi_label"] is True
    (reject,) = ingest.rejects()
    assert "set a mapper" in reject["reason"]


CONFIG = """
[endpoints."/spacy/"]
dataset = "ner-prod"
mapper = "token_classification"
workspace = "team-a"
tags = { model = "en_core_web_sm" }
metadata = ["method", "client", "headers"]

[endpoints."/custom/"]
mapper = "mymappers:sentiment"
"""

CUSTOM = """
import argilla as rg


def sentiment(inputs, outputs):
    if outputs.get("skip"):
        return None
    if outputs.get("as_dict"):
        return {"inputs": {"text": inputs}, "prediction": {"labels": [{"class": "X", "score": 1.0}]}}
    return rg.TextClassificationRecord(text=inputs, prediction=[(outputs["label"], outputs["score"])])
"""


def test_config_routes_mappers_tags_and_metadata(tmp_path: Path, ingest: Ingest):
    (ingest.cwd / "ingest.toml").write_text(CONFIG)
    (ingest.cwd / "mymappers.py").write_text(CUSTOM)
    log = write_log(
        tmp_path / "a.jsonl",
        [
            entry(
                method="POST",
                client="web",
                headers={"Authorization": "Bearer s3cret", "Accept": "x"},
            ),
            entry(path="/custom/", request="good", response={"label": "POSITIVE", "score": 0.75}),
            entry(path="/custom/", request="dict", response={"as_dict": True}),
            entry(path="/custom/", request="none", response={"skip": True}),
            entry(path="/unconfigured/"),
        ],
    )
    summary = ingest.json(str(log), "--config", "ingest.toml")
    assert summary["skipped"] == {"mapper_returned_none": 1, "endpoint_not_selected": 1}
    (record,) = ingest.records("ner-prod")
    assert record["metadata"]["method"] == "POST" and record["metadata"]["client"] == "web"
    assert record["metadata"]["headers"] == {"Authorization": "[redacted]", "Accept": "x"}
    meta = json.loads((ingest.store / "ner-prod" / "_dataset.json").read_text())
    assert meta == {
        "name": "ner-prod",
        "task": "TokenClassification",
        "tags": {"model": "en_core_web_sm"},
        "workspace": "team-a",
    }
    custom = sorted(ingest.records("monitoring_custom"), key=lambda r: r["inputs"]["text"])
    assert [r["inputs"]["text"] for r in custom] == ["dict", "good"]
    assert custom[1]["prediction"] == {
        "agent": "/custom/",
        "labels": [{"class": "POSITIVE", "score": 0.75}],
    }
    assert custom[1]["event_timestamp"] == "2026-11-24T10:00:00.000000"
    assert custom[1]["id"].endswith("-0") and len(custom[1]["id"]) == 34


def test_command_line_dataset_and_mapper_override(tmp_path: Path, ingest: Ingest):
    log = write_log(tmp_path / "a.jsonl", [entry(path="/gen/", request="hi", response="salut")])
    ingest(str(log), "--endpoint", "/gen/", "--dataset", "gen-v2", "--mapper", "text2text")
    assert ingest.records("gen-v2")[0]["prediction"]["sentences"][0]["text"] == "salut"


@pytest.mark.parametrize(
    "args, config, message",
    [
        (["missing.jsonl"], None, "no such file or directory: missing.jsonl"),
        (["logs/*.jsonl"], None, "no file matches logs/*.jsonl"),
        (
            ["{log}", "--config", "ingest.toml"],
            "[endpoints.'/x/']\nmaper = 'text2text'\n",
            "unknown key 'maper'",
        ),
        (["{log}", "--config", "ingest.toml"], "[endpoints", "not valid TOML"),
        (
            ["{log}", "--config", "ingest.toml"],
            "[endpoints.'/x/']\ndataset = 'Bad.Name'\n",
            "invalid dataset name",
        ),
        (
            ["{log}", "--config", "ingest.toml"],
            "[endpoints.'/x/']\nmapper = 'sentiment'\n",
            "unknown mapper 'sentiment'",
        ),
        (["{log}", "--config", "nope.toml"], None, "cannot read config"),
        (["{log}", "-e", "/x/", "--mapper", "nope:fn"], None, "cannot import 'nope'"),
        (["{log}", "--mapper", "text2text"], None, "give exactly one --endpoint"),
        (["{log}", "-e", "/x/", "--dataset", "UPPER"], None, "invalid dataset name"),
        (["{log}", "--since", "last tuesday"], None, "neither an ISO-8601 time nor a duration"),
    ],
)
def test_usage_errors_exit_2_before_writing(tmp_path: Path, ingest: Ingest, args, config, message):
    log = write_log(tmp_path / "a.jsonl", [entry()])
    if config is not None:
        (ingest.cwd / "ingest.toml").write_text(config)
    proc = ingest(*[a.replace("{log}", str(log)) for a in args], check=False)
    assert proc.returncode == 2
    assert message in proc.stderr.decode()
    assert not ingest.store.exists()


def test_unreadable_input_exits_3(tmp_path: Path, ingest: Ingest):
    log = write_log(tmp_path / "a.jsonl", [entry()])
    log.chmod(0)
    proc = ingest(str(log), check=False)
    if proc.returncode == 0:  # root reads anything (tests/test_faults.py drops that privilege)
        pytest.skip("running as root: permissions do not stop reads")
    assert proc.returncode == 3 and f"could not read {log}: Permission denied" in proc.stderr.decode()


def test_stdin_glob_and_directory_inputs(tmp_path: Path, ingest: Ingest):
    logs = tmp_path / "logs"
    logs.mkdir()
    write_log(logs / "access.jsonl", [entry(request=["Paris"], response=[{"entities": []}])])
    (logs / "access.jsonl.1.gz").write_bytes(gzip.compress(json.dumps(entry()).encode() + b"\n"))
    (logs / "notes.txt").write_text("not a log\n")
    assert ingest.json(str(logs))["records_written"] == 2
    assert ingest.json(str(logs / "access*"), "--from-start")["skipped"] == {"already_stored": 2}
    fresh = Ingest(tmp_path / "fresh")
    fresh.cwd.mkdir()
    summary = fresh.json("-", input=(logs / "access.jsonl").read_bytes())
    assert summary["files"] == ["<stdin>"] and summary["records_written"] == 1


def test_dry_run_writes_nothing_and_shows_records(ingest: Ingest):
    proc = ingest(str(SAMPLE_LOGS), "--dry-run", "--show", "1")
    assert not ingest.store.exists()
    out = proc.stdout.decode()
    assert "# monitoring_spacy: first 1 records" in out and '"tokens"' in out
    assert "would reject" in proc.stderr.decode() and "dry run: nothing written" in proc.stderr.decode()


def test_dry_run_does_not_say_the_target_failed(ingest: Ingest):
    # A dry run delivers nothing by design: its records were not lost to a failing target.
    err = ingest(str(SAMPLE_LOGS), "--dry-run").stderr.decode()
    assert "failed" not in err, err
    assert "dry run: 490 records mapped and validated, none written" in err


def test_a_damaged_state_file_is_named_as_such(ingest: Ingest):
    # The store is fine; the checkpoints' file is not: the message must send the user there.
    ingest.store.mkdir()
    (ingest.store / "_state.sqlite").write_text("not a database\n")
    proc = ingest(str(SAMPLE_LOGS), "--json", check=False)
    assert proc.returncode == 1
    error = json.loads(proc.stdout)["error"]
    assert error.startswith("the state file rubrix-store/_state.sqlite cannot be used: "), error


def test_a_store_inside_an_input_directory_is_not_read_as_logs(ingest: Ingest):
    # `cd /var/log/models && ingest .` puts the default store (./rubrix-store) inside the
    # input directory: its run log, dataset files and rejects are not logs to ingest.
    shutil.copy(SAMPLE_LOGS / "access.jsonl", ingest.cwd / "access.jsonl")
    first = ingest.json(".")
    second = ingest.json(".")
    assert first["files"] == second["files"] == ["access.jsonl"]
    assert (second["exit_code"], second["lines_read"], second["files_failed"]) == (0, 0, {})


def test_a_fixed_rejects_file_cut_short_by_a_crash_keeps_the_next_runs_rejects(ingest: Ingest):
    # --rejects names one file for every run; kill -9 mid-write left a line without its
    # newline. The next run's first reject must not be glued to it, unreadable.
    rejects = ingest.cwd / "rejects.jsonl"
    rejects.write_bytes(b'{"file": "old.jsonl", "line": 3, "rea')
    write_log(ingest.cwd / "bad.jsonl", ["not json"])
    ingest("bad.jsonl", "--rejects", str(rejects), "-q")
    last = json.loads(rejects.read_bytes().split(b"\n")[-2])
    assert (last["file"], last["line"]) == ("bad.jsonl", 1)


def test_summary_table_on_stderr(ingest: Ingest):
    err = ingest(str(SAMPLE_LOGS)).stderr.decode()
    assert "target: local store rubrix-store" in err
    header = next(line for line in err.splitlines() if line.startswith("endpoint"))
    assert header.split() == [
        "endpoint",
        "dataset",
        "lines",
        "mapped",
        "skipped",
        "rejected",
        "records",
        "written",
        "stored",
        "skipped",
        "rejected",
    ]
    assert "skipped lines: error_status 1, non_json_body 1" in err


def test_worker_processes_give_the_same_store(tmp_path: Path, ingest: Ingest):
    big = tmp_path / "big.jsonl"
    lines = (SAMPLE_LOGS / "access.jsonl").read_text().splitlines()
    with open(big, "w") as fh:  # distinct lines: a request id per copy
        for i in range(40):
            for line in lines:
                fh.write(line.replace('"request_id": "', f'"request_id": "{i}-') + "\n")
    one = ingest.json(str(big), "--jobs", "1", "--store", "one")
    two = ingest.json(str(big), "--jobs", "2", "--store", "two")
    for key in ("lines_read", "records_written", "skipped", "rejected"):
        assert one[key] == two[key]
    a = pd.read_parquet(ingest.cwd / "one" / "monitoring_spacy").sort_values("id")
    b = pd.read_parquet(ingest.cwd / "two" / "monitoring_spacy").sort_values("id")
    assert list(a["record"]) == list(b["record"])
    assert [r["line"] for r in ingest.rejects()] == [] and (ingest.cwd / "two" / "_rejects").exists()


def test_credentials_never_reach_the_rejects_file(tmp_path: Path, ingest: Ingest):
    secret = "Bearer sk-live-123456"
    log = tmp_path / "a.jsonl"
    log.write_text(
        '{"ts": 1, "path": "/spacy/", "headers": {"authorization": "'
        + secret
        + '", "Cookie": "sid=abc"}, bad json\n'
    )
    ingest(str(log))
    raw = (
        (ingest.store / "_rejects").read_text()
        if False
        else "".join(p.read_text() for p in (ingest.store / "_rejects").glob("*"))
    )
    assert "sk-live" not in raw and "sid=abc" not in raw and "[redacted]" in raw


def test_credentials_in_a_url_or_request_id_never_reach_the_store(tmp_path: Path, ingest: Ingest):
    # The url (the records' prediction agent) and the request id are copied to every record
    # (and the id to a column): masked by the rules the path gets, whatever marks the secret.
    def line(url: str, request_id: str = "9f8e7d6c-0000-4000-8000-000000000001") -> dict:
        return entry("/predict", url=url, request_id=request_id)

    log = write_log(
        tmp_path / "a.jsonl",
        [
            line("http://h/predict?%73ig%3Dsecret-one"),  # an encoded "=" is still a query's
            line("http://h/v1/sk-secret-two-abcdef/predict"),  # a key's shape in the path
            line("http://h/predict?access_token%3Dsecret-three"),
            line("http://h/predict", request_id="Bearer secret-four-0123"),
            line("http://h/predict", request_id="eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.secret-five"),
        ],
    )
    summary = ingest.json(str(log))
    assert summary["records_written"] == 5
    table = pd.read_parquet(ingest.store / "monitoring_predict")
    stored = "\n".join(str(value) for column in table.columns for value in table[column])
    assert "secret-" not in stored and stored.count("[redacted]") >= 5
    # an ordinary id and URL are kept as they are
    ordinary = write_log(tmp_path / "b.jsonl", [line("http://h:8000/predict/")])
    ingest(str(ordinary))
    table = pd.read_parquet(ingest.store / "monitoring_predict")
    row = table[table["source_file"] == str(ordinary)].iloc[0]
    assert row["request_id"] == "9f8e7d6c-0000-4000-8000-000000000001"
    assert json.loads(row["record"])["prediction"]["agent"] == "http://h:8000/predict/"


def test_an_endpoint_named_with_its_credential_selects_it_and_the_credential_goes_nowhere(
    tmp_path: Path, ingest: Ingest
):
    # The path read from a log is masked (/predict?api_key=[redacted]); the user selecting it
    # as they know it (--endpoint, a config's [endpoints]) must get it, and the credential in
    # their flag or file must not reach the output, the state file or the store either.
    log = write_log(tmp_path / "a.jsonl", [entry("/predict?api_key=sekrit77")])
    config = tmp_path / "ingest.toml"
    config.write_text('[endpoints."/predict?api_key=sekrit77"]\ndataset = "preds"\n')
    for args in (["-e", "/predict?api_key=sekrit77"], ["--config", str(config)]):
        store = tmp_path / f"store{len(args[0])}"
        proc = ingest(str(log), *args, "--store", str(store), "--json")
        assert json.loads(proc.stdout)["records_written"] == 1, args
        assert b"sekrit77" not in proc.stdout + proc.stderr
        assert not [p for p in store.rglob("*") if p.is_file() and b"sekrit77" in p.read_bytes()], args


def test_writes_are_atomic_and_readers_skip_temporary_files(tmp_path: Path, ingest: Ingest):
    ingest(str(SAMPLE_LOGS))
    partition = next((ingest.store / "monitoring_spacy").glob("date=*"))
    before = len(ingest.dataset("monitoring_spacy"))
    # what a crash in the middle of a write leaves behind: a temporary file, half written
    shutil.copy(next(partition.glob("part-*.parquet")), partition / ".part-crashed.parquet.tmp")
    (partition / ".part-torn.parquet.tmp").write_bytes(b"PAR1 torn")
    assert len(ingest.dataset("monitoring_spacy")) == before
    assert not [p for p in ingest.store.rglob("*.tmp") if "crashed" not in p.name and "torn" not in p.name]


def test_dataset_task_conflict_is_rejected(tmp_path: Path, ingest: Ingest):
    (ingest.cwd / "ingest.toml").write_text(
        '[endpoints."/a/"]\ndataset = "shared"\n[endpoints."/b/"]\ndataset = "shared"\n'
    )
    log = write_log(
        tmp_path / "a.jsonl",
        [
            entry(path="/a/"),
            entry(path="/b/", request="x", response=TC_RESPONSE[0]),
        ],
    )
    summary = ingest.json(str(log), "--config", "ingest.toml")
    assert summary["records_written"] == 1
    (reject,) = ingest.rejects()
    assert "holds TokenClassification records" in reject["reason"] and reject["line"] == 2
