"""Argilla 2.x as a target, against the real argilla-server 2.8 (tests/argilla_v2_server.py).

One server for the session (about 10 s to start; the ``argilla_v2`` fixture of
tests/conftest.py); each test works in a workspace of its own (``workspace``), so tests do
not see each other's datasets.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

from ingest.sinks.detect import detect_server_api
from tests.argilla_v2_server import ArgillaV2Server
from tests.conftest import SAMPLE_LOGS, Ingest, RubrixServer, entry, write_log

SAMPLE_DATASETS = {
    "monitoring_spacy": "TokenClassification",
    "monitoring_transformers": "TextClassification",
    "monitoring_translate": "Text2Text",
}


def by_external_id(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    found = {r["external_id"]: r for r in records}
    assert len(found) == len(records), "an external id is stored twice"
    return found


def expected_item(task: str, record: dict[str, Any]) -> tuple[dict, Any, Any, dict]:
    """What a v0 record must look like in 2.x: fields, suggestion value and score, metadata.

    Written from the mapping table in README/schema docstring, independently of the code.
    """
    prediction = record["prediction"]
    metadata = {**record["metadata"], "event_timestamp": record["event_timestamp"]}
    if "latency_ms" in metadata:  # a float property: 12 is sent as 12.0
        metadata["latency_ms"] = float(metadata["latency_ms"])
    if task == "TextClassification":
        top = max(prediction["labels"], key=lambda lab: lab["score"])
        return record["inputs"], top["class"], top["score"], metadata
    if task == "TokenClassification":
        spans = [{"label": e["label"], "start": e["start"], "end": e["end"]} for e in prediction["entities"]]
        scores = [e["score"] for e in prediction["entities"]] or None  # the server wants no empty list
        return {"text": record["text"]}, spans, scores, metadata
    best = max(prediction["sentences"], key=lambda s: s["score"])
    return {"text": record["text"]}, best["text"], best["score"], metadata


def assert_same_as_v0(server: ArgillaV2Server, workspace: str, local: Ingest) -> None:
    for name, task in SAMPLE_DATASETS.items():
        v0 = {r["id"]: r for r in local.records(name)}
        stored = by_external_id(server.records(name, workspace))
        assert set(stored) == set(v0), name
        dataset = server.dataset(name, workspace)
        assert dataset["status"] == "ready"
        (question,) = dataset["questions"]
        for rid, record in v0.items():
            fields, value, score, metadata = expected_item(task, record)
            got = stored[rid]
            assert got["fields"] == fields
            assert got["metadata"] == metadata
            (suggestion,) = got["suggestions"]
            assert suggestion["question_id"] == question["id"]
            assert (suggestion["value"], suggestion["score"]) == (value, score), rid
            assert suggestion["agent"] == record["prediction"]["agent"]  # these URLs need no change
            assert suggestion["type"] == "model"
        types = {p["name"]: p["settings"]["type"] for p in dataset["metadata_properties"]}
        assert types == {
            "endpoint": "terms",
            "status": "integer",
            "latency_ms": "float",
            "request_id": "terms",
        }


def test_sample_logs_read_back_exactly_and_redelivery_updates(
    tmp_path: Path, ingest: Ingest, argilla_v2: ArgillaV2Server, workspace: str
):
    summary = ingest.json(str(SAMPLE_LOGS), env=argilla_v2.env(workspace))
    assert summary["target"] == f"argilla 2.8.0 {argilla_v2.url}, workspace {workspace}"
    assert summary["records_written"] == 490 and summary["rejected"] == 2
    local = Ingest(tmp_path / "local")
    local.cwd.mkdir()
    local(str(SAMPLE_LOGS))
    assert_same_as_v0(argilla_v2, workspace, local)
    spans = argilla_v2.dataset("monitoring_spacy", workspace)["questions"][0]["settings"]
    assert spans["type"] == "span" and spans["field"] == "text"
    assert sorted(o["value"] for o in spans["options"]) == ["DATE", "GPE", "ORG", "PERSON"]
    labels = argilla_v2.dataset("monitoring_transformers", workspace)["questions"][0]["settings"]
    assert labels["type"] == "label_selection"
    assert sorted(o["value"] for o in labels["options"]) == ["NEGATIVE", "POSITIVE"]

    server_ids = {r["external_id"]: r["id"] for r in argilla_v2.records("monitoring_spacy", workspace)}
    again = ingest.json(str(SAMPLE_LOGS), "--from-start", env=argilla_v2.env(workspace))
    assert again["records_written"] == 490
    assert {
        r["external_id"]: r["id"] for r in argilla_v2.records("monitoring_spacy", workspace)
    } == server_ids
    assert_same_as_v0(argilla_v2, workspace, local)


def test_push_from_the_store_gives_what_the_official_sdk_logs(
    ingest: Ingest, argilla_v2: ArgillaV2Server, workspace: str
):
    """The same predictions logged with argilla 2.8's SDK and with ``ingest push``."""
    ingest(str(SAMPLE_LOGS))
    summary = ingest.json("push", env=argilla_v2.env(workspace))
    assert summary["records_written"] == 490
    sdk_workspace = argilla_v2.new_workspace(f"{workspace}-sdk") and f"{workspace}-sdk"
    plan = {
        "url": argilla_v2.url,
        "api_key": argilla_v2.api_key,
        "workspace": sdk_workspace,
        "datasets": {
            name: {"task": task, "records": ingest.records(name)} for name, task in SAMPLE_DATASETS.items()
        },
    }
    (ingest.cwd / "plan.json").write_text(json.dumps(plan))
    proc = subprocess.run(
        [str(argilla_v2.python), "-c", SDK_SCRIPT, str(ingest.cwd / "plan.json")],
        capture_output=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"},
    )
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    for name in SAMPLE_DATASETS:
        ours = by_external_id(argilla_v2.records(name, workspace))
        theirs = by_external_id(argilla_v2.records(name, sdk_workspace))
        assert set(ours) == set(theirs) and len(ours) > 20
        for rid, record in ours.items():
            assert record["fields"] == theirs[rid]["fields"]
            (mine,), (sdk,) = record["suggestions"], theirs[rid]["suggestions"]
            for key in ("value", "score", "agent", "type"):
                assert mine[key] == sdk[key], (name, rid, key)
        ours_q = argilla_v2.dataset(name, workspace)["questions"][0]
        sdk_q = argilla_v2.dataset(name, sdk_workspace)["questions"][0]
        assert ours_q["name"] == sdk_q["name"]
        assert ours_q["settings"]["type"] == sdk_q["settings"]["type"]
        options = ours_q["settings"].get("options")
        if options is not None:
            assert {o["value"] for o in options} == {o["value"] for o in sdk_q["settings"]["options"]}


# Runs in the server's venv with the official SDK: the v0 records' predictions as the SDK
# takes them (rg.Suggestion per question), logged with ``records.log`` by record id.
SDK_SCRIPT = r"""
import json, sys
import argilla as rg

plan = json.load(open(sys.argv[1]))
client = rg.Argilla(api_url=plan["url"], api_key=plan["api_key"])
for name, spec in plan["datasets"].items():
    task, records = spec["task"], spec["records"]
    if task == "TextClassification":
        labels = sorted({l["class"] for r in records for l in r["prediction"]["labels"]})
        question = rg.LabelQuestion("label", labels=labels)
        fields = [rg.TextField("text")]
    elif task == "TokenClassification":
        labels = sorted({e["label"] for r in records for e in r["prediction"]["entities"]})
        question = rg.SpanQuestion("entities", field="text", labels=labels, allow_overlapping=True)
        fields = [rg.TextField("text")]
    else:
        question = rg.TextQuestion("output")
        fields = [rg.TextField("text")]
    settings = rg.Settings(fields=fields, questions=[question])
    dataset = rg.Dataset(name=name, workspace=plan["workspace"], settings=settings, client=client)
    dataset.create()
    out = []
    for r in records:
        p, agent = r["prediction"], r["prediction"]["agent"]
        if task == "TextClassification":
            top = max(p["labels"], key=lambda l: l["score"])
            s = rg.Suggestion("label", top["class"], score=top["score"], agent=agent, type="model")
            text = r["inputs"]["text"]
        elif task == "TokenClassification":
            spans = [{"label": e["label"], "start": e["start"], "end": e["end"]} for e in p["entities"]]
            scores = [e["score"] for e in p["entities"]] or None
            s = rg.Suggestion("entities", spans, score=scores, agent=agent, type="model")
            text = r["text"]
        else:
            best = max(p["sentences"], key=lambda x: x["score"])
            s = rg.Suggestion("output", best["text"], score=best["score"], agent=agent, type="model")
            text = r["text"]
        out.append(rg.Record(id=r["id"], fields={"text": text}, suggestions=[s]))
    dataset.records.log(out)
"""


def test_bad_key_exits_1_at_once_without_the_key(tmp_path: Path, ingest: Ingest, argilla_v2: ArgillaV2Server):
    log = write_log(tmp_path / "a.jsonl", [entry()])
    secret = "wrong.key.abcdef0123"
    started = time.monotonic()
    proc = ingest(str(log), env={**argilla_v2.env(), "ARGILLA_API_KEY": secret}, check=False)
    assert proc.returncode == 1
    assert time.monotonic() - started < 15  # no retrying a 401
    err = proc.stderr.decode()
    assert "HTTP 401" in err and argilla_v2.url in err and secret not in err


def test_unknown_label_after_publish_is_rejected_with_how_to_fix(
    tmp_path: Path, ingest: Ingest, argilla_v2: ArgillaV2Server, workspace: str
):
    def sentiment(text: str, labels: list[str], scores: list[float]) -> dict:
        return entry("/transformers/", request=[text], response=[{"labels": labels, "scores": scores}])

    first = write_log(tmp_path / "a.jsonl", [sentiment("good", ["NEGATIVE", "POSITIVE"], [0.1, 0.9])])
    assert ingest.json(str(first), env=argilla_v2.env(workspace))["records_written"] == 1
    later = write_log(
        tmp_path / "b.jsonl",
        [
            sentiment("meh", ["NEGATIVE", "NEUTRAL", "POSITIVE"], [0.1, 0.8, 0.1]),
            sentiment("bad", ["NEGATIVE", "POSITIVE"], [0.7, 0.3]),
        ],
    )
    summary = ingest.json(str(later), env=argilla_v2.env(workspace))
    assert summary["records_written"] == 1 and summary["rejected"] == 1
    # A record the sink refused: its line was read and mapped, the target did not fail.
    assert summary["lines"]["mapped"] == 2 and summary["lines"]["rejected"] == {}
    assert sum(summary["records"]["rejected"].values()) == 1 and summary["records"]["not_delivered"] == 0
    counts = summary["by_file"][str(later)]
    assert (counts["gave_records"], counts["rejected"]) == (1, 1)
    (reject,) = ingest.rejects()
    assert reject["file"] == str(later) and reject["line"] == 1 and reject["stage"] == "sink"
    assert reject["record"] == 0 and reject["offset"] == 0
    assert (
        "'NEUTRAL' is not an option of the published Argilla dataset 'monitoring_transformers'"
        in reject["reason"]
    )
    assert "labels = [...]" in reject["reason"] and "new dataset" in reject["reason"]
    stored = argilla_v2.records("monitoring_transformers", workspace)
    assert sorted(r["fields"]["text"] for r in stored) == ["bad", "good"]

    # The fix the reason gives: the labels declared in config, a new dataset.
    (ingest.cwd / "ingest.toml").write_text(
        '[endpoints."/transformers/"]\ndataset = "sentiment-v2"\n'
        'labels = ["NEGATIVE", "NEUTRAL", "POSITIVE"]\n'
    )
    fixed = ingest.json(str(later), "--config", "ingest.toml", "--from-start", env=argilla_v2.env(workspace))
    assert fixed["records_written"] == 2 and fixed["rejected"] == 0
    question = argilla_v2.dataset("sentiment-v2", workspace)["questions"][0]
    assert [o["value"] for o in question["settings"]["options"]] == ["NEGATIVE", "NEUTRAL", "POSITIVE"]


def test_fallback_options_when_a_run_has_seen_too_few_labels(
    tmp_path: Path, ingest: Ingest, argilla_v2: ArgillaV2Server, workspace: str
):
    one_label = entry("/clf/", request=["x"], response=[[{"label": "SPAM", "score": 0.9}]])
    no_entity = entry("/ner/", request=["nothing here"], response=[{"text": "nothing here", "entities": []}])
    log = write_log(tmp_path / "a.jsonl", [one_label, no_entity])
    summary = ingest.json(str(log), env=argilla_v2.env(workspace))
    assert summary["records_written"] == 2 and summary["rejected"] == 0
    label_q = argilla_v2.dataset("monitoring_clf", workspace)["questions"][0]["settings"]
    assert [o["value"] for o in label_q["options"]] == ["SPAM", "(other)"]
    span_q = argilla_v2.dataset("monitoring_ner", workspace)["questions"][0]["settings"]
    assert [o["value"] for o in span_q["options"]] == ["(other)"]
    (ner,) = argilla_v2.records("monitoring_ner", workspace)
    assert ner["suggestions"][0]["value"] == []


def test_a_422_for_one_record_isolates_it_and_delivers_the_rest(
    tmp_path: Path, ingest: Ingest, argilla_v2: ArgillaV2Server, workspace: str
):
    """A dataset made by hand whose request_id property allows some terms only: the server
    refuses one record of a batch (which our own checks cannot know) and names its position."""
    spaces = {w["name"]: w["id"] for w in argilla_v2.ok("GET", "/api/v1/me/workspaces")["items"]}
    dataset = argilla_v2.ok(
        "POST",
        "/api/v1/datasets",
        json={"name": "monitoring_transformers", "workspace_id": spaces[workspace]},
    )
    base = f"/api/v1/datasets/{dataset['id']}"
    text_field = {"name": "text", "title": "Text", "required": True, "settings": {"type": "text"}}
    argilla_v2.ok("POST", f"{base}/fields", json=text_field)
    options = [{"value": v, "text": v} for v in ("NEGATIVE", "POSITIVE")]
    settings = {"type": "label_selection", "options": options}
    question = {"name": "label", "title": "Label", "required": True, "settings": settings}
    argilla_v2.ok("POST", f"{base}/questions", json=question)
    allowed = [f"r{i}" for i in range(12) if i != 5]
    request_id = {"name": "request_id", "title": "request", "settings": {"type": "terms", "values": allowed}}
    argilla_v2.ok("POST", f"{base}/metadata-properties", json=request_id)
    argilla_v2.ok("PUT", f"{base}/publish")
    lines = [
        entry("/transformers/", request=[f"text {i}"], response=[{"labels": ["NEGATIVE", "POSITIVE"],
              "scores": [0.2, 0.8]}], request_id=f"r{i}")
        for i in range(12)
    ]  # fmt: skip
    log = write_log(tmp_path / "a.jsonl", lines)
    summary = ingest.json(str(log), "--batch-size", "4", env=argilla_v2.env(workspace))
    assert summary["records_written"] == 11 and summary["rejected"] == 1
    assert summary["lines"]["rejected"] == {} and summary["records"]["not_delivered"] == 0
    # per file, each line is one outcome: the line whose only record was refused gave none
    assert summary["by_file"][str(log)] == {"lines": 12, "gave_records": 11, "skipped": 0, "rejected": 1,
                                            "nul_bytes": 0}  # fmt: skip
    (reject,) = ingest.rejects()
    assert reject["file"] == str(log) and reject["line"] == 6 and reject["stage"] == "server"
    assert (
        reject["record"] == 0 and reject["offset"] == len(log.read_bytes().splitlines(keepends=True)[0]) * 5
    )
    assert "'r5' is not an allowed term" in reject["reason"] and "position" not in reject["reason"]
    stored = argilla_v2.records("monitoring_transformers", workspace)
    assert sorted(r["metadata"]["request_id"] for r in stored) == sorted(allowed)
    # The hand-made dataset declared no other properties and allows extra metadata (the
    # server's default), so the rest travels as extra metadata.
    assert all(r["suggestions"][0]["value"] == "POSITIVE" for r in stored)


def test_duplicate_ids_in_one_batch_are_sent_once(
    tmp_path: Path, ingest: Ingest, argilla_v2: ArgillaV2Server, workspace: str
):
    line = entry()
    log = write_log(tmp_path / "a.jsonl", [line, line, line])  # the same line: the same record id
    summary = ingest.json(str(log), env=argilla_v2.env(workspace))
    assert summary["records_written"] == 3 and summary["rejected"] == 0
    assert len(argilla_v2.records("monitoring_spacy", workspace)) == 1


def test_v0_paths_on_a_2x_server_are_not_taken_for_a_v0_server(
    argilla_v2: ArgillaV2Server, server: RubrixServer
):
    import httpx

    page = httpx.get(argilla_v2.url + "/api/_info")
    assert page.status_code == 200 and "<html" in page.text.lower()  # what fooled the v0 handshake
    assert detect_server_api(argilla_v2.url).api == "v2"
    assert detect_server_api(argilla_v2.url).version == "2.8.0"
    assert detect_server_api(server.url).api == "v0"  # the v0 test server has no /api/v1/version


def test_v0_api_forced_on_a_2x_server_fails_clearly(
    tmp_path: Path, ingest: Ingest, argilla_v2: ArgillaV2Server
):
    (ingest.cwd / "ingest.toml").write_text('[rubrix]\napi = "v0"\n')
    log = write_log(tmp_path / "a.jsonl", [entry()])
    proc = ingest(str(log), "--config", "ingest.toml", env=argilla_v2.env(), check=False)
    assert proc.returncode == 1
    assert "does not answer like a Rubrix server" in proc.stderr.decode()


def test_workspace_must_exist_and_be_chosen(
    tmp_path: Path, ingest: Ingest, argilla_v2: ArgillaV2Server, workspace: str
):
    log = write_log(tmp_path / "a.jsonl", [entry()])
    proc = ingest(str(log), env=argilla_v2.env("no-such-space"), check=False)
    assert proc.returncode == 1 and "workspace 'no-such-space' is not one of" in proc.stderr.decode()
    proc = ingest(str(log), env=argilla_v2.env(), check=False)  # the owner sees several
    assert proc.returncode == 1 and "choose a workspace" in proc.stderr.decode()


def test_an_annotator_key_stops_the_run_at_once_with_403(
    tmp_path: Path, ingest: Ingest, argilla_v2: ArgillaV2Server, workspace: str
):
    user = argilla_v2.ok(
        "POST",
        "/api/v1/users",
        json={
            "first_name": "Ann",
            "username": f"ann-{workspace}",
            "password": "annotator-pw",
            "role": "annotator",
        },
    )
    spaces = {w["name"]: w["id"] for w in argilla_v2.ok("GET", "/api/v1/me/workspaces")["items"]}
    argilla_v2.ok("POST", f"/api/v1/workspaces/{spaces[workspace]}/users", json={"user_id": user["id"]})
    log = write_log(tmp_path / "a.jsonl", [entry()])
    env = {**argilla_v2.env(workspace), "ARGILLA_API_KEY": user["api_key"]}
    proc = ingest(str(log), env=env, check=False)
    assert proc.returncode == 1
    err = proc.stderr.decode()
    assert "HTTP 403" in err and user["api_key"] not in err
    assert argilla_v2.dataset("monitoring_spacy", workspace) is None


def test_multi_label_records_get_a_multi_label_question(
    tmp_path: Path, ingest: Ingest, argilla_v2: ArgillaV2Server, workspace: str
):
    sigmoid = {"labels": ["sport", "tech", "food"], "scores": [0.9, 0.8, 0.1]}  # sums past 1: multi-label
    softmax = {"labels": ["sport", "tech", "food"], "scores": [0.1, 0.7, 0.2]}
    log = write_log(
        tmp_path / "a.jsonl",
        [
            entry("/topics/", request=["a"], response=[sigmoid]),
            entry("/topics/", request=["b"], response=[softmax]),
        ],
    )
    assert ingest.json(str(log), env=argilla_v2.env(workspace))["records_written"] == 2
    question = argilla_v2.dataset("monitoring_topics", workspace)["questions"][0]
    assert question["name"] == "labels" and question["settings"]["type"] == "multi_label_selection"
    got = {
        r["fields"]["text"]: r["suggestions"][0] for r in argilla_v2.records("monitoring_topics", workspace)
    }
    assert (got["a"]["value"], got["a"]["score"]) == (["sport", "tech"], [0.9, 0.8])
    assert (got["b"]["value"], got["b"]["score"]) == (["tech"], [0.7])


def test_agent_from_a_url_with_a_query_string(
    tmp_path: Path, ingest: Ingest, argilla_v2: ArgillaV2Server, workspace: str
):
    line = entry(url="http://models.internal:8000/spacy/?model=sm&user=ana@example.com")
    ingest(str(write_log(tmp_path / "a.jsonl", [line])), env=argilla_v2.env(workspace))
    (record,) = argilla_v2.records("monitoring_spacy", workspace)
    assert record["suggestions"][0]["agent"] == "http://models.internal:8000/spacy/"


def test_a_draft_left_by_a_crashed_run_is_completed_and_published(
    tmp_path: Path, ingest: Ingest, argilla_v2: ArgillaV2Server, workspace: str
):
    spaces = {w["name"]: w["id"] for w in argilla_v2.ok("GET", "/api/v1/me/workspaces")["items"]}
    draft = argilla_v2.ok(
        "POST", "/api/v1/datasets", json={"name": "monitoring_spacy", "workspace_id": spaces[workspace]}
    )
    argilla_v2.ok(
        "POST",
        f"/api/v1/datasets/{draft['id']}/fields",
        json={"name": "text", "title": "text", "required": True, "settings": {"type": "text"}},
    )
    summary = ingest.json(str(write_log(tmp_path / "a.jsonl", [entry()])), env=argilla_v2.env(workspace))
    assert summary["records_written"] == 1
    dataset = argilla_v2.dataset("monitoring_spacy", workspace)
    assert dataset["id"] == draft["id"] and dataset["status"] == "ready"
    assert [q["name"] for q in dataset["questions"]] == ["entities"]
    assert len(argilla_v2.records("monitoring_spacy", workspace)) == 1


def test_a_dataset_made_for_another_task_is_not_written_to(
    tmp_path: Path, ingest: Ingest, argilla_v2: ArgillaV2Server, workspace: str
):
    translation = entry("/translate/", request={"text": "Hello"}, response=[{"translation_text": "Bonjour"}])
    ingest(str(write_log(tmp_path / "a.jsonl", [translation])), env=argilla_v2.env(workspace))
    (ingest.cwd / "ingest.toml").write_text('[endpoints."/spacy/"]\ndataset = "monitoring_translate"\n')
    summary = ingest.json(str(write_log(tmp_path / "b.jsonl", [entry()])), "--config", "ingest.toml",
                          env=argilla_v2.env(workspace))  # fmt: skip
    assert summary["records_written"] == 0 and summary["rejected"] == 1
    assert "cannot hold TokenClassification records" in ingest.rejects()[0]["reason"]
    assert len(argilla_v2.records("monitoring_translate", workspace)) == 1
