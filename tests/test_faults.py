"""Issue 13: no bad byte stops the pipeline; every fault stays with its line or its file.

One reproduction per fault, each through the real CLI on real files. The rules they check:
a line that cannot be parsed or mapped is a reject of that line (or of that record), a file
that cannot be opened or read is reported by name and reason, the other files are read, and
the run exits 3 (some input could not be read); only the target's failure stops a run.
"""

from __future__ import annotations

import gzip
import json
import os
import random
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import Ingest, entry, write_log

EXIT_INPUT = 3
TC_RESPONSE = [{"labels": ["NEGATIVE", "POSITIVE"], "scores": [0.1, 0.9]}]


def line(i: int, **fields) -> str:
    """A distinct valid line: one record."""
    ner = [{"entities": [{"label": "GPE", "start": 0, "end": 5}]}]
    return json.dumps(entry(request=[f"Paris {i}"], response=ner, request_id=f"r{i}", **fields))


def unprivileged(ingest: Ingest) -> Ingest:
    """Root reads any file: drop the capabilities that let it, so a mode 000 file is unreadable."""
    if os.geteuid() == 0:
        if not shutil.which("setpriv"):
            pytest.skip("running as root without setpriv: permissions do not stop reads")
        ingest.prefix = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search"]
    return ingest


def no_traceback(proc: subprocess.CompletedProcess) -> None:
    assert b"Traceback" not in proc.stderr, proc.stderr.decode()


def run_json(ingest: Ingest, *args: str, code: int = 0, **kwargs) -> dict:
    proc = ingest(*args, "--json", check=False, **kwargs)
    no_traceback(proc)
    assert proc.returncode == code, proc.stderr.decode()
    return json.loads(proc.stdout)


def test_timestamps_out_of_range_reject_their_line_only(tmp_path: Path, ingest: Ingest):
    log = tmp_path / "a.jsonl"
    bad = [
        json.dumps(entry(ts="0001-01-01T00:30:00+01:00")),  # before year 1 in UTC
        json.dumps(entry(ts="9999-12-31T23:30:00-01:00")),  # after year 9999 in UTC
        json.dumps(entry(ts=1e300)),
        json.dumps(entry(ts=1)).replace('"ts": 1', '"ts": ' + "9" * 400),  # beyond any float
        json.dumps(entry(ts="-1e400")),
    ]
    log.write_text("\n".join([line(0), *bad, line(1)]) + "\n")
    summary = run_json(ingest, str(log))
    assert summary["records_written"] == 2
    rejects = ingest.rejects()
    assert [r["line"] for r in rejects] == [2, 3, 4, 5, 6]
    reasons = [r["reason"] for r in rejects]
    assert "infinity" in reasons.pop(3)  # orjson refuses a number no float can hold
    assert all("out of range" in reason for reason in reasons), reasons


def test_unreadable_files_in_a_directory_are_reported_and_the_others_read(tmp_path: Path, ingest: Ingest):
    unprivileged(ingest)
    logs = tmp_path / "logs"
    logs.mkdir()
    write_log(logs / "a.jsonl", [line(0)])
    (logs / "b.jsonl").symlink_to(logs / "gone.jsonl")  # dangling
    (logs / "c.jsonl").symlink_to("c.jsonl")  # a loop
    write_log(logs / "d.jsonl", [line(1)]).chmod(0)
    write_log(logs / "e.jsonl", [line(2)])
    for given in (str(logs), str(logs / "*.jsonl")):
        store = f"store-{len(given)}"
        summary = run_json(ingest, given, "--store", store, code=EXIT_INPUT)
        assert summary["records_written"] == 2
        failed = summary["files_failed"]
        assert set(failed) == {str(logs / n) for n in ("b.jsonl", "c.jsonl", "d.jsonl")}
        assert "dangling symlink" in failed[str(logs / "b.jsonl")]
        assert "symbolic links" in failed[str(logs / "c.jsonl")]
        assert "Permission denied" in failed[str(logs / "d.jsonl")]
        proc = ingest(given, "--store", store, check=False)
        assert proc.returncode == EXIT_INPUT
        assert f"could not read {logs / 'd.jsonl'}: Permission denied" in proc.stderr.decode()
        assert "0 lines" in proc.stderr.decode()  # a and e are checkpointed, d's stays unread
    (logs / "d.jsonl").chmod(0o644)
    summary = run_json(ingest, str(logs), "--store", f"store-{len(str(logs))}", code=EXIT_INPUT)
    assert summary["records_written"] == 1 and set(summary["files_failed"]) == {
        str(logs / "b.jsonl"),
        str(logs / "c.jsonl"),
    }


def test_an_unreadable_file_named_explicitly_is_reported_too(tmp_path: Path, ingest: Ingest):
    unprivileged(ingest)
    locked = write_log(tmp_path / "locked.jsonl", [line(0)])
    locked.chmod(0)
    fine = write_log(tmp_path / "fine.jsonl", [line(1)])
    summary = run_json(ingest, str(locked), str(fine), code=EXIT_INPUT)
    assert summary["records_written"] == 1
    assert summary["files_failed"] == {str(locked): "Permission denied"}


def test_a_file_removed_between_discovery_and_reading(tmp_path: Path, ingest: Ingest):
    logs = tmp_path / "logs"
    logs.mkdir()
    write_log(logs / "a.jsonl", [line(0)])
    write_log(logs / "b.jsonl", [line(1)])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUBRIX_", "ARGILLA_"))}
    # stdin comes first: the run has listed the directory (the lock file exists once it has)
    # and waits on stdin while the test removes b.jsonl, as a rotation would.
    proc = subprocess.Popen(
        [sys.executable, "-m", "ingest", "-", str(logs), "--json"],
        cwd=ingest.cwd,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    lock = ingest.store / "_state.sqlite.lock"
    deadline = time.monotonic() + 60
    while not lock.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    (logs / "b.jsonl").unlink()
    out, err = proc.communicate((line(2) + "\n").encode(), timeout=120)
    assert b"Traceback" not in err, err.decode()
    assert proc.returncode == EXIT_INPUT, err.decode()
    summary = json.loads(out)
    assert summary["records_written"] == 2
    assert summary["files_failed"] == {str(logs / "b.jsonl"): "No such file or directory"}


def gz(text: str) -> bytes:
    return gzip.compress(text.encode(), mtime=0)


def test_damaged_gzip_is_read_as_far_as_it_is_sound_and_reported(tmp_path: Path, ingest: Ingest):
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "access.jsonl.1.gz").write_bytes(gz(line(0) + "\n" + line(1) + "\n") + b"trailing bytes")
    crc = bytearray(gz(line(2) + "\n"))
    crc[-8] ^= 0xFF  # the CRC32 in the trailer
    (logs / "access.jsonl.2.gz").write_bytes(bytes(crc))
    # zero padding after a member is what some tools write: not a fault
    (logs / "access.jsonl.3.gz").write_bytes(gz(line(3) + "\n") + b"\0" * 100)
    (logs / "access.jsonl.4.gz").write_bytes(gz(line(4) + "\n") + gz(line(5) + "\n"))  # two members
    write_log(logs / "access.jsonl", [line(6)])
    summary = run_json(ingest, str(logs), code=EXIT_INPUT)
    assert summary["records_written"] == 7
    failed = summary["files_failed"]
    assert set(failed) == {str(logs / "access.jsonl.1.gz"), str(logs / "access.jsonl.2.gz")}
    assert "14 bytes of trailing garbage" in failed[str(logs / "access.jsonl.1.gz")]
    assert "CRC" in failed[str(logs / "access.jsonl.2.gz")]
    # a damaged file's checkpoint does not move: it is reported again, and nothing is duplicated;
    # trailing garbage after whole members is the exception (test_trailing_garbage_...)
    again = run_json(ingest, str(logs), code=EXIT_INPUT)
    assert set(again["files_failed"]) == {str(logs / "access.jsonl.2.gz")}
    assert again["records_written"] == 0 and again["skipped"] == {"already_stored": 1}


def test_trailing_garbage_after_whole_members_is_reported_once_and_its_lines_read(
    tmp_path: Path, ingest: Ingest
):
    """Gap (a) of issue 13: the members decompress and pass their CRC checks, so all their
    lines are read (an unterminated last one too: a .gz cannot grow) and the checkpoint moves;
    the run that read them exits 3 naming the file, later runs find nothing new and exit 0."""
    logs = tmp_path / "logs"
    logs.mkdir()
    data = gz(line(0) + "\n") + gz(line(1) + "\n" + line(2)) + b"trailing garbage"
    (logs / "access.jsonl.1.gz").write_bytes(data)
    write_log(logs / "access.jsonl", [line(3)])
    summary = run_json(ingest, str(logs), code=EXIT_INPUT)
    assert summary["records_written"] == 4
    (reason,) = summary["files_failed"].values()
    assert "16 bytes of trailing garbage" in reason and "not report them again" in reason
    assert summary["by_file"][str(logs / "access.jsonl.1.gz")]["lines"] == 3
    again = run_json(ingest, str(logs))  # exit 0
    assert again["files_failed"] == {} and again["lines_read"] == 0
    # a re-read from the start reads it (nothing duplicated) and reports it again
    forced = run_json(ingest, str(logs), "--from-start", code=EXIT_INPUT)
    assert list(forced["files_failed"]) == [str(logs / "access.jsonl.1.gz")]
    assert forced["skipped"] == {"already_stored": 4}


def test_a_gzip_cut_short_is_finished_by_a_later_run(tmp_path: Path, ingest: Ingest):
    whole = gz(line(0) + "\n" + line(1) + "\n")
    log = tmp_path / "access.jsonl.2.gz"
    log.write_bytes(whole[: len(whole) - 12])  # still being compressed
    summary = run_json(ingest, str(log))
    assert summary["files_failed"] == {}
    log.write_bytes(whole)
    summary = run_json(ingest, str(log))
    assert summary["files_failed"] == {} and summary["incomplete_last_lines"] == {}
    assert sorted(ingest.dataset("monitoring_spacy")["request_id"]) == ["r0", "r1"]


@pytest.mark.parametrize("kind", ["gzip", "stdin", "rotated", "old"])
def test_the_unterminated_last_line_of_a_source_that_cannot_grow_is_read(
    tmp_path: Path, ingest: Ingest, kind: str
):
    text = line(0) + "\n" + line(1)  # no final newline
    logs = tmp_path / "logs"
    logs.mkdir()
    args: list[str] = [str(logs)]
    stdin = None
    if kind == "gzip":
        (logs / "access.jsonl.1.gz").write_bytes(gz(text))
    elif kind == "stdin":
        args, stdin = ["-"], text.encode()
    elif kind == "rotated":
        rotated = logs / "access.jsonl.1"
        rotated.write_text(text)
        os.utime(rotated, (time.time() - 120, time.time() - 120))  # well within the grace period
        (logs / "access.jsonl").write_text(line(2) + "\n" + line(3))  # the live file: may grow
    else:
        old = logs / "access.jsonl"
        old.write_text(text)
        os.utime(old, (time.time() - 2 * 3600, time.time() - 2 * 3600))
    summary = run_json(ingest, *args, input=stdin)
    ids = sorted(ingest.dataset("monitoring_spacy")["request_id"])
    assert ids[:2] == ["r0", "r1"]
    if kind == "rotated":
        assert ids == ["r0", "r1", "r2"]
        assert summary["incomplete_last_lines"] == {str(logs / "access.jsonl"): len(line(3))}
    else:
        assert summary["incomplete_last_lines"] == {}
    if kind != "stdin":
        assert run_json(ingest, *args)["lines_read"] == 0  # read once, checkpoint at its end


def test_a_fresh_file_keeps_its_unterminated_last_line_for_the_next_run(tmp_path: Path, ingest: Ingest):
    log = tmp_path / "access.jsonl"
    log.write_text(line(0) + "\n" + line(1))
    summary = run_json(ingest, str(log))
    assert summary["records_written"] == 1 and summary["incomplete_last_lines"] == {str(log): len(line(1))}


def test_a_byte_order_mark_is_skipped(tmp_path: Path, ingest: Ingest):
    log = tmp_path / "a.jsonl"
    log.write_bytes(b"\xef\xbb\xbf" + f"{line(0)}\nnot json\n{line(1)}\n".encode())
    summary = run_json(ingest, str(log))
    assert summary["records_written"] == 2
    (reject,) = ingest.rejects()
    assert reject["line"] == 2 and log.read_bytes()[reject["offset"] :].startswith(b"not json\n")


def test_nul_runs_are_skipped_and_counted_and_the_next_line_is_read(tmp_path: Path, ingest: Ingest):
    log = tmp_path / "a.jsonl"
    log.write_bytes(
        (line(0) + "\n").encode()
        + b"\0" * 5000  # copytruncate: the writer goes on at its old offset
        + (line(1) + "\n").encode()
        + b"\0" * 7
        + b"\n"
        + line(2)[:30].encode()  # a write cut short by a crash, then zeros
        + b"\0" * 64
        + (line(3) + "\n").encode()
    )
    summary = run_json(ingest, str(log))
    assert summary["nul_bytes"] == 5000 + 7 + 64
    assert sorted(ingest.dataset("monitoring_spacy")["request_id"]) == ["r0", "r1", "r3"]
    (reject,) = ingest.rejects()
    assert reject["line"] == 4 and reject["raw"] == line(2)[:30] and "invalid JSON" in reject["reason"]
    assert log.read_bytes()[reject["offset"] :].startswith(line(2)[:30].encode())
    counts = summary["by_file"][str(log)]
    assert counts == {"lines": 4, "gave_records": 3, "skipped": 0, "rejected": 1, "nul_bytes": 5071}


def test_a_lone_surrogate_rejects_only_its_record(tmp_path: Path, ingest: Ingest):
    log = tmp_path / "a.jsonl"
    body = json.dumps(entry(path="/transformers/", request=["good", "BAD", "fine"], response=TC_RESPONSE * 3))
    log.write_text(body.replace("BAD", "bad \\ud800 text") + "\n")
    summary = run_json(ingest, str(log))
    assert summary["records_written"] == 2
    (reject,) = ingest.rejects()
    assert reject["record"] == 1 and "surrogate" in reject["reason"]


def test_a_lone_surrogate_in_the_path_rejects_the_line(tmp_path: Path, ingest: Ingest):
    log = tmp_path / "a.jsonl"
    log.write_text(json.dumps(entry(path="/x\\ud800/")).replace("\\\\", "\\") + "\n" + line(0) + "\n")
    summary = run_json(ingest, str(log))
    assert summary["records_written"] == 1 and summary["rejected"] == 1


def test_a_file_that_is_not_jsonl_gets_one_message(tmp_path: Path, ingest: Ingest):
    logs = tmp_path / "logs"
    logs.mkdir()
    write_log(logs / "a.jsonl", [line(0)])
    rng = random.Random(13)
    (logs / "model.log").write_bytes(bytes(rng.randrange(256) for _ in range(20000)))
    (logs / "dump.json").write_text(json.dumps([entry(), entry()], indent=2) + "\n")
    summary = run_json(ingest, str(logs), code=EXIT_INPUT)
    assert summary["records_written"] == 1 and summary["rejected"] == 0
    failed = summary["files_failed"]
    assert failed[str(logs / "model.log")].startswith("not JSONL: binary data")
    assert failed[str(logs / "dump.json")].startswith("not JSONL: a JSON document over several lines")


@pytest.mark.parametrize("layout", ["empty", "other files", "glob of directories"])
def test_inputs_with_no_log_files_are_a_usage_error(tmp_path: Path, ingest: Ingest, layout: str):
    logs = tmp_path / "logs"
    logs.mkdir()
    given = str(logs)
    if layout == "other files":
        (logs / "notes.txt").write_text("hello\n")
        (logs / ".hidden.jsonl").write_text(line(0) + "\n")
    elif layout == "glob of directories":
        (logs / "old.jsonl").mkdir()
        given = str(logs / "*.jsonl")
    proc = ingest(given, check=False)
    no_traceback(proc)
    assert proc.returncode == 2
    err = proc.stderr.decode()
    if layout == "glob of directories":
        assert f"no file matches {given}" in err
    else:
        assert f"no log files in {logs}" in err and "*.jsonl" in err and "*.log" in err
    assert not ingest.store.exists()


def test_long_and_odd_endpoint_paths_give_valid_bounded_dataset_names(tmp_path: Path, ingest: Ingest):
    long_a = "/" + "a" * 1400 + "/one/"
    long_b = "/" + "a" * 1400 + "/two/"
    odd = "/Ünï cödé/..//\u200b/"
    log = write_log(tmp_path / "a.jsonl", [line(0, path=p) for p in (long_a, long_b, odd, "/")])
    summary = run_json(ingest, str(log))
    assert summary["records_written"] == 4
    names = {summary["endpoints"][p]["dataset"] for p in (long_a, long_b, odd, "/")}
    assert len(names) == 4
    for name in names:
        assert re.fullmatch(r"(?!-|_)[a-z0-9-_]{1,100}", name), name
        assert (ingest.store / name / "_dataset.json").exists()


def test_long_and_odd_endpoint_paths_keep_the_summary_one_row_each_and_bounded(
    tmp_path: Path, ingest: Ingest
):
    # An endpoint path is the log's content: a newline in it must not forge a summary line,
    # nor a 1,400-character path widen every row of the table to 1,400 columns.
    long_a = "/" + "a" * 1400 + "/one/"
    forged = "/x\nrejected lines: 0 (all fine)\n"
    log = write_log(tmp_path / "a.jsonl", [line(0, path=p) for p in (long_a, forged, "/spacy/")])
    proc = ingest(str(log))
    table = proc.stderr.decode().splitlines()
    assert not [row for row in table if row.startswith("rejected lines")], table
    rows = [row for row in table if row.split() and row.split()[-1].isdigit()]
    assert len(rows) == 4  # three endpoints and the total
    assert max(len(row) for row in table) < 300, max(len(row) for row in table)
    assert any(row.startswith("/x\\nrejected") for row in rows)
    # --json keeps the paths as they are
    summary = run_json(ingest, str(log), "--from-start")
    assert {long_a, forged, "/spacy/"} <= set(summary["endpoints"])
    # and the "matched none" warning lists them one line too
    proc = ingest(str(log), "--from-start", "-e", "/nope/", "-q")
    assert len(proc.stderr.decode().splitlines()) == 1, proc.stderr.decode()


MAPPER_QUITS = """
def quits(inputs, outputs):
    raise SystemExit("the mapper gave up on " + str(inputs))
"""


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_an_exception_in_the_transform_reaches_the_user_with_its_type(
    tmp_path: Path, ingest: Ingest, jobs: str
):
    (ingest.cwd / "quitting.py").write_text(MAPPER_QUITS)
    log = write_log(tmp_path / "a.jsonl", [line(0)])
    proc = ingest(str(log), "-e", "/spacy/", "--mapper", "quitting:quits", "-j", jobs, check=False)
    no_traceback(proc)
    err = proc.stderr.decode()
    assert proc.returncode == 1, err
    assert "SystemExit: the mapper gave up on Paris 0" in err
    assert "died" not in err


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_an_exception_in_the_transform_that_quotes_a_credential_shows_it_masked(
    tmp_path: Path, ingest: Ingest, jobs: str
):
    (ingest.cwd / "quitting.py").write_text(MAPPER_QUITS)
    log = write_log(tmp_path / "a.jsonl", [json.dumps(entry(request=["see https://h/b?sv=1&sig=SEKRETzq1"]))])
    proc = ingest(str(log), "-e", "/spacy/", "--mapper", "quitting:quits", "-j", jobs, check=False)
    no_traceback(proc)
    err = proc.stderr.decode()
    assert proc.returncode == 1, err
    assert "SystemExit: the mapper gave up on see https://h/b?sv=1&sig=[redacted]" in err
    assert "SEKRETzq" not in err


def test_a_mapper_exception_in_a_worker_rejects_the_record(tmp_path: Path, ingest: Ingest):
    (ingest.cwd / "raising.py").write_text("def fails(inputs, outputs):\n    raise KeyError(inputs)\n")
    log = write_log(tmp_path / "a.jsonl", [line(0), line(1)])
    summary = run_json(ingest, str(log), "-e", "/spacy/", "--mapper", "raising:fails", "-j", "2")
    assert summary["rejected"] == 2
    assert {r["reason"] for r in ingest.rejects()} == {
        "mapper failed: KeyError: 'Paris 0'",
        "mapper failed: KeyError: 'Paris 1'",
    }


def test_a_store_that_cannot_be_written_stops_the_run_with_one_line(tmp_path: Path, ingest: Ingest):
    unprivileged(ingest)
    log = write_log(tmp_path / "a.jsonl", [line(0)])
    (ingest.cwd / "locked-store").mkdir(mode=0o555)
    proc = ingest(str(log), "--store", "locked-store", check=False)
    no_traceback(proc)
    assert proc.returncode == 1
    assert "ingest: error: the target cannot be written: PermissionError" in proc.stderr.decode()


def test_a_dataset_named_after_a_long_bentoml_column_is_bounded(ingest: Ingest):
    from tests import format_samples as samples

    data = samples.write_bentoml(ingest.cwd)
    long_name = "sentiment" + "x" * 1400
    for path in (data, data.parent.parent / "schema" / "schema.1.log"):
        path.write_text(path.read_text().replace("sentiment", long_name))
    (ingest.cwd / "ingest.toml").write_text('[formats.bentoml]\ntime_zone = "Europe/Paris"\n')
    summary = run_json(ingest, "monitoring/", "--config", "ingest.toml")
    assert summary["records_written"] == 15
    names = [p.parent.name for p in ingest.store.glob("*/_dataset.json")]
    assert len(names) == 3 and any(name.startswith("monitoring_ticket_triage_sentimentxxx") for name in names)
    for name in names:
        assert re.fullmatch(r"(?!-|_)[a-z0-9-_]{1,100}", name), name


def test_a_wrong_format_says_so_in_the_table_in_json_and_under_q(tmp_path: Path, ingest: Ingest):
    """Gap (b) of issue 13: the sagemaker profile on access-log lines counted every line
    not_a_request and exited 0, silently, while the checkpoints moved past them."""
    log = write_log(tmp_path / "access.jsonl", [entry(request_id=f"r{i}") for i in range(5)])
    proc = ingest(str(log), "--format", "sagemaker", "--json", "-q")
    summary = json.loads(proc.stdout)
    (warning,) = summary["warnings"]
    assert "5 of 5 lines read are not requests in the format read (sagemaker)" in warning
    assert f"{log} looks like access-log (--format access-log?)" in warning and "--from-start" in warning
    assert f"ingest: warning: {warning}" in proc.stderr.decode()  # even under -q
    table = ingest(str(log), "--format", "sagemaker", "--from-start").stderr.decode()
    assert f"warning: {warning}" in table
    # the right format: records, and nothing to warn of
    right = ingest.json(str(log), "--format", "access-log", "--from-start")
    assert right["records_written"] == 5 and right["warnings"] == []


def test_an_app_log_mostly_of_other_events_is_not_taken_for_a_wrong_format(tmp_path: Path, ingest: Ingest):
    # A FastAPI app's structlog file: for each request line, two other events (queries,
    # cache misses). They are not_a_request, as documented, and the format is the right
    # one: a cron run must not warn "is the format right?" every five minutes.
    lines = []
    for i in range(10):
        ts = f"2026-11-24T12:00:{i:02d}Z"
        lines.append({"event": "db_query", "level": "debug", "timestamp": ts, "sql": "select 1"})
        lines.append({"event": "cache_miss", "level": "debug", "timestamp": ts})
        lines.append({"event": "http_request", "level": "info", "timestamp": ts, "path": "/classify",
                      "status_code": 200, "request_body": {"inputs": f"text {i}"},
                      "response_body": [{"label": "POSITIVE", "score": 0.9}]})  # fmt: skip
    log = write_log(tmp_path / "app.log", lines)
    summary = ingest.json(str(log), "-q")
    assert summary["records_written"] == 10 and summary["skipped"]["not_a_request"] == 20
    assert summary["warnings"] == []
    # the same lines read with a format that takes none of them for requests: warned of
    wrong = ingest.json(str(log), "--format", "loguru", "--store", "other", "-q")
    assert len(wrong["warnings"]) == 1 and "looks like structlog" in wrong["warnings"][0]


def _everything_written(ingest: Ingest, *outputs: bytes) -> str:
    """All a user or a script can see after runs: their output, and every name and value in
    the store (Parquet is compressed: its rows are read, not its bytes)."""
    seen = [out.decode("utf-8", "replace") for out in outputs]
    for path in sorted(ingest.store.rglob("*")):
        seen.append(str(path.relative_to(ingest.store)))
        if path.suffix == ".parquet":
            seen.append(pd.read_parquet(path).astype(str).to_json())
        elif path.is_file() and path.suffix in (".jsonl", ".json"):
            seen.append(path.read_text("utf-8", "replace"))
    return "\n".join(seen)


def test_credentials_in_an_endpoint_path_reach_no_output_store_or_rejects(tmp_path: Path, ingest: Ingest):
    # Producers that log the raw request target put its query string (or a path parameter)
    # in "path": the endpoint becomes a table row, a JSON key, a dataset and its directory,
    # metadata, a reject's endpoint and the run log's counts. None may carry the credential.
    paths = ["/spacy/?api_key=SEKRETzq1", "/spacy/?access_token=SEKRETzq2&x=1", "/v1/sk-SEKRETzq3abcdefg/"]
    lines = [line(i, path=p) for i, p in enumerate(paths)]
    lines.append(json.dumps(entry(path="/spacy/;jsessionid=SEKRETzq4", request=["a", "b"])))  # size mismatch
    log = write_log(tmp_path / "a.jsonl", lines)
    # the other formats read their endpoint from the line too (structlog: "path")
    app = {"event": "http_request", "timestamp": "2026-11-24T12:00:17Z", "status_code": 200,
           "path": "/classify?apikey=SEKRETzq5", "request_body": {"inputs": "I hate waiting"},
           "response_body": [{"label": "NEGATIVE", "score": 0.97}]}  # fmt: skip
    other = write_log(tmp_path / "app.log", [app])
    runs = [
        ingest(str(log)),
        ingest(str(other), "--format", "structlog"),
        summary := ingest(str(log), "--from-start", "--json"),
        ingest(str(log), "--from-start", "-q", "-e", "/nope/"),
        ingest(str(other), "--format", "structlog", "--from-start", "--json"),
    ]
    seen = _everything_written(ingest, *(p.stdout + p.stderr for p in runs))
    assert len(ingest.rejects()) == 2 and json.loads(summary.stdout)["records_written"] == 0
    assert json.loads(runs[-1].stdout)["records"]["already_stored"] == 1
    assert "[redacted]" in seen
    assert "sekretzq" not in seen.lower(), [line for line in seen.splitlines() if "sekretzq" in line.lower()]


def test_credential_keys_in_a_classification_request_reach_neither_store_nor_rejects(
    tmp_path: Path, ingest: Ingest
):
    # A text classification record's inputs are the request body's fields, as Rubrix's
    # mapper takes them: a body that carries a key (as some APIs accept) must not carry it
    # into the store, or to the server, which receive the same record.
    body = {"text": "nice", "api_key": "SEKRETzq1", "Passwort": "SEKRETzq2", "X-Api-Key": "SEKRETzq3"}
    lines = [json.dumps(entry(path="/tc/", request=body, response=TC_RESPONSE[0]))]
    log = write_log(tmp_path / "a.jsonl", lines)
    runs = [ingest(str(log)), ingest(str(log), "--from-start", "--json", "--dry-run")]
    summary = json.loads(runs[1].stdout)
    seen = _everything_written(ingest, *(p.stdout + p.stderr for p in runs))
    (record,) = [json.loads(r) for r in pd.read_parquet(ingest.store / "monitoring_tc")["record"]]
    assert record["inputs"] == {"text": "nice", "api_key": "[redacted]", "Passwort": "[redacted]",
                                "X-Api-Key": "[redacted]"}  # fmt: skip
    assert summary["ok"] and "sekretzq" not in seen.lower()


def test_signed_url_and_function_key_query_parameters_reach_no_output_store_or_rejects(
    tmp_path: Path, ingest: Ingest
):
    # Signed URLs (Azure SAS "sig", S3 "X-Amz-Signature"/"X-Amz-Credential", GCS
    # "X-Goog-Signature"), Azure Functions' "code" and "key" and OAuth's "access_token" grant
    # access on their own: logged in "path" or "url", the value is masked and the name kept.
    queries = ["sig=SEKRETzq1&sv=2022-11-02", "code=SEKRETzq2==", "key=SEKRETzq3",
               "X-Amz-Signature=SEKRETzq4&X-Amz-Credential=SEKRETzq5%2F20261124",
               "X-Goog-Signature=SEKRETzq6", "signature=SEKRETzq7", "access_token=SEKRETzq8",
               "token=SEKRETzq9"]  # fmt: skip
    lines = [line(i, path=f"/spacy/?{q}") for i, q in enumerate(queries)]
    lines += [line(10 + i, url=f"https://h.blob.core.windows.net/c/b?{q}") for i, q in enumerate(queries)]
    # rejected (a size mismatch): the raw line and the endpoint go to the rejects file
    lines.append(json.dumps(entry(path="/spacy/?sig=SEKRETzqA", url="https://h/x?code=SEKRETzqB",
                                  request=["a", "b"])))  # fmt: skip
    log = write_log(tmp_path / "a.jsonl", lines)
    runs = [ingest(str(log)), summary := ingest(str(log), "--from-start", "--json")]
    seen = _everything_written(ingest, *(p.stdout + p.stderr for p in runs))
    assert len(ingest.rejects()) == 2 and json.loads(summary.stdout)["records"]["already_stored"] == 16
    for name in ("sig=", "code=", "key=", "X-Amz-Signature=", "X-Amz-Credential=", "X-Goog-Signature="):
        assert f"{name}[redacted]" in seen, name
    assert "sekretzq" not in seen.lower(), [line for line in seen.splitlines() if "sekretzq" in line.lower()]


@pytest.mark.parametrize(
    "credential",
    [
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJTRUtSRVQifQ.c2VrcmV0c2lnbmF0dXJl",  # a JWT
        "AKIAZQSEKRETZQ234567",  # an AWS access key id
        "sk-proj-zqSEKRETzq0123456789",
    ],
)
def test_a_credential_straddling_the_reject_raw_limit_leaves_no_prefix(
    tmp_path: Path, ingest: Ingest, credential: str
):
    # A reject keeps the first 2,000 bytes of its line: a credential the cut goes through must
    # not leave its first characters behind, which no shape rule recognizes once cut.
    lines = []
    for kept in range(1, len(credential)):
        fields = {"pad": "", "headers": {"X-Trace": credential}, "request": ["a", "b"]}  # a size mismatch
        at = json.dumps(entry(**fields)).index(credential)
        fields["pad"] = "x" * (2000 - kept - at)  # the cut keeps `kept` characters of the credential
        text = json.dumps(entry(**fields))
        assert text.index(credential) + kept == 2000
        lines.append(text)
    log = write_log(tmp_path / "a.jsonl", lines)
    summary = run_json(ingest, str(log))
    assert summary["rejected"] == len(lines)
    for reject in ingest.rejects():
        raw = reject["raw"]
        assert len(raw.encode()) <= 2000 and raw.startswith('{"ts"'), raw[:80]
        assert not any(raw.endswith(credential[:n]) for n in range(2, len(credential))), raw[-40:]
        assert credential[:4] not in raw, raw[-40:]


@pytest.mark.parametrize(
    "config, env",
    [
        ('[rubrix]\napi_key = 4815162342\nurl = "http://127.0.0.1:9"\n', {}),  # a numeric key, unquoted
        ('[rubrix]\napi_key = ["SEKRETzq1"]\nurl = "http://127.0.0.1:9"\n', {}),
        ('[rubrix]\nurl = "ftp://me:SEKRETzq2@rubrix.internal/"\n', {}),
        ("", {"RUBRIX_API_URL": "rubrix.internal:6900/?api_key=SEKRETzq3"}),
        ("", {"ARGILLA_API_URL": "me:SEKRETzq4@rubrix.internal:6900"}),
    ],
)
def test_a_usage_error_about_the_server_settings_never_shows_the_key(
    tmp_path: Path, ingest: Ingest, config: str, env: dict[str, str]
):
    # The README: the key "is only ever sent in a request header and never printed".
    # A cron job's stderr goes to a log file that many can read.
    (ingest.cwd / "ingest.toml").write_text(config)
    log = write_log(tmp_path / "a.jsonl", [line(0)])
    for extra in ([], ["--json"]):
        proc = ingest(str(log), "-c", "ingest.toml", *extra, env=env, check=False)
        no_traceback(proc)
        out = (proc.stdout + proc.stderr).decode()
        assert proc.returncode == 2, out
        assert "SEKRETzq" not in out and "4815162342" not in out, out
        assert "[rubrix]" in out or "API_URL" in out, out  # it still says which setting is wrong


def test_files_that_start_alike_with_blank_lines_are_different_files(tmp_path: Path, ingest: Ingest):
    # A file is known by its first line; a blank one (`echo > access.jsonl` empties a log
    # that way) says nothing of the file: two such logs of other lines are not copies.
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "a.jsonl").write_text("\n" + line(0) + "\n")
    (logs / "b.jsonl").write_text("\n" + line(1) + "\n")
    (logs / "c.jsonl").write_bytes(b" \r\n\0\0\n" + line(2).encode() + b"\n")
    summary = run_json(ingest, str(logs))
    assert summary["records_written"] == 3 and summary["files_not_read"] == {}


def test_a_log_emptied_again_and_again_is_read_from_its_new_start(tmp_path: Path, ingest: Ingest):
    # copytruncate under a writer that does not append leaves a NUL run as long as the old
    # log at the start: more than the 64 KB a first line is known by, the same at every
    # rotation. The NULs are not the file's identity; its first line is.
    log = tmp_path / "access.jsonl"
    zeros = b"\0" * (100 << 10)
    log.write_bytes(zeros + line(0).encode() + b"\n")
    assert run_json(ingest, str(log))["records_written"] == 1
    log.write_bytes(zeros + (line(1, latency_ms=12.5, method="POST") + "\n" + line(2) + "\n").encode())
    summary = run_json(ingest, str(log))
    assert summary["records_written"] == 2 and summary["rejected"] == 0


MAPPER_INTERRUPTS = """
import os


def interrupts(inputs, outputs):
    raise KeyboardInterrupt("raised by the mapper, not by a user")


def exits(inputs, outputs):
    os._exit(7)
"""


def test_a_base_exception_in_a_worker_reaches_the_user_with_its_type(tmp_path: Path, ingest: Ingest):
    # Workers ignore SIGINT (the parent handles signals), so a KeyboardInterrupt in one is
    # code's, like any exception: its type and message, exit 1, no traceback of the worker.
    (ingest.cwd / "interrupting.py").write_text(MAPPER_INTERRUPTS)
    log = write_log(tmp_path / "a.jsonl", [line(0), line(1)])
    proc = ingest(str(log), "-e", "/spacy/", "--mapper", "interrupting:interrupts", "-j", "2", check=False)
    no_traceback(proc)
    err = proc.stderr.decode()
    assert proc.returncode == 1, err
    assert "KeyboardInterrupt: raised by the mapper, not by a user" in err and "died" not in err, err
    # a worker that really dies says how
    proc = ingest(str(log), "-e", "/spacy/", "--mapper", "interrupting:exits", "-j", "2", check=False)
    no_traceback(proc)
    assert proc.returncode == 1 and "died (exit 7" in proc.stderr.decode(), proc.stderr.decode()


@pytest.mark.parametrize("age", [2 * 3600, 120])
def test_a_gzip_cut_short_is_never_read_as_if_it_ended(tmp_path: Path, ingest: Ingest, age: int):
    # A .gz whose deflate stream has no end was cut: its last bytes are part of a line, not
    # the last line, however old the file or its place in the series. Rotated next to the
    # live file (or old), it counts as unable to grow; an old one will never be finished:
    # damaged, named, exit 3. A recent one may still be being compressed: left for later.
    logs = tmp_path / "logs"
    logs.mkdir()
    whole = gz(line(0) + "\n" + line(1, latency_ms=1.5, method="POST", url="http://models/spacy/") + "\n")
    cut = logs / "access.jsonl.2.gz"
    cut.write_bytes(whole[: len(whole) - 40])
    os.utime(cut, (time.time() - age, time.time() - age))
    write_log(logs / "access.jsonl", [line(5)])
    summary = run_json(ingest, str(logs), code=EXIT_INPUT if age > 3600 else 0)
    assert summary["rejected"] == 0, ingest.rejects()
    assert sorted(ingest.dataset("monitoring_spacy")["request_id"]) == ["r0", "r5"]
    if age > 3600:
        assert "cut short" in summary["files_failed"][str(cut)]
    else:
        assert summary["files_failed"] == {} and str(cut) in summary["incomplete_last_lines"]
