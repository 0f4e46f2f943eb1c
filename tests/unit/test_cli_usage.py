"""Usage and configuration errors, in process with click's CliRunner: exit 2 (or 75 for a
held lock), one line on stderr, nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from ingest.cli import main
from ingest.sources.checkpoint import RunLock

LINE = {"ts": "2026-11-24T10:00:00Z", "path": "/a/", "status": 200, "request": "nice",
        "response": {"labels": ["POS"], "scores": [0.9]}}  # fmt: skip
CLEAN_ENV = dict.fromkeys(
    ["RUBRIX_API_URL", "ARGILLA_API_URL", "RUBRIX_API_KEY", "ARGILLA_API_KEY", "RUBRIX_WORKSPACE",
     "ARGILLA_WORKSPACE", "RUBRIX_INGEST_STORE", "RUBRIX_INGEST_CONFIG"]
)  # fmt: skip


@pytest.fixture
def cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.jsonl").write_text(json.dumps(LINE) + "\n")
    return tmp_path


def invoke(*args: str, env: dict[str, str | None] | None = None):
    return CliRunner().invoke(main, list(args), env={**CLEAN_ENV, **(env or {})})


@pytest.mark.parametrize(
    "args, config, message",
    [
        (["missing.jsonl"], None, "ingest: error: no such file or directory: missing.jsonl"),
        (["logs/*.jsonl"], None, "ingest: error: no file matches logs/*.jsonl"),
        (["a.jsonl", "-c", "c.toml"], "[endpoints.'/x/']\nmaper = 'text2text'\n", "unknown key 'maper'"),
        (["a.jsonl", "-c", "c.toml"], "[endpoints", "not valid TOML"),
        (["a.jsonl", "-c", "c.toml"], "[endpoints.'/x/']\ndataset = 'Bad.Name'\n", "invalid dataset name"),
        (
            ["a.jsonl", "-c", "c.toml"],
            "[endpoints.'/x/']\nmapper = 'sentiment'\n",
            "unknown mapper 'sentiment'",
        ),
        (["a.jsonl", "-c", "c.toml"], '[rubrix]\nconcurrency = "4"\n', "concurrency must be an integer"),
        (["a.jsonl", "-c", "nope.toml"], None, "cannot read config"),
        (["a.jsonl", "-e", "/x/", "--mapper", "nope:fn"], None, "cannot import 'nope'"),
        (["a.jsonl", "-e", "/x/", "--mapper", "./nope.py:fn"], None, "no such file"),
        (["a.jsonl", "--mapper", "text2text"], None, "give exactly one --endpoint"),
        (["a.jsonl", "-e", "/x/", "--dataset", "UPPER"], None, "invalid dataset name"),
        (["a.jsonl", "--since", "last tuesday"], None, "neither an ISO-8601 time nor a duration"),
        (["a.jsonl", "--since", "1d", "--until", "2d"], None, "--since must be before --until"),
        (["a.jsonl", "--concurrency", "0"], None, "Invalid value for '--concurrency'"),
        (["a.jsonl", "--every", "soon"], None, "is not a duration like 30s"),
        (["a.jsonl", "--every", "0s"], None, "give a duration above zero"),
        (["a.jsonl", "--max-rejects", "150%"], None, "give a share up to 100%"),
        (["push"], None, "push needs a server"),
        (["push", "--rubrix-url", "http://127.0.0.1:9"], None, "no local store at rubrix-store"),
        (["show"], None, "no local store at rubrix-store"),
        (["report"], None, "no local store at rubrix-store"),
    ],
)
def test_usage_errors_exit_2_before_writing(cwd: Path, args, config, message):
    if config is not None:
        (cwd / "c.toml").write_text(config)
    result = invoke(*args)
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert message in result.stderr
    assert not (cwd / "rubrix-store").exists()


def test_environment_names_the_config_and_the_store(cwd: Path):
    (cwd / "c.toml").write_text("[rubrix]\nconcurrency = 1.5\n")
    result = invoke("a.jsonl", env={"RUBRIX_INGEST_CONFIG": "c.toml"})
    assert result.exit_code == 2 and "concurrency must be an integer" in result.stderr
    result = invoke("show", env={"RUBRIX_INGEST_STORE": "elsewhere"})
    assert result.exit_code == 2 and "no local store at elsewhere" in result.stderr


def test_a_held_lock_exits_75(cwd: Path):
    with RunLock(cwd / "rubrix-store" / "_state.sqlite", wait=False):
        result = invoke("a.jsonl")
    assert result.exit_code == 75 and "another run holds the lock" in result.stderr


def test_a_run_in_process_writes_the_store_and_the_summary(cwd: Path):
    result = invoke("a.jsonl", "--json", "-q")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["records_written"] == 1 and summary["endpoints"]["/a/"]["dataset"] == "monitoring_a"
    again = json.loads(invoke("a.jsonl", "--json", "-q", "--from-start").stdout)
    assert again["skipped"] == {"already_stored": 1}
