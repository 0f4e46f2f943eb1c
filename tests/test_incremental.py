"""Cron-safe runs: checkpoints through logrotate, locking, signals and kill -9, for real."""

from __future__ import annotations

import gzip
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import Ingest, RubrixServer, entry

SECRET = "sk-test-0123456789abcdef"


def lines(start: int, n: int) -> list[str]:
    """n distinct log lines, numbered from start, one record each."""
    return [json.dumps(entry(request=[f"Paris {i}"], request_id=f"r{i}",
                             response=[{"entities": [{"label": "GPE", "start": 0, "end": 5}]}]))
            for i in range(start, start + n)]  # fmt: skip


def append(path: Path, new: list[str]) -> None:
    with open(path, "a", encoding="utf-8") as fh:
        fh.write("".join(line + "\n" for line in new))


def request_ids(ingest: Ingest) -> list[str]:
    # The dataset's directory exists from its first record on; its first part file comes later.
    if not any((ingest.store / "monitoring_spacy").glob("date=*/part-*.parquet")):
        return []
    return sorted(ingest.dataset("monitoring_spacy")["request_id"])


def expected(n: int) -> list[str]:
    return sorted(f"r{i}" for i in range(n))


def test_rename_create_and_gzip_rotation(tmp_path: Path, ingest: Ingest):
    logs = tmp_path / "logs"
    logs.mkdir()
    live = logs / "access.jsonl"
    append(live, lines(0, 10))
    assert ingest.json(str(logs))["records_written"] == 10
    append(live, lines(10, 5))  # written after the run, before rotation
    live.rename(logs / "access.jsonl.1")  # logrotate: rename and create
    append(live, lines(15, 7))
    summary = ingest.json(str(logs))
    assert summary["records_written"] == 12 and summary["lines_read"] == 12
    # delaycompress on the next rotation: .1 becomes .2.gz, the live file becomes .1
    old = logs / "access.jsonl.1"
    (logs / "access.jsonl.2.gz").write_bytes(gzip.compress(old.read_bytes()))
    old.unlink()
    live.rename(logs / "access.jsonl.1")
    append(live, lines(22, 3))
    summary = ingest.json(str(logs))
    assert summary["records_written"] == 3 and summary["lines_read"] == 3
    assert set(summary["files_not_read"].values()) == {"already read"}
    (logs / "access.jsonl.2.gz").unlink()  # rotated away for good: nothing to do
    assert ingest.json(str(logs))["lines_read"] == 0
    assert request_ids(ingest) == expected(25)


def test_copytruncate(tmp_path: Path, ingest: Ingest):
    live = tmp_path / "access.jsonl"
    append(live, lines(0, 8))
    ingest(str(tmp_path / "access.jsonl*"))
    append(live, lines(8, 4))
    # logrotate copytruncate: copy, then truncate in place; the app keeps appending
    (tmp_path / "access.jsonl.1").write_bytes(live.read_bytes())
    with open(live, "r+") as fh:
        fh.truncate(0)
    append(live, lines(12, 30))  # the new content is already longer than the old offset
    summary = ingest.json(str(tmp_path / "access.jsonl*"))
    assert summary["records_written"] == 34
    assert request_ids(ingest) == expected(42)


def test_line_written_in_two_parts_across_runs(tmp_path: Path, ingest: Ingest):
    live = tmp_path / "access.jsonl"
    append(live, lines(0, 3))
    half = lines(3, 1)[0]
    with open(live, "a") as fh:
        fh.write(half[:40])
    summary = ingest.json(str(live))
    assert summary["records_written"] == 3 and str(live) in summary["incomplete_last_lines"]
    with open(live, "a") as fh:
        fh.write(half[40:] + "\n")
    summary = ingest.json(str(live))
    assert summary["records_written"] == 1 and ingest.rejects() == []
    assert request_ids(ingest) == expected(4)


def test_file_without_a_complete_line_is_not_read_yet(tmp_path: Path, ingest: Ingest):
    live = tmp_path / "access.jsonl"
    live.write_text(lines(0, 1)[0][:30])
    summary = ingest.json(str(live))
    assert summary["files_not_read"] == {str(live): "no complete line yet"}
    append(live, [lines(0, 1)[0][30:]])
    assert ingest.json(str(live))["records_written"] == 1


def test_from_start_and_windows_reread_and_leave_checkpoints(tmp_path: Path, ingest: Ingest):
    live = tmp_path / "access.jsonl"
    append(live, lines(0, 5))
    ingest(str(live))
    assert ingest.json(str(live), "--from-start")["skipped"] == {"already_stored": 5}
    window = ingest.json(str(live), "--since", "2026-11-24T00:00:00", "--until", "2026-11-25")
    assert window["lines_read"] == 5
    append(live, lines(5, 2))
    assert ingest.json(str(live))["records_written"] == 2  # the window run did not move checkpoints


def test_second_run_exits_at_once_or_waits(tmp_path: Path, ingest: Ingest):
    live = tmp_path / "access.jsonl"
    append(live, lines(0, 3))
    state = ingest.store / "_state.sqlite"
    state.parent.mkdir(parents=True)
    hold = (
        "import fcntl, sys, time; f = open(sys.argv[1], 'a+'); f.write('4242'); f.flush();"
        " fcntl.flock(f, fcntl.LOCK_EX); print('locked', flush=True); time.sleep(3)"
    )
    holder = subprocess.Popen([sys.executable, "-c", hold, str(state) + ".lock"], stdout=subprocess.PIPE)
    assert holder.stdout.readline().strip() == b"locked"
    proc = ingest(str(live), check=False)
    assert proc.returncode == 75
    assert proc.stderr.decode().strip() == (
        "ingest: error: another run holds the lock on rubrix-store/_state.sqlite.lock (pid 4242); "
        "use --wait to queue"
    )
    assert not (ingest.store / "monitoring_spacy").exists()
    started = time.monotonic()
    assert ingest.json(str(live), "--wait")["records_written"] == 3
    assert time.monotonic() - started > 1
    holder.wait()


def test_two_runs_started_together(tmp_path: Path, ingest: Ingest):
    live = tmp_path / "access.jsonl"
    append(live, lines(0, 2000))
    cmd = [sys.executable, "-m", "ingest", str(live), "--json", "-q"]
    runs = [
        subprocess.Popen(cmd, cwd=ingest.cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    codes = sorted(r.wait(120) for r in runs)
    assert codes in ([0, 0], [0, 75])
    assert request_ids(ingest) == expected(2000)


def test_sigterm_finishes_the_chunk_and_checkpoints(tmp_path: Path, ingest: Ingest):
    live = tmp_path / "access.jsonl"
    append(live, lines(0, 20))
    proc = subprocess.Popen([sys.executable, "-m", "ingest", str(live), "--every", "0.2s", "--json"],
                            cwd=ingest.cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    deadline = time.monotonic() + 60
    while len(request_ids(ingest)) < 20 and time.monotonic() < deadline:
        time.sleep(0.1)
    append(live, lines(20, 5))  # picked up by a later iteration of the loop
    while len(request_ids(ingest)) < 25 and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()
    assert request_ids(ingest) == expected(25)
    append(live, lines(25, 1))
    assert ingest.json(str(live))["lines_read"] == 1


def kill_trials(
    ingest: Ingest, log: Path, trials: int, env: dict | None, seed: int, window: tuple[float, float]
) -> int:
    """Run ingest and kill -9 it at a random moment, again and again; return the kills that landed."""
    rng = random.Random(seed)
    landed = 0
    cmd = [sys.executable, "-m", "ingest", str(log), "-q", "--jobs", "2", "--batch-size", "50"]
    for _ in range(trials):
        proc = subprocess.Popen(cmd, cwd=ingest.cwd, env={**os.environ, **(env or {})},
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        time.sleep(rng.uniform(*window))
        if proc.poll() is None:
            proc.kill()
            landed += 1
        proc.wait()
    return landed


def big_log(path: Path, n: int) -> Path:
    with open(path, "w") as fh:
        for start in range(0, n, 5000):
            fh.write("".join(line + "\n" for line in lines(start, min(5000, n - start))))
    return path


@pytest.mark.parametrize("trials", [12])
def test_kill_9_at_random_moments_local_store(tmp_path: Path, ingest: Ingest, trials: int):
    # Big enough that most kills land mid-run: ingest gets through it in about 10 s.
    n = 150_000
    log = big_log(tmp_path / "access.jsonl", n)
    env = {"PYTHONHASHSEED": "0"}
    landed = kill_trials(ingest, log, trials, env, seed=1, window=(0.3, 1.5))
    summary = ingest.json(str(log))  # the rerun after the last kill
    ids = request_ids(ingest)
    assert len(ids) == len(set(ids)) == n, f"{len(ids)} rows, {len(set(ids))} distinct"
    assert ids == expected(n)
    assert landed >= trials // 3, f"only {landed} of {trials} kills landed mid-run"
    assert summary["rejected"] == 0


def test_kill_9_at_random_moments_rubrix_server(tmp_path: Path, ingest: Ingest, server: RubrixServer):
    n = 30_000
    log = big_log(tmp_path / "access.jsonl", n)
    # A 6 MB log: no checkpoint before the end, so each kill lands after some batches were
    # delivered and before any progress was saved: the rerun sends those again (upserts).
    landed = kill_trials(ingest, log, 8, server.env(), seed=2, window=(0.3, 1.2))
    ingest(str(log), env=server.env())
    stored = server.records("monitoring_spacy")
    ids = sorted(r["metadata"]["request_id"] for r in stored)
    assert ids == expected(n)  # every line exactly once: upserts by id, nothing lost
    assert landed >= 3


def test_a_dead_worker_stops_the_run_instead_of_hanging(tmp_path: Path, ingest: Ingest):
    n = 150_000
    log = big_log(tmp_path / "access.jsonl", n)
    cmd = [sys.executable, "-m", "ingest", str(log), "--jobs", "2"]
    proc = subprocess.Popen(cmd, cwd=ingest.cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    workers: list[str] = []
    while not workers and time.monotonic() < deadline:
        time.sleep(0.05)
        workers = subprocess.run(
            ["pgrep", "-P", str(proc.pid)], capture_output=True, text=True
        ).stdout.split()
    assert workers, "no worker processes appeared"
    time.sleep(0.5)
    os.kill(int(workers[0]), 9)  # as the OOM killer would
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err.decode()
    assert b"a worker process died" in err
    ingest(str(log))  # the next run goes on from the last checkpoint
    ids = request_ids(ingest)
    assert len(ids) == len(set(ids)) == n and ids == expected(n)


def test_kill_9_of_the_parent_leaves_workers_that_exit_without_a_traceback(tmp_path: Path, ingest: Ingest):
    # A killed parent is an EOF (or a broken pipe) for its workers: they exit quietly, not
    # with a BrokenPipeError traceback in the cron log.
    n = 150_000
    log = big_log(tmp_path / "access.jsonl", n)
    cmd = [sys.executable, "-m", "ingest", str(log), "--jobs", "2", "-q"]
    proc = subprocess.Popen(cmd, cwd=ingest.cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    workers: list[str] = []
    while not workers and time.monotonic() < deadline:
        time.sleep(0.05)
        workers = subprocess.run(
            ["pgrep", "-P", str(proc.pid)], capture_output=True, text=True
        ).stdout.split()
    assert workers, "no worker processes appeared"
    time.sleep(1.0)  # the workers are busy with chunks
    proc.kill()
    # The workers hold the same stderr: it ends once the last of them has exited.
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == -9
    assert b"Traceback" not in err and b"Error" not in err, err.decode()
