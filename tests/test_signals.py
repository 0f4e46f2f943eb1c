"""Issue 14: a run that did nothing useful says so. Every test drives the real CLI (or the
real test server, or the real tutorial service) in a subprocess, as a user would."""

from __future__ import annotations

import json
import re
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT, SAMPLE_LOGS, Ingest, RubrixServer, Service, entry, free_port, write_log

SAMPLE_ENDPOINTS = ["/health", "/spacy/", "/transformers/", "/translate/"]
EXIT_TOO_MANY_REJECTS = 65


def warnings(proc: subprocess.CompletedProcess) -> list[str]:
    return [line for line in proc.stderr.decode().splitlines() if line.startswith("ingest: warning:")]


# -- the four mistakes of the issue ------------------------------------------------------------
def test_endpoint_without_its_trailing_slash_warns_and_the_fix_reads_again(ingest: Ingest) -> None:
    proc = ingest(str(SAMPLE_LOGS), "--endpoint", "/spacy", "-q")
    (warning,) = [w for w in warnings(proc) if "matched none" in w]
    assert "--endpoint /spacy matched none of the endpoints read" in warning
    for seen in SAMPLE_ENDPOINTS:
        assert seen in warning
    assert "did you mean /spacy/?" in warning
    # a new selection reads the files from their start: the fix brings the lines back
    fixed = ingest.json(str(SAMPLE_LOGS), "--endpoint", "/spacy/", "-q")
    assert fixed["records_written"] == 232 and fixed["lines_read"] == 266
    assert ingest.json(str(SAMPLE_LOGS), "--endpoint", "/spacy/", "-q")["lines_read"] == 0


def test_a_dry_run_warns_when_its_selection_matches_nothing(ingest: Ingest) -> None:
    # A dry run is where a new user checks a selection before the real run.
    config = ingest.cwd / "ingest.toml"
    config.write_text('[endpoints."/transformer/"]\ndataset = "sentiment"\n')
    for args in (["--endpoint", "/spacy"], ["--config", str(config)]):
        proc = ingest(str(SAMPLE_LOGS), *args, "--dry-run", "-q")
        (warning,) = [w for w in warnings(proc) if "matched none" in w]
        assert "did you mean" in warning
    assert not [w for w in warnings(ingest(str(SAMPLE_LOGS), "-e", "/spacy/", "--dry-run")) if "matched" in w]


def test_config_whose_endpoints_never_appear_warns_and_the_fix_reads_again(ingest: Ingest) -> None:
    config = ingest.cwd / "ingest.toml"
    config.write_text('[endpoints."/transformer/"]\ndataset = "sentiment"\n')
    proc = ingest(str(SAMPLE_LOGS), "--config", str(config), "-q")
    (warning,) = [w for w in warnings(proc) if "matched none" in w]
    assert "the config's endpoints (/transformer/) matched none of the endpoints read" in warning
    assert "did you mean /transformers/?" in warning
    config.write_text('[endpoints."/transformers/"]\ndataset = "sentiment"\n')
    fixed = ingest.json(str(SAMPLE_LOGS), "--config", str(config), "-q")
    assert fixed["records_written"] == 232
    assert not [w for w in warnings(ingest(str(SAMPLE_LOGS), "--config", str(config), "-q"))]


def test_endpoints_whose_paths_give_one_dataset_name_are_warned_about(ingest: Ingest, tmp_path: Path) -> None:
    # Names derived from paths keep [a-z0-9-]: two endpoints named in another script both give
    # "monitoring_root", and two sentiment models would be mixed in one dataset without a word.
    def sentiment(path: str, label: str) -> dict:
        return entry(path, request=["très bien"], response=[{"labels": [label, "x"], "scores": [0.9, 0.1]}])

    log = write_log(tmp_path / "a.jsonl", [sentiment("/情感/", "POS"), sentiment("/观点/", "AGREE")] * 3)
    proc = ingest(str(log), "--json", "-q")
    (warning,) = warnings(proc)
    assert "endpoints /情感/, /观点/ went to one dataset, monitoring_root" in warning
    assert "give each its own dataset in the config" in warning
    assert json.loads(proc.stdout)["warnings"] == [warning.removeprefix("ingest: warning: ")]
    assert "went to one dataset" in ingest(str(log), "--from-start").stderr.decode()  # the table too
    # a config that names the datasets, or sends both to one on purpose, is not warned about
    for toml in (
        '[endpoints."/情感/"]\ndataset = "sentiment"\n[endpoints."/观点/"]\ndataset = "stance"\n',
        '[endpoints."/情感/"]\ndataset = "opinions"\n[endpoints."/观点/"]\ndataset = "opinions"\n',
        # ... even by the very name their paths give (the tutorial's monitoring_spacy for /spacy/
        # and /spacy, say): the config said so
        '[endpoints."/情感/"]\ndataset = "monitoring_root"\n'
        '[endpoints."/观点/"]\ndataset = "monitoring_root"\n',
    ):
        config = tmp_path / "ingest.toml"
        config.write_text(toml, encoding="utf-8")
        proc = ingest(str(log), "--config", str(config), "--store", str(tmp_path / "other"), "-q")
        assert not warnings(proc), toml
    # one named, the other left to its path's name: that one shares only by its name
    toml = '[endpoints."/情感/"]\ndataset = "monitoring_root"\n[endpoints."/观点/"]\n'
    config.write_text(toml, encoding="utf-8")
    proc = ingest(str(log), "--config", str(config), "--store", str(tmp_path / "third"), "-q")
    assert ["went to one dataset, monitoring_root" in w for w in warnings(proc)] == [True]
    sample = warnings(ingest(str(SAMPLE_LOGS), "--store", str(tmp_path / "sample"), "-q"))
    assert not [w for w in sample if "one dataset" in w]


def test_a_new_target_reads_the_files_from_their_start(ingest: Ingest, server: RubrixServer) -> None:
    assert ingest.json(str(SAMPLE_LOGS), "-q")["records_written"] == 490
    sent = ingest.json(str(SAMPLE_LOGS), "-q", env=server.env())
    assert sent["records_written"] == 490 and sent["target"].startswith("rubrix")
    assert len(server.records("monitoring_spacy")) == 232
    # the same server, another workspace: another target
    other = ingest.json(str(SAMPLE_LOGS), "-q", "--workspace", "team-a", env=server.env())
    assert other["records_written"] == 490
    assert len(server.records("monitoring_spacy", "team-a")) == 232
    # each target keeps its own checkpoints
    assert ingest.json(str(SAMPLE_LOGS), "-q", env=server.env())["lines_read"] == 0
    assert ingest.json(str(SAMPLE_LOGS), "-q")["lines_read"] == 0


def other_format_log(path: Path) -> Path:
    line = {"time_": "2026-11-24T10:00:00Z", "route": "/spacy/", "code": 200, "req": ["x"], "resp": []}
    return write_log(path, [line] * 3)


def test_every_line_rejected_gives_one_warning_under_quiet_and_reasons(
    ingest: Ingest, tmp_path: Path
) -> None:
    log = other_format_log(tmp_path / "other.jsonl")
    proc = ingest(str(log), "-q")
    assert proc.returncode == 0
    (warning,) = warnings(proc)
    assert proc.stderr.decode().count("\n") == 1
    assert "3 of 3 lines rejected" in warning and "missing field 'ts'" in warning
    assert "_rejects/" in warning
    table = ingest(str(log), "--from-start").stderr.decode()
    assert "rejected lines: missing field 'ts', 'path', 'status', 'request', 'response' 3" in table


@pytest.mark.parametrize("limit", ["0", "2", "50%"])
def test_max_rejects_fails_the_run_and_leaves_the_checkpoint(
    ingest: Ingest, tmp_path: Path, limit: str
) -> None:
    log = other_format_log(tmp_path / "other.jsonl")
    proc = ingest(str(log), "-q", "--max-rejects", limit, "--json", check=False)
    assert proc.returncode == EXIT_TOO_MANY_REJECTS, proc.stderr.decode()
    out = json.loads(proc.stdout)
    assert out["ok"] is False and out["exit_code"] == EXIT_TOO_MANY_REJECTS
    assert f"--max-rejects {limit}" in out["error"] and "exceeded" in out["error"]
    assert out["lines_read"] == 3
    assert f"--max-rejects {limit}" in proc.stderr.decode()
    # a failed run moved no checkpoint: the lines are read again
    assert ingest.json(str(log), "-q")["lines_read"] == 3


def test_max_rejects_not_exceeded(ingest: Ingest) -> None:
    out = ingest.json(str(SAMPLE_LOGS), "-q", "--max-rejects", "1%")
    assert out["ok"] is True and out["exit_code"] == 0 and out["rejected"] == 2
    proc = ingest(str(SAMPLE_LOGS), "--from-start", "--max-rejects", "nope", check=False)
    assert proc.returncode == 2 and "--max-rejects" in proc.stderr.decode()


# -- rejects by reason: every column adds up ---------------------------------------------------
def test_summary_columns_add_up(ingest: Ingest, tmp_path: Path) -> None:
    bad = {"labels": ["a", "b"], "scores": [0.5, 1.5]}
    good = [{"labels": ["NEGATIVE", "POSITIVE"], "scores": [0.1, 0.9]}]
    extra = write_log(tmp_path / "extra.jsonl", [
        entry("/transformers/", ["x", "y"], [good[0], bad], request_id="two-records-one-bad"),
        "{broken",
        "",
    ])  # fmt: skip
    out = ingest.json(str(SAMPLE_LOGS), str(extra))
    lines = out["lines"]
    assert lines["read"] == out["lines_read"] == 266 + 3
    assert lines["read"] == lines["mapped"] + sum(lines["skipped"].values()) + sum(lines["rejected"].values())
    assert lines["rejected"] == {"invalid JSON": 2, "batch size mismatch": 1}
    records = out["records"]
    assert records["rejected"] == {"score N is not within [N, N]": 1}
    assert records["mapped"] == records["written"] + records["already_stored"] + sum(
        records["skipped"].values()
    ) + sum(records["rejected"].values())
    per_endpoint = out["endpoints"]
    assert sum(e["lines"] for e in per_endpoint.values()) == lines["read"]
    for name, e in per_endpoint.items():
        assert e["lines"] == e["lines_mapped"] + sum(e["lines_skipped"].values()) + sum(
            e["lines_rejected"].values()
        ), name
        assert e["records_mapped"] == e["written"] + e["records_already_stored"] + sum(
            e["records_skipped"].values()
        ) + sum(e["records_rejected"].values()), name
    assert per_endpoint["-"]["lines"] == 3  # the unparsed lines and the blank one count like others

    table = ingest(str(SAMPLE_LOGS), str(extra), "--from-start").stderr.decode().splitlines()
    header = next(i for i, line in enumerate(table) if line.startswith("endpoint"))
    rows = [line.split() for line in table[header + 1 :] if line.startswith(("/", "(unparsed"))]
    numbers = [[int(cell) for cell in row if cell.isdigit()] for row in rows]
    columns = list(zip(*numbers, strict=True))
    assert sum(columns[0]) == 269  # lines read
    assert sum(columns[0]) == sum(sum(c) for c in columns[1:4])  # mapped + skipped + rejected
    assert sum(columns[4]) == sum(sum(c) for c in columns[5:9])  # records
    assert any(line.startswith("rejected lines: ") and "invalid JSON 2" in line for line in table)
    assert any(line.startswith("rejected records: score N is not within") for line in table)


# -- push: checkpoints per target, time windows -----------------------------------------------
def test_push_keeps_checkpoints_per_target_and_takes_a_window(
    ingest: Ingest, tmp_path: Path, server: RubrixServer
) -> None:
    ingest(str(SAMPLE_LOGS), "-q")
    stored = ingest.dataset("monitoring_spacy")
    since = "2026-11-24T12:00:00"
    in_window = int((stored["event_timestamp"] >= "2026-11-24T12:00:00Z").sum())
    assert 0 < in_window < 232
    windowed = ingest.json("push", "-q", "--since", since, "--dataset", "monitoring_spacy", env=server.env())
    assert windowed["records_written"] == in_window
    assert len(server.records("monitoring_spacy")) == in_window
    # a window leaves the checkpoints alone: the first full push sends everything
    assert ingest.json("push", "-q", env=server.env())["records_written"] == 490
    assert ingest.json("push", "-q", env=server.env())["records_written"] == 0  # already pushed there
    assert ingest.json("push", "-q", "--workspace", "team-a", env=server.env())["records_written"] == 490
    # new records in the store: only they are pushed
    log = write_log(tmp_path / "new.jsonl", [entry(request_id="new-1"), entry(request_id="new-2")])
    ingest(str(log), "-q")
    assert ingest.json("push", "-q", env=server.env())["records_written"] == 2
    assert len(server.records("monitoring_spacy")) == 234


# -- --json on failure -------------------------------------------------------------------------
def test_json_on_a_delivery_failure(ingest: Ingest, server: RubrixServer) -> None:
    server.faults(pass_next=4, fail_next=1000, fail_status=503)
    proc = ingest(str(SAMPLE_LOGS), "--json", "-q", "--retry-for", "1", "--batch-size", "50",
                  "--concurrency", "1", env=server.env(), check=False)  # fmt: skip
    assert proc.returncode == 1
    out = json.loads(proc.stdout)
    assert out["ok"] is False and out["exit_code"] == 1 and "503" in out["error"]
    assert out["lines_read"] > 0 and out["records_written"] >= 0
    assert "endpoints" in out and out["target"].startswith("rubrix")


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["{log}", "--config", "missing.toml"], 2, "cannot read config"),
        (["{log}", "--show", "2"], 2, "--show only applies with --dry-run"),
        (["{log}", "--rubrix-url", "localhost:6900"], 2, "no scheme"),
        (["show", "nope"], 2, "no dataset 'nope'"),
    ],
)
def test_json_on_usage_errors(
    ingest: Ingest, tmp_path: Path, args: list[str], code: int, message: str
) -> None:
    ingest(str(SAMPLE_LOGS), "-q")
    log = write_log(tmp_path / "a.jsonl", [entry()])
    started = time.monotonic()
    proc = ingest(*[a.replace("{log}", str(log)) for a in args], "--json", check=False)
    assert time.monotonic() - started < 20  # no retries
    assert proc.returncode == code, proc.stderr.decode()
    out = json.loads(proc.stdout)
    assert out["ok"] is False and out["exit_code"] == code and message in out["error"]
    assert message in proc.stderr.decode()


# -- exit codes --------------------------------------------------------------------------------
def big_log(path: Path, n: int) -> Path:
    with open(path, "w") as fh:
        for i in range(n):
            response = [{"entities": [{"label": "GPE", "start": 0, "end": 5}]}]
            fh.write(json.dumps(entry(request=[f"Paris {i}"], request_id=f"r{i}", response=response)) + "\n")
    return path


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_on_a_one_shot_run_saves_progress_and_exits_128_plus(
    ingest: Ingest, tmp_path: Path, signum: int, code: int
) -> None:
    n = 120_000
    log = big_log(tmp_path / "big.jsonl", n)
    proc = subprocess.Popen([sys.executable, "-m", "ingest", str(log), "--json", "-q", "--jobs", "1"],
                            cwd=ingest.cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    time.sleep(2.0)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err.decode()
    summary = json.loads(out)
    assert summary["ok"] is False and summary["interrupted"] is True and summary["exit_code"] == code
    done = summary["lines_read"]
    assert 0 < done < n
    rest = ingest.json(str(log), "-q")
    assert rest["lines_read"] == n - done  # progress was saved
    assert len(ingest.dataset("monitoring_spacy")) == n


def test_show_without_dry_run_is_a_usage_error(ingest: Ingest) -> None:
    proc = ingest(str(SAMPLE_LOGS), "--show", "2", check=False)
    assert proc.returncode == 2 and "--show only applies with --dry-run" in proc.stderr.decode()
    assert not ingest.store.exists()


@pytest.mark.parametrize("where", ["flag", "env", "config"])
def test_a_server_url_without_a_scheme_is_a_usage_error(ingest: Ingest, where: str) -> None:
    args, env = [str(SAMPLE_LOGS)], {}
    if where == "flag":
        args += ["--rubrix-url", "localhost:6900"]
    elif where == "env":
        env = {"RUBRIX_API_URL": "localhost:6900"}
    else:
        (ingest.cwd / "ingest.toml").write_text('[rubrix]\nurl = "localhost:6900"\n')
        args += ["--config", "ingest.toml"]
    started = time.monotonic()
    proc = ingest(*args, env=env, check=False)
    assert proc.returncode == 2, proc.stderr.decode()
    assert time.monotonic() - started < 15
    err = proc.stderr.decode()
    assert "localhost:6900" in err and "no scheme" in err and "http://localhost:6900" in err
    assert not (ingest.store / "_state.sqlite").exists()


@pytest.mark.parametrize("command", ["show", "push", "report"])
def test_an_unknown_dataset_is_the_same_usage_error_everywhere(ingest: Ingest, command: str) -> None:
    ingest(str(SAMPLE_LOGS), "-q")
    args = {"show": ["show", "monitoring_spacey"], "push": ["push", "--dataset", "monitoring_spacey"],
            "report": ["report", "--dataset", "monitoring_spacey"]}[command]  # fmt: skip
    env = {"RUBRIX_API_URL": "http://127.0.0.1:9"} if command == "push" else None
    proc = ingest(*args, env=env, check=False)
    assert proc.returncode == 2
    err = proc.stderr.decode()
    assert "no dataset 'monitoring_spacey' in rubrix-store" in err
    assert "it has: monitoring_spacy, monitoring_transformers, monitoring_translate" in err
    assert "did you mean monitoring_spacy?" in err


# -- config paths ------------------------------------------------------------------------------
def test_store_and_state_in_a_config_are_relative_to_the_config(ingest: Ingest, tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "conf").mkdir(parents=True)
    config = project / "conf" / "ingest.toml"
    config.write_text('store = "../data/store"\nstate = "../data/state.sqlite"\n')
    elsewhere = Ingest(tmp_path / "elsewhere")
    elsewhere.cwd.mkdir()
    out = elsewhere.json(str(SAMPLE_LOGS), "--config", str(config), "-q")
    assert out["records_written"] == 490
    assert (project / "data" / "store" / "monitoring_spacy").is_dir()
    assert (project / "data" / "state.sqlite").exists()
    assert not (elsewhere.cwd / "data").exists() and not (elsewhere.cwd / "rubrix-store").exists()
    # show and report find the same store through --config
    shown = elsewhere("show", "--config", str(config)).stdout.decode()
    assert "monitoring_spacy: 232 TokenClassification records" in shown
    report = json.loads(elsewhere("report", "--config", str(config), "--json").stdout)
    assert report["datasets"]["monitoring_spacy"]["records"] == 232


def test_a_mapper_file_in_a_config_is_relative_to_the_config(ingest: Ingest, tmp_path: Path) -> None:
    # As store and state are: cron starts the run in the home directory.
    project = tmp_path / "project"
    project.mkdir()
    (project / "mymappers.py").write_text(
        "def upper(inputs, outputs):\n"
        "    sentences = [{'text': 'x', 'score': 1.0}]\n"
        "    return {'text': str(inputs), 'prediction': {'agent': 'mine', 'sentences': sentences}}\n"
    )
    config = project / "ingest.toml"
    config.write_text('store = "store"\n[endpoints."/translate/"]\nmapper = "./mymappers.py:upper"\n')
    elsewhere = Ingest(tmp_path / "elsewhere")
    elsewhere.cwd.mkdir()
    out = elsewhere.json(str(SAMPLE_LOGS), "--config", str(config), "-q")
    assert out["records_written"] == 26
    # an absolute path stays as it is
    absolute = f'mapper = "{project}/mymappers.py:upper"'
    config.write_text(f'store = "store2"\n[endpoints."/translate/"]\n{absolute}\n')
    assert elsewhere.json(str(SAMPLE_LOGS), "--config", str(config), "-q")["records_written"] == 26


# -- help that teaches -------------------------------------------------------------------------
HELPS = [["--help"], ["run", "--help"], ["push", "--help"], ["show", "--help"], ["report", "--help"],
         ["backfill", "--help"]]  # fmt: skip


@pytest.mark.parametrize("args", HELPS, ids=lambda a: " ".join(a))
def test_help_ends_with_examples_and_cuts_nothing(ingest: Ingest, args: list[str]) -> None:
    text = ingest(*args, env={"COLUMNS": "100"}).stdout.decode()
    lines = [line.strip() for line in text.rstrip().splitlines()]
    examples = lines[lines.index("Examples:") + 1 :]
    assert 2 <= len(examples) <= 4, text
    assert all(re.match(r"^([A-Z_]+=\S+ )*ingest ", e) for e in examples), text
    body = "\n".join(line for line in lines if not line.startswith("Usage:"))
    assert "..." not in body, text  # nothing cut off (click shortens long command help with ...)
    # the default store is written one way everywhere
    assert all(m == "./rubrix-store" for m in re.findall(r"\S*rubrix-store", text)), text


# -- the test server ---------------------------------------------------------------------------
def test_the_test_server_says_where_it_is_and_what_it_accepts() -> None:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tests.rubrix_server", "--port", str(port)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        banner = [proc.stdout.readline().decode() for _ in range(4)]
        server = RubrixServer(port=port)
        server.wait_ready()
    finally:
        proc.terminate()
        proc.wait(10)
    text = "".join(banner)
    assert f"http://127.0.0.1:{port}" in text
    assert "API key it accepts: argilla.apikey" in text
    assert "workspaces: argilla, team-a" in text
    readme = (ROOT / "README.md").read_text()
    assert "argilla.apikey" in readme and "team-a" in readme


# -- the report --------------------------------------------------------------------------------
def test_rereads_do_not_double_the_traffic(ingest: Ingest, tmp_path: Path, server: RubrixServer) -> None:
    ingest(str(SAMPLE_LOGS), "-q")
    report = ["report", "--json"]
    before = json.loads(ingest(*report).stdout)["datasets"]["monitoring_spacy"]["endpoints"]
    ingest(str(SAMPLE_LOGS), "-q", "--from-start")
    ingest(str(SAMPLE_LOGS), "-q", "--since", "2020-01-01")
    ingest(str(SAMPLE_LOGS), "-q", "--endpoint", "/spacy/")  # a new selection reads them again
    ingest(str(SAMPLE_LOGS), "-q", env=server.env())  # a new target too
    after = json.loads(ingest(*report).stdout)
    assert after["datasets"]["monitoring_spacy"]["endpoints"] == before
    assert before["/spacy/"]["requests"] == 115
    assert after["runs"]["count"] == 5


def test_latency_lines_break_across_hours_without_data(ingest: Ingest, tmp_path: Path) -> None:
    hours = ["2026-11-24T08:10:00Z", "2026-11-24T09:10:00Z", "2026-11-24T13:10:00Z", "2026-11-24T14:10:00Z"]
    log = write_log(tmp_path / "a.jsonl", [
        entry(ts=ts, latency_ms=10.0 * (i + 1), request_id=str(i)) for i, ts in enumerate(hours)
    ])  # fmt: skip
    ingest(str(log), "-q")
    metrics = json.loads(ingest("report", "--json").stdout)["datasets"]["monitoring_spacy"]
    over_time = metrics["latency_ms"]["over_time"]
    assert [row["p50"] is None for row in over_time] == [False, False, True, True, True, False, False]
    page = tmp_path / "r.html"
    ingest("report", "-o", str(page))
    html = page.read_text()
    figure = html[: html.index("Latency percentiles over time")]
    figure = figure[figure.rindex("<figure") :]
    assert figure.count('class="line p50"') == 2  # two pieces, not one line across the gap


def test_an_empty_window_says_what_the_store_holds(ingest: Ingest, tmp_path: Path) -> None:
    ingest(str(SAMPLE_LOGS), "-q")
    proc = ingest("report", "--since", "2030-01-01", "-o", str(tmp_path / "r.html"))
    err = proc.stderr.decode()
    assert "no records from 2030-01-01 00:00 UTC to now" in err
    assert "the store holds records from 2026-11-24" in err
    assert "the store holds records from 2026-11-24" in (tmp_path / "r.html").read_text()
    out = json.loads(ingest("report", "--since", "2030-01-01", "--json").stdout)
    assert out["store_range"]["first"].startswith("2026-11-24")


def test_report_starts_quickly_on_a_small_store(ingest: Ingest, tmp_path: Path) -> None:
    ingest(str(SAMPLE_LOGS), "-q")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    proc = ingest("report", "-o", str(tmp_path / "r.html"))
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    assert b"report of 3 datasets, 490 records" in proc.stderr
    # CPU time, which a busy machine does not inflate; wall time with room for one.
    assert cpu < 1.5, f"ingest report used {cpu:.2f}s of CPU"
    assert wall < 6, f"ingest report took {wall:.2f}s"
    importtime = subprocess.run([sys.executable, "-X", "importtime", "-m", "ingest", "report", "--json"],
                                cwd=ingest.cwd, capture_output=True, check=True).stderr.decode()  # fmt: skip
    assert "matplotlib" not in importtime


# -- the tutorial service ----------------------------------------------------------------------
def test_tutorial_service_builds_its_model_once_and_says_so(tmp_path: Path) -> None:
    pytest.importorskip("spacy")
    pytest.importorskip("transformers")
    models = tmp_path / "models"
    env = {"ACCESS_LOG": str(tmp_path / "access.jsonl"), "TUTORIAL_MODELS_DIR": str(models)}
    service = Service("examples.tutorial_service.main:app", tmp_path, env, workers=2)
    service.start(ready_path="/", seconds=300)
    try:
        response = httpx.post(service.url + "/transformers/", json=["I really like rubrix!"], timeout=60)
        assert response.status_code == 200
    finally:
        output = service.stop()
    assert output.count("first start: training the stand-in sentiment model") == 1, output
    assert output.count("stand-in sentiment model built in") == 1, output
    assert (models / "tiny-sentiment" / "config.json").exists()
    assert not list(models.glob("*.building-*"))
    # a second start loads what the first built
    again = Service("examples.tutorial_service.main:app", tmp_path, env, workers=1)
    again.start(ready_path="/", seconds=300)
    output = again.stop()
    assert "training" not in output and "stand-in sentiment model from" in output


def test_readme_documents_the_exit_codes() -> None:
    readme = (ROOT / "README.md").read_text()
    for code in ("0", "1", "2", "65", "75", "130", "143"):
        assert re.search(rf"\b{code}\b", readme[readme.index("Exit codes") :][:2000]), code
