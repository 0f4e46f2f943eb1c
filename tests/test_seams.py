"""The four loose seams of issue 12, end to end: real processes, the real test server."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import SAMPLE_LOGS, Ingest, RubrixServer, entry, write_log

SENTIMENT = entry(path="/a/", request="nice", response={"labels": ["POS", "NEG"], "scores": [0.9, 0.1]})


def test_url_in_config_and_in_the_environment_the_environment_wins(ingest: Ingest, server: RubrixServer):
    # was: TypeError "got multiple values for keyword argument 'url'"
    (ingest.cwd / "ingest.toml").write_text('[rubrix]\nurl = "http://127.0.0.1:9"\nretry_for = 1\n')
    summary = ingest.json(str(SAMPLE_LOGS), "--config", "ingest.toml", env=server.env())
    assert summary["records_written"] == 490 and summary["target"] == f"rubrix {server.url}"
    assert len(server.records("monitoring_spacy")) == 232
    # and the flag beats both
    proc = ingest(str(SAMPLE_LOGS), "-c", "ingest.toml", "--rubrix-url", "http://127.0.0.1:9", "-q",
                  "--from-start", env=server.env(), check=False)  # fmt: skip
    assert proc.returncode == 1 and "cannot reach http://127.0.0.1:9" in proc.stderr.decode()


def test_a_string_where_a_number_belongs_is_a_config_error_exit_2(tmp_path: Path, ingest: Ingest):
    # was: a traceback and exit 1
    (ingest.cwd / "ingest.toml").write_text('[rubrix]\nurl = "http://127.0.0.1:9"\nconcurrency = "4"\n')
    log = write_log(tmp_path / "a.jsonl", [SENTIMENT])
    proc = ingest(str(log), "--config", "ingest.toml", check=False)
    stderr = proc.stderr.decode()
    assert proc.returncode == 2, stderr
    assert stderr == "ingest: error: [rubrix] concurrency must be an integer, not a string ('4')\n"
    assert not ingest.store.exists()


CONTRADICTING_TAGS = """
[endpoints."/a/"]
dataset = "shared"
tags = { model = "v1" }

[endpoints."/b/"]
dataset = "shared"
tags = { model = "v2" }
"""

CONTRADICTING_TASKS = """
[endpoints."/a/"]
dataset = "shared"
mapper = "text_classification"

[endpoints."/b/"]
dataset = "shared"
mapper = "text2text"
"""


def test_routes_giving_one_dataset_contradicting_settings_are_a_config_error(tmp_path: Path, ingest: Ingest):
    log = write_log(tmp_path / "a.jsonl", [SENTIMENT])
    for config, what in ((CONTRADICTING_TAGS, "tags"), (CONTRADICTING_TASKS, "tasks")):
        (ingest.cwd / "ingest.toml").write_text(config)
        proc = ingest(str(log), "--config", "ingest.toml", check=False)
        stderr = proc.stderr.decode()
        assert proc.returncode == 2, stderr
        assert "endpoints /a/ and /b/" in stderr and "'shared'" in stderr and what in stderr
        assert not ingest.store.exists()


TWO_WORKSPACES = """
[endpoints."/a/"]
dataset = "shared"
workspace = "team-a"
tags = { team = "a" }

[endpoints."/b/"]
dataset = "shared"
tags = { team = "default" }
"""


def test_one_dataset_name_in_two_workspaces_is_two_datasets(
    tmp_path: Path, ingest: Ingest, server: RubrixServer
):
    # was: the second endpoint's records went out with the first one's workspace and tags
    (ingest.cwd / "ingest.toml").write_text(TWO_WORKSPACES)
    b = {**SENTIMENT, "path": "/b/", "request": "fine"}
    log = write_log(tmp_path / "a.jsonl", [SENTIMENT, b, {**SENTIMENT, "request": "good"}])
    summary = ingest.json(str(log), "--config", "ingest.toml", env=server.env())
    assert summary["records_written"] == 3
    in_a = sorted(r["inputs"]["text"] for r in server.records("shared", "team-a"))
    in_default = [r["inputs"]["text"] for r in server.records("shared")]
    assert in_a == ["good", "nice"] and in_default == ["fine"]
    assert server.dataset("shared", "team-a")["tags"] == {"team": "a"}
    assert server.dataset("shared")["tags"] == {"team": "default"}
    # The local store keeps one dataset per name: the same config there is a config error.
    proc = ingest(str(log), "--config", "ingest.toml", check=False)
    assert proc.returncode == 2 and "endpoints /a/ and /b/" in proc.stderr.decode()


USER_MAPPERS = """
def fn(inputs, outputs):
    return {"inputs": {"text": "user: " + inputs},
            "prediction": {"labels": [{"class": "USER", "score": 1.0}]}}
"""


def test_a_users_mappers_py_neither_breaks_ingest_nor_is_shadowed(tmp_path: Path, ingest: Ingest):
    # was: `python -m ingest` imported the user's mappers.py as our package and broke;
    # --mapper mappers:fn found our package instead of the user's module
    (ingest.cwd / "mappers.py").write_text(USER_MAPPERS)
    log = write_log(tmp_path / "a.jsonl", [SENTIMENT, {**SENTIMENT, "path": "/b/"}])
    summary = ingest.json(str(log))  # built-in mappers, auto-detected
    assert summary["records_written"] == 2
    assert ingest.records("monitoring_a")[0]["prediction"]["agent"] == "/a/"
    for name in ("mappers:fn", "./mappers.py:fn", str(ingest.cwd / "mappers.py") + ":fn"):
        ingest(str(log), "-e", "/a/", "--dataset", "user", "--mapper", name, "--from-start")
    (record,) = ingest.records("user")  # the same record id each time: replaced, not duplicated
    assert record["inputs"]["text"] == "user: nice"
    # a file path next to a module of ours keeps ours usable for the other routes
    config = '[endpoints."/a/"]\nmapper = "./mappers.py:fn"\ndataset = "mixed"\n[endpoints."/b/"]\n'
    (ingest.cwd / "ingest.toml").write_text(config)
    other = Ingest(ingest.cwd)
    other.store = ingest.cwd / "other"
    ingest(str(log), "-c", "ingest.toml", "--store", "other")
    assert [r["inputs"]["text"] for r in other.records("mixed")] == ["user: nice"]
    assert other.records("monitoring_b")[0]["prediction"]["labels"][0]["class"] == "POS"
