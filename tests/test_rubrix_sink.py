"""The Rubrix sink against the local test server: delivery, failures, and faithfulness."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pyarrow.parquet as pq
import pytest

from ingest.transform.records import complete
from ingest.transform.validate import validate
from mappers.token_classification import token_classification
from tests.conftest import ROOT, SAMPLE_LOGS, Ingest, RubrixServer, entry, free_port, write_log
from tests.test_parity import random_case

SECRET = "sk-test-0123456789abcdef"


def stored_by_id(server: RubrixServer, dataset: str, workspace: str | None = None) -> dict[str, dict]:
    return {r["id"]: r for r in server.records(dataset, workspace)}


def local_by_id(ingest: Ingest, dataset: str) -> dict[str, dict]:
    return {r["id"]: r for r in ingest.records(dataset)}


def assert_no_secret(*texts: str | bytes) -> None:
    for text in texts:
        assert SECRET.encode() not in (text if isinstance(text, bytes) else text.encode())


# -- the test server is faithful -------------------------------------------------------


def test_official_client_logs_to_the_test_server(server: RubrixServer):
    code = f"""
import argilla as rg
rg.init(api_url={server.url!r}, api_key={server.api_key!r})
rg.log([rg.TextClassificationRecord(id="t1", text="I really like rubrix!",
        prediction=[("NEGATIVE", 0.0003), ("POSITIVE", 0.9997)])], name="monitoring_transformers")
tokens = ["I", "live", "in", "Paris", "."]
rg.log([rg.TokenClassificationRecord(id="n1", text="I live in Paris.", tokens=tokens,
        prediction=[("GPE", 10, 15)])], name="monitoring_spacy")
rg.log([rg.Text2TextRecord(id="g1", text="hello", prediction=["bonjour"])], name="monitoring_translate")
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()
    assert [r["id"] for r in server.records("monitoring_transformers")] == ["t1"]
    assert server.records("monitoring_spacy")[0]["tokens"] == ["I", "live", "in", "Paris", "."]
    assert server.records("monitoring_translate")[0]["prediction"]["sentences"][0]["text"] == "bonjour"
    paths = [c["path"] for c in server.calls()]
    assert "/api/me" in paths and "/api/datasets" in paths
    assert all(c["headers"].get("x-argilla-api-key") == server.api_key for c in server.calls()
               if c["path"] != "/api/_info")  # fmt: skip


def bulk(server: RubrixServer, dataset: str, task: str, records: list[dict]) -> httpx.Response:
    return httpx.post(
        f"{server.url}/api/datasets/{dataset}/{task}:bulk",
        headers={"X-Argilla-Api-Key": server.api_key},
        json={"tags": {}, "metadata": {}, "records": records},
    )


def test_test_server_applies_the_reference_rules_to_whole_requests(server: RubrixServer):
    good = {
        "id": "ok",
        "text": "I live in Paris.",
        "tokens": ["I", "live", "in", "Paris", "."],
        "prediction": {"agent": "a", "entities": [{"start": 10, "end": 15, "label": "GPE", "score": 0.0}]},
    }
    misaligned = {**good, "id": "bad", "tokens": ["I", "live", "in", "Paris."]}  # the reference's example
    response = bulk(server, "monitoring_spacy", "TokenClassification", [good, misaligned])
    assert response.status_code == 422
    assert "not aligned" in response.text
    assert server.records("monitoring_spacy") == []  # none of the batch is stored
    assert bulk(server, "monitoring_spacy", "TokenClassification", [good]).status_code == 200
    sigmoid = {
        "id": 1,
        "inputs": {"text": "x"},
        "prediction": {"labels": [{"class": "a", "score": 0.9}, {"class": "b", "score": 0.8}]},
    }
    assert bulk(server, "tc", "TextClassification", [sigmoid]).status_code == 422
    assert bulk(server, "tc", "TextClassification", [{**sigmoid, "multi_label": True}]).status_code == 200
    bad_name = httpx.post(
        f"{server.url}/api/datasets",
        headers={"X-Argilla-Api-Key": server.api_key},
        json={"name": "Monitoring.Spacy", "task": "TextClassification"},
    )
    assert bad_name.status_code == 422


def test_our_validation_agrees_with_the_test_server(server: RubrixServer):
    """Two independent implementations of the rules: they must agree record by record."""
    rng = random.Random(7)
    agreed = rejected = 0
    for i in range(150):
        text, entities = random_case(rng)
        body = token_classification(text, {"entities": entities})
        if rng.random() < 0.5:  # Rubrix's plain split: often misaligned
            body["tokens"] = [t for t in text.split() if t] or [text]
        record = complete("TokenClassification", body, id=f"r{i}", event_timestamp="2026-01-01T00:00:00",
                          agent="a", metadata={})  # fmt: skip
        ours = validate("TokenClassification", record) is None
        theirs = bulk(server, "agree", "TokenClassification", [record]).status_code == 200
        assert ours == theirs, (text, body["tokens"], entities)
        agreed += 1
        rejected += not ours
    assert rejected > 10 and agreed - rejected > 10


# -- delivery end to end -----------------------------------------------------------------


def test_sample_logs_to_server_equal_the_local_store(tmp_path: Path, ingest: Ingest, server: RubrixServer):
    summary = ingest.json(str(SAMPLE_LOGS), env=server.env())
    assert summary["target"] == f"rubrix {server.url}"
    local = Ingest(tmp_path / "local")
    local.cwd.mkdir()
    local(str(SAMPLE_LOGS))
    for name in ("monitoring_spacy", "monitoring_transformers", "monitoring_translate"):
        assert stored_by_id(server, name) == local_by_id(local, name)
        assert server.dataset(name)["task"] in ("TokenClassification", "TextClassification", "Text2Text")
    assert summary["records_written"] == 490 and summary["rejected"] == 2
    bulks = [c for c in server.calls() if c["path"].endswith(":bulk")]
    assert all(c["headers"]["x-argilla-api-key"] == SECRET for c in bulks)


def test_redelivery_replaces_instead_of_duplicating(ingest: Ingest, server: RubrixServer):
    ingest(str(SAMPLE_LOGS), env=server.env())
    again = ingest.json(str(SAMPLE_LOGS), "--from-start", env=server.env())
    assert again["records_written"] == 490
    assert len(server.records("monitoring_spacy")) == 232


def test_push_sends_the_local_store(ingest: Ingest, server: RubrixServer):
    ingest(str(SAMPLE_LOGS))
    (ingest.cwd / "ingest.toml").write_text('[rubrix]\nworkspace = "team-a"\n')
    summary = ingest.json(
        "push", "--config", "ingest.toml", "--dataset", "monitoring_spacy", env=server.env()
    )
    assert summary["records_written"] == 232
    assert stored_by_id(server, "monitoring_spacy", "team-a") == local_by_id(ingest, "monitoring_spacy")
    assert server.records("monitoring_transformers", "team-a") == []
    # push keeps checkpoints per target: monitoring_spacy was pushed to team-a already
    assert ingest.json("push", "--workspace", "team-a", env=server.env())["records_written"] == 490 - 232
    assert len(server.records("monitoring_spacy", "team-a")) == 232
    assert (
        ingest.json("push", "--workspace", "team-a", "--from-start", env=server.env())["records_written"]
        == 490
    )


def test_push_needs_a_server_and_datasets(ingest: Ingest):
    proc = ingest("push", check=False)
    assert proc.returncode == 2 and "push needs a server" in proc.stderr.decode()
    proc = ingest("push", "--rubrix-url", "http://127.0.0.1:9", check=False)
    assert proc.returncode == 2 and "no local store at rubrix-store" in proc.stderr.decode()
    (ingest.cwd / "rubrix-store").mkdir()
    proc = ingest("push", "--rubrix-url", "http://127.0.0.1:9", check=False)
    assert proc.returncode == 2 and "no datasets in rubrix-store" in proc.stderr.decode()


def test_workspace_tags_and_existing_dataset(tmp_path: Path, ingest: Ingest, server: RubrixServer):
    (ingest.cwd / "ingest.toml").write_text(
        '[endpoints."/spacy/"]\nworkspace = "team-a"\ntags = { model = "sm" }\n'
    )
    log = write_log(tmp_path / "a.jsonl", [entry()])
    httpx.post(
        f"{server.url}/api/datasets",
        headers={"X-Argilla-Api-Key": SECRET, "X-Argilla-Workspace": "team-a"},
        json={"name": "monitoring_spacy", "task": "TokenClassification"},
    ).raise_for_status()
    summary = ingest.json(str(log), "--config", "ingest.toml", env=server.env())
    assert summary["records_written"] == 1
    assert len(server.records("monitoring_spacy", "team-a")) == 1
    bulk_call = next(c for c in server.calls() if c["path"].endswith(":bulk"))
    assert bulk_call["headers"]["x-argilla-workspace"] == "team-a"
    server.reset()
    ingest(str(log), "--config", "ingest.toml", "--from-start", env=server.env())
    assert server.dataset("monitoring_spacy", "team-a")["tags"] == {"model": "sm"}


def test_dataset_with_another_task_on_the_server(tmp_path: Path, ingest: Ingest, server: RubrixServer):
    httpx.post(
        f"{server.url}/api/datasets",
        headers={"X-Argilla-Api-Key": SECRET},
        json={"name": "monitoring_spacy", "task": "TextClassification"},
    ).raise_for_status()
    log = write_log(tmp_path / "a.jsonl", [entry()])
    summary = ingest.json(str(log), env=server.env())
    assert summary["records_written"] == 0 and summary["rejected"] == 1
    assert "holds TextClassification records" in ingest.rejects()[0]["reason"]
    # the line's only record refused: per file, the line is rejected, not one that gave records
    counts = summary["by_file"][str(log)]
    assert (counts["lines"], counts["gave_records"], counts["rejected"]) == (1, 0, 1)


def test_rubrix_line_headers(tmp_path: Path, ingest: Ingest):
    server = RubrixServer(line="rubrix", api_key=SECRET).start()
    try:
        summary = ingest.json(str(SAMPLE_LOGS), "--rubrix-url", server.url, env={"RUBRIX_API_KEY": SECRET})
        assert summary["records_written"] == 490
        assert len(server.records("monitoring_spacy", "rubrix")) == 232
        assert all(
            "x-rubrix-api-key" in c["headers"]
            for c in server.calls()
            if c["path"] not in ("/api/_info", "/api/v1/version")
        )
    finally:
        server.stop()


def test_argilla_environment_variables(ingest: Ingest, server: RubrixServer):
    env = {"ARGILLA_API_URL": server.url, "ARGILLA_API_KEY": SECRET, "ARGILLA_WORKSPACE": "team-a"}
    assert ingest.json(str(SAMPLE_LOGS), env=env)["target"] == f"rubrix {server.url}, workspace team-a"
    assert len(server.records("monitoring_spacy", "team-a")) == 232


# -- failure modes -----------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["wrong-key", None])
def test_bad_key_stops_at_once_naming_the_url_not_the_key(ingest: Ingest, server: RubrixServer, key):
    env = {"RUBRIX_API_URL": server.url, **({"RUBRIX_API_KEY": key} if key else {})}
    proc = ingest(str(SAMPLE_LOGS), env=env, check=False)
    err = proc.stderr.decode()
    assert proc.returncode == 1
    assert (
        err.strip().splitlines()[-1].startswith(f"ingest: error: {server.url} refused the request (HTTP 401)")
    )
    assert "wrong-key" not in err + proc.stdout.decode()
    assert server.records("monitoring_spacy") == []


def test_unknown_workspace_stops_the_run(ingest: Ingest, server: RubrixServer):
    proc = ingest(str(SAMPLE_LOGS), "--workspace", "nope", env=server.env(), check=False)
    assert (
        proc.returncode == 1
        and "workspace 'nope' is not one of this user's workspaces" in proc.stderr.decode()
    )


@pytest.mark.parametrize(
    "faults",
    [
        {"fail_next": 4, "fail_status": 500},
        {"fail_next": 3, "fail_status": 503},
        {"fail_next": 2, "fail_status": 429, "retry_after": "1"},
        {"drop_next": 3},
    ],
)
def test_transient_failures_are_retried_without_loss_or_duplicates(
    ingest: Ingest, server: RubrixServer, faults
):
    # the sink's handshake runs first: make the faults hit the bulk requests
    server.faults(**faults)
    summary = ingest.json(str(SAMPLE_LOGS), "--batch-size", "50", env=server.env())
    assert summary["records_written"] == 490
    local = Ingest(ingest.cwd / "ref")
    local.cwd.mkdir()
    local(str(SAMPLE_LOGS))
    for name in ("monitoring_spacy", "monitoring_transformers", "monitoring_translate"):
        assert stored_by_id(server, name) == local_by_id(local, name)


def test_slow_server_times_out_and_is_retried(ingest: Ingest, server: RubrixServer):
    server.faults(delay=1.5)
    proc = ingest(str(SAMPLE_LOGS), "--timeout", "0.5", "--retry-for", "3", env=server.env(), check=False)
    assert proc.returncode == 1
    assert "ReadTimeout" in proc.stderr.decode() and "gave up after" in proc.stderr.decode()


def test_persistent_failure_stops_with_exit_1_and_counts_only_acknowledged(
    ingest: Ingest, server: RubrixServer
):
    log = ingest.cwd / "big.jsonl"
    lines = (SAMPLE_LOGS / "access.jsonl").read_text().splitlines()
    log.write_text("\n".join(line.replace('"request_id": "', f'"request_id": "{i}-') for i in range(5)
                             for line in lines) + "\n")  # fmt: skip
    # the handshake, the dataset lookups (a GET each, for dataset-level decisions), dataset
    # creation and a few bulk requests succeed, then the server fails for good
    server.faults(pass_next=12, fail_next=10_000, fail_status=503)
    started = time.monotonic()
    proc = ingest(str(log), "--batch-size", "20", "--retry-for", "2", env=server.env(), check=False)
    assert proc.returncode == 1 and time.monotonic() - started < 30
    err = proc.stderr.decode()
    assert err.strip().splitlines()[-1].startswith(f"ingest: error: cannot reach {server.url}: HTTP 503")
    server.faults()  # healthy again, to read back
    stored = sum(
        len(server.records(n))
        for n in ("monitoring_spacy", "monitoring_transformers", "monitoring_translate")
    )
    written_line = next(line for line in err.splitlines() if "records written" in line)
    assert 0 < stored < 2450
    assert f" {stored} records written" in written_line  # exactly what the server acknowledged


def test_connection_refused_then_server_comes_up(tmp_path: Path, ingest: Ingest):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = ingest(str(SAMPLE_LOGS), "--rubrix-url", url, "--retry-for", "1", check=False)
    assert proc.returncode == 1 and f"cannot reach {url}: ConnectError" in proc.stderr.decode()
    late = RubrixServer(port=port, api_key=SECRET)
    run = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ingest",
            str(SAMPLE_LOGS),
            "--rubrix-url",
            url,
            "--retry-for",
            "60",
            "--json",
        ],
        cwd=ingest.cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "RUBRIX_API_KEY": SECRET},
    )
    time.sleep(1.5)
    late.start()
    try:
        out, err = run.communicate(timeout=120)
        assert run.returncode == 0, err.decode()
        assert json.loads(out)["records_written"] == 490
        assert len(late.records("monitoring_spacy")) == 232
    finally:
        late.stop()


def test_a_422_batch_is_split_and_only_the_bad_record_rejected(ingest: Ingest, server: RubrixServer):
    ingest(str(SAMPLE_LOGS))
    # tamper with one stored record behind our validation's back: the server must catch it
    part = next((ingest.store / "monitoring_transformers").rglob("part-*.parquet"))
    table = pq.read_table(part)
    records = table["record"].to_pylist()
    bad = json.loads(records[7])
    bad["prediction"]["labels"][0]["score"] = 1.5
    records[7] = json.dumps(bad)
    table = table.set_column(table.schema.get_field_index("record"), "record", [records])
    pq.write_table(table, part)
    summary = ingest.json("push", "--batch-size", "100", env=server.env())
    assert summary["records_written"] == 489 and summary["rejected"] == 1
    # a record's reject: push reads records, not lines, and the server did answer for it
    assert summary["records"]["not_delivered"] == 0 and summary["lines"]["rejected"] == {}
    (reject,) = [r for r in ingest.rejects() if r["stage"] == "server"]
    assert "HTTP 422" in reject["reason"] and "less than or equal to 1" in reject["reason"]
    assert json.loads(reject["raw"])["id"] == bad["id"]
    assert len(server.records("monitoring_transformers")) == 231
    assert bad["id"] not in stored_by_id(server, "monitoring_transformers")


def test_the_key_never_appears_anywhere(ingest: Ingest, server: RubrixServer):
    outputs = []
    for args in ([str(SAMPLE_LOGS)], ["push"], [str(SAMPLE_LOGS), "--workspace", "nope"]):
        proc = ingest(*args, "--json", "--api-key", SECRET, "--rubrix-url", server.url, check=False)
        outputs += [proc.stdout, proc.stderr]
    server.faults(fail_next=100, fail_status=500)
    proc = ingest(str(SAMPLE_LOGS), "--retry-for", "1", env=server.env(), check=False)
    outputs += [proc.stdout, proc.stderr]
    outputs += [p.read_bytes() for p in ingest.store.rglob("*") if p.is_file()]
    assert_no_secret(*outputs)


def test_rubrix_server_module_runs_standalone():
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tests.rubrix_server", "--port", str(port)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        server = RubrixServer(port=port)
        server.wait_ready()
        assert httpx.get(server.url + "/api/_info").json() == {"version": "1.29.0"}
    finally:
        proc.terminate()
        proc.wait(10)
