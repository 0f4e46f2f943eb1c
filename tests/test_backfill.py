"""``ingest backfill`` on a real Dask cluster: a ``dask scheduler`` and two ``dask worker``
processes on 127.0.0.1, started once for the module.

The reference for every check is ``ingest run`` on one machine over the same files: the
same ids, the same rows, the same summary and the same rejects file.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest

from tests.argilla_v2_server import ArgillaV2Server
from tests.conftest import ROOT, SAMPLE_LOGS, Ingest, RubrixServer
from tests.dask_cluster import DaskCluster, MotoS3
from tests.test_incremental import append, big_log, expected, lines

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="session")
def moto_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoS3]:
    server = MotoS3(tmp_path_factory.mktemp("moto")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def dask_cluster(tmp_path_factory: pytest.TempPathFactory, moto_s3: MotoS3) -> Iterator[DaskCluster]:
    # The workers reach moto's S3 as they would reach AWS: through the AWS_* environment.
    cluster = DaskCluster(tmp_path_factory.mktemp("dask"), workers=2, memory_limit="1GiB", env=moto_s3.env())
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture
def cluster(dask_cluster: DaskCluster) -> DaskCluster:
    """The session's cluster with both workers up (a test may have killed one; its nanny restarts it)."""
    dask_cluster.wait_for_workers(2)
    return dask_cluster


def generated(path: Path, lines: int, days: int = 3) -> Path:
    generate = ROOT / "benchmarks" / "generate.py"
    subprocess.run([sys.executable, str(generate), str(lines), str(path), "--days", str(days)], check=True)
    return path


def store_rows(store: Path) -> pd.DataFrame:
    """Every row of every dataset in a store, with its dataset and date, in id order."""
    frames = []
    for meta in sorted(store.glob("*/_dataset.json")):
        frame = pd.read_parquet(meta.parent)
        frame["dataset"] = meta.parent.name
        frame["date"] = frame["date"].astype(str)
        frames.append(frame)
    rows = pd.concat(frames, ignore_index=True)
    return rows.sort_values(["dataset", "id"]).reset_index(drop=True)


def comparable(summary: dict) -> dict:
    return {k: v for k, v in summary.items() if k not in ("seconds", "target", "rejects_file", "backfill",
                                                          "dashboard")}  # fmt: skip


def read_rejects(ingest: Ingest, path: str | None) -> list[dict]:
    return [json.loads(line) for line in (ingest.cwd / path).read_text().splitlines()] if path else []


def backfill(ingest: Ingest, cluster: DaskCluster, *args: str, **kwargs) -> dict:
    return ingest.json("backfill", *args, "--scheduler", cluster.address, **kwargs)


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    """The sample logs (a .gz, rejects, skips), a generated log over 3 days split into several
    ranges, and a file that repeats 300 of its lines under another first line."""
    logs = tmp_path / "logs"
    shutil.copytree(SAMPLE_LOGS, logs, ignore=shutil.ignore_patterns("*.py"))
    big = generated(logs / "big.jsonl", 4000)
    with open(logs / "repeats.log", "wb") as out:
        out.write(b'{"ts": "2026-11-24T10:00:00Z", "path": "/health", "status": 200}\n')
        out.writelines(big.read_bytes().splitlines(keepends=True)[1000:1300])
    return logs


def test_backfill_equals_a_single_machine_run(tmp_path: Path, ingest: Ingest, cluster: DaskCluster, logs):
    one = ingest.json("logs", "--store", "one")
    many = backfill(ingest, cluster, "logs", "--store", "many", "--split-bytes", "512KB")
    assert many["backfill"]["tasks"] > 6  # the big file was cut into ranges
    assert comparable(many) == comparable(one)
    assert one["skipped"]["already_stored"] >= 300  # the repeated lines, once in the store
    assert read_rejects(ingest, many["rejects_file"]) == read_rejects(ingest, one["rejects_file"])
    assert len(read_rejects(ingest, one["rejects_file"])) == one["rejected"] > 0
    single, cluster_rows = store_rows(tmp_path / "one"), store_rows(tmp_path / "many")
    assert not cluster_rows["id"].duplicated().any()
    pd.testing.assert_frame_equal(cluster_rows, single)
    assert set(many["backfill"]["workers"]) == {"w0", "w1"}  # both workers took tasks

    # The same backfill again: every task is recorded as done, nothing is read twice.
    again = backfill(ingest, cluster, "logs", "--store", "many", "--split-bytes", "512KB")
    assert again["backfill"]["resumed"] == again["backfill"]["tasks"] and again["lines_read"] == 0
    pd.testing.assert_frame_equal(store_rows(tmp_path / "many"), single)


def test_ranges_own_the_lines_that_start_in_them(tmp_path: Path, ingest: Ingest, cluster: DaskCluster):
    # Line lengths around the range size, so cuts fall before, on and after line starts.
    sized = [
        json.dumps({"ts": "2026-11-24T10:00:00Z", "path": "/t/", "status": 200, "request": "x" * n,
                    "response": {"generated_text": str(i)}})
        for i, n in enumerate(range(40, 400, 7))
    ]  # fmt: skip
    log = tmp_path / "access.jsonl"
    log.write_text("\n".join(sized) + "\n" + sized[0][:30])  # and a last line still being written
    one = ingest.json(str(log), "--store", "one")
    for split in ("100B", "1KB"):  # ranges shorter than lines (most own no line start), and longer
        many = backfill(ingest, cluster, str(log), "--store", f"many-{split}", "--split-bytes", split)
        assert comparable(many) == comparable(one), split
        pd.testing.assert_frame_equal(store_rows(tmp_path / f"many-{split}"), store_rows(tmp_path / "one"))
    assert one["incomplete_last_lines"] == {str(log): 30}


def test_a_byte_order_mark_is_skipped_in_a_file_cut_into_ranges(
    tmp_path: Path, ingest: Ingest, cluster: DaskCluster
):
    """Windows tools write a UTF-8 BOM: one machine skips it at the start of a file, and so
    does the first range of a file too large for one task (CRLF line ends, as those tools
    write them, too)."""
    lines = generated(tmp_path / "plain.jsonl", 600).read_bytes().splitlines()
    log = tmp_path / "bom.jsonl"
    log.write_bytes(b"\xef\xbb\xbf" + b"".join(line + b"\r\n" for line in lines))
    (tmp_path / "plain.jsonl").unlink()
    one = ingest.json(str(log), "--store", "one")
    many = backfill(ingest, cluster, str(log), "--store", "many", "--split-bytes", "64KB")
    assert many["backfill"]["tasks"] > 3
    assert one["rejected"] == 0 and one["lines_read"] == 600
    assert comparable(many) == comparable(one)
    pd.testing.assert_frame_equal(store_rows(tmp_path / "many"), store_rows(tmp_path / "one"))


def test_a_last_line_without_its_newline_is_read_when_one_machine_reads_it(
    tmp_path: Path, ingest: Ingest, cluster: DaskCluster
):
    """One machine reads a file's unterminated last line once nothing can write to the file
    any more: unmodified for an hour, or an older file of a rotated series (decided with the
    whole input list). A backfill decides it the same way, for the last range of a file cut
    into ranges and for small files that go many to a task."""
    lines = generated(tmp_path / "g.jsonl", 400).read_bytes().splitlines()
    (tmp_path / "g.jsonl").unlink()
    logs = tmp_path / "logs"
    logs.mkdir()
    now = time.time()
    for name, part, age in (("old.jsonl", lines[:200], 7200), ("app.jsonl.1", lines[200:380], 60)):
        (logs / name).write_bytes(b"\n".join(part))  # no newline after the last line
        os.utime(logs / name, (now - age, now - age))
    (logs / "app.jsonl").write_bytes(b"\n".join(lines[380:]) + b"\n")
    one = ingest.json("logs", "--store", "one")
    assert one["incomplete_last_lines"] == {} and one["lines_read"] == 400
    for split in ("16KB", "64MiB"):  # ranges; whole files, all in one task
        many = backfill(ingest, cluster, "logs", "--store", f"many-{split}", "--split-bytes", split)
        assert comparable(many) == comparable(one), split
        pd.testing.assert_frame_equal(store_rows(tmp_path / f"many-{split}"), store_rows(tmp_path / "one"))


def test_kill_9_of_a_worker_mid_backfill(tmp_path: Path, ingest: Ingest, cluster: DaskCluster):
    n = 60_000
    big_log(tmp_path / "access.jsonl", n)
    cmd = [sys.executable, "-m", "ingest", "backfill", "access.jsonl", "--scheduler", cluster.address,
           "--split-bytes", "1MB", "--json", "-q"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    manifest = tmp_path / "rubrix-store" / "_backfill"
    deadline = time.monotonic() + 60
    # Wait until some tasks are done and others are under way, then kill a busy worker.
    while time.monotonic() < deadline and proc.poll() is None:
        done = sum(f.read_text().count('"task"') for f in manifest.glob("*.jsonl"))
        if done >= 2:
            break
        time.sleep(0.05)
    from distributed import Client

    with Client(cluster.address, timeout=10) as client:
        busy = [addr for addr, keys in client.processing().items() if keys]
        names = {a: w["name"] for a, w in client.scheduler_info(n_workers=-1)["workers"].items()}
    assert busy and proc.poll() is None, "the backfill finished before the kill"
    os.kill(cluster.worker_pids()[names[busy[0]]], 9)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()
    summary = json.loads(out)
    assert summary["records_written"] == n and summary["lines_read"] == n
    ids = sorted(Ingest(tmp_path).dataset("monitoring_spacy")["request_id"])
    assert len(ids) == len(set(ids)) == n and ids == expected(n)
    assert not list((tmp_path / "rubrix-store").glob("*/date=*/.*.tmp"))


def test_rerun_after_the_client_was_killed_does_only_what_is_left(
    tmp_path: Path, ingest: Ingest, cluster: DaskCluster
):
    n = 60_000
    big_log(tmp_path / "access.jsonl", n)
    cmd = [sys.executable, "-m", "ingest", "backfill", "access.jsonl", "--scheduler", cluster.address,
           "--split-bytes", "1MB", "-q"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    manifest = tmp_path / "rubrix-store" / "_backfill"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if sum(f.read_text().count('"task"') for f in manifest.glob("*.jsonl")) >= 3:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the backfill finished before the kill"
    proc.kill()
    proc.wait()
    summary = backfill(ingest, cluster, "access.jsonl", "--split-bytes", "1MB")
    assert 3 <= summary["backfill"]["resumed"] < summary["backfill"]["tasks"]
    assert 0 < summary["lines_read"] < n
    ids = sorted(Ingest(tmp_path).dataset("monitoring_spacy")["request_id"])
    assert len(ids) == len(set(ids)) == n and ids == expected(n)


def test_backfill_leaves_cron_checkpoints_and_lock_alone(
    tmp_path: Path, ingest: Ingest, cluster: DaskCluster
):
    log = big_log(tmp_path / "access.jsonl", 3000)
    assert ingest.json(str(log))["records_written"] == 3000  # the cron run
    state = ingest.store / "_state.sqlite"
    before = state.read_bytes()
    append(log, lines(3000, 500))  # more traffic since the cron run
    # The lock held by a cron run in progress does not stop a backfill.
    hold = (
        "import fcntl, sys, time; f = open(sys.argv[1], 'a+'); fcntl.flock(f, fcntl.LOCK_EX);"
        " print(1, flush=True); time.sleep(60)"
    )
    holder = subprocess.Popen([sys.executable, "-c", hold, str(state) + ".lock"], stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline().strip() == b"1"
        summary = backfill(ingest, cluster, str(log), "--split-bytes", "200KB")
    finally:
        holder.kill()
        holder.wait()
    assert summary["records_written"] == 500 and summary["skipped"] == {"already_stored": 3000}
    assert state.read_bytes() == before
    assert ingest.json(str(log))["records_written"] == 0  # the next cron run: already stored
    ids = sorted(ingest.dataset("monitoring_spacy")["request_id"])
    assert ids == expected(3500)


def test_backfill_to_a_rubrix_server_bounds_concurrency_for_the_cluster(
    tmp_path: Path, ingest: Ingest, cluster: DaskCluster, server: RubrixServer
):
    log = big_log(tmp_path / "access.jsonl", 6000)
    server.faults(delay=0.05)  # slow answers, so that requests pile up if unbounded
    summary = backfill(ingest, cluster, str(log), "--split-bytes", "200KB", "--concurrency", "2",
                       "--batch-size", "100", env=server.env())  # fmt: skip
    peak = httpx.get(server.url + "/_test/load").json()["peak"]
    assert summary["records_written"] == 6000 and summary["target"].startswith("rubrix http://127.0.0.1")
    assert 1 <= peak <= 2  # two workers with a sink of concurrency 2 each: 4 without the semaphore
    stored = server.records("monitoring_spacy")
    assert sorted(r["metadata"]["request_id"] for r in stored) == expected(6000)
    assert server.api_key not in json.dumps(summary)


def test_backfill_to_argilla_2x_stores_what_ingest_run_stores(
    tmp_path: Path, ingest: Ingest, cluster: DaskCluster, argilla_v2: ArgillaV2Server, workspace: str
):
    """The sample logs (three tasks: spans, labels, text) cut into several Dask tasks, each
    with its own 2.x sink, against ``ingest run`` into another workspace of the same server.

    The labels are declared, as the README says to for a backfill into new 2.x datasets:
    otherwise the first task to create a dataset decides its options from its own records."""
    logs = tmp_path / "logs"
    shutil.copytree(SAMPLE_LOGS, logs, ignore=shutil.ignore_patterns("*.py"))
    (tmp_path / "ingest.toml").write_text(
        '[endpoints."/spacy/"]\nlabels = ["DATE", "GPE", "ORG", "PERSON"]\n'
        '[endpoints."/transformers/"]\nlabels = ["NEGATIVE", "POSITIVE"]\n'
        '[endpoints."/translate/"]\ndataset = "monitoring_translate"\n'  # selected too
    )
    one_space = f"{workspace}-one"
    argilla_v2.new_workspace(one_space)
    one = ingest.json("logs", "-c", "ingest.toml", "--store", "one", env=argilla_v2.env(one_space))
    many = backfill(ingest, cluster, "logs", "-c", "ingest.toml", "--store", "many", "--split-bytes", "20KB",
                    env=argilla_v2.env(workspace))  # fmt: skip
    assert many["backfill"]["tasks"] >= 4 and many["target"].startswith("argilla 2.8.0 http://127.0.0.1")
    assert comparable(many) == comparable(one) and one["records_written"] == 490
    assert read_rejects(ingest, many["rejects_file"]) == read_rejects(ingest, one["rejects_file"])
    assert argilla_v2.api_key not in json.dumps(many)
    for name in ("monitoring_spacy", "monitoring_transformers", "monitoring_translate"):
        ours = {r["external_id"]: r for r in argilla_v2.records(name, workspace)}
        theirs = {r["external_id"]: r for r in argilla_v2.records(name, one_space)}
        assert set(ours) == set(theirs) and len(ours) == len(argilla_v2.records(name, workspace))
        for rid, record in ours.items():
            other = theirs[rid]
            assert (record["fields"], record["metadata"]) == (other["fields"], other["metadata"])
            (mine,), (ref,) = record["suggestions"], other["suggestions"]
            assert (mine["value"], mine["score"], mine["agent"]) == (ref["value"], ref["score"], ref["agent"])
        q_ours = argilla_v2.dataset(name, workspace)["questions"]
        q_theirs = argilla_v2.dataset(name, one_space)["questions"]
        assert [(q["name"], q["settings"]) for q in q_ours] == [(q["name"], q["settings"]) for q in q_theirs]


def test_custom_mapper_from_the_project_is_sent_to_the_workers(
    tmp_path: Path, ingest: Ingest, cluster: DaskCluster
):
    (tmp_path / "project_mappers.py").write_text(
        "def shout(inputs, outputs):\n"
        "    text = inputs.upper()\n"
        "    return {'inputs': {'text': text}, 'prediction': {'labels': [{'class': 'LOUD', 'score': 1.0}]}}\n"
    )
    (tmp_path / "ingest.toml").write_text(
        '[endpoints."/spacy/"]\ndataset = "loud"\nmapper = "project_mappers:shout"\n'
    )
    big_log(tmp_path / "access.jsonl", 50)
    summary = backfill(ingest, cluster, "access.jsonl", "-c", "ingest.toml")
    assert summary["records_written"] == 50
    texts = {r["inputs"]["text"] for r in ingest.records("loud")}
    assert "PARIS 7" in texts and len(texts) == 50
    # A mapper named by its file's path reaches the workers too, under the file's name.
    (tmp_path / "more").mkdir()
    (tmp_path / "more" / "quiet_mappers.py").write_text(
        (tmp_path / "project_mappers.py").read_text().replace("upper()", "lower()")
    )
    summary = backfill(ingest, cluster, "access.jsonl", "-e", "/spacy/", "--dataset", "soft",
                       "--mapper", "./more/quiet_mappers.py:shout")  # fmt: skip
    assert summary["records_written"] == 50
    assert "paris 7" in {r["inputs"]["text"] for r in ingest.records("soft")}


def test_a_backfill_that_cannot_deliver_stops_with_exit_1_and_the_rerun_finishes(
    tmp_path: Path, ingest: Ingest, cluster: DaskCluster, server: RubrixServer
):
    log = big_log(tmp_path / "access.jsonl", 3000)
    # The client's own checks of the server pass (its API version, /api/_info, /api/me), then it fails.
    server.faults(pass_next=3, fail_next=10**6, fail_status=503)
    args = ["backfill", str(log), "--scheduler", cluster.address, "--split-bytes", "200KB",
            "--retries", "1", "--retry-for", "0.3"]  # fmt: skip
    proc = ingest(*args, env=server.env(), check=False)
    err = proc.stderr.decode()
    assert proc.returncode == 1, err
    assert "stopped: ServerUnreachable: cannot reach http://127.0.0.1" in err
    assert "run the same command again to do the rest" in err and server.api_key not in err
    server.faults()  # the server is back
    summary = ingest.json(*args, env=server.env())
    assert summary["records_written"] == 3000
    stored = server.records("monitoring_spacy")
    assert sorted(r["metadata"]["request_id"] for r in stored) == expected(3000)


def test_small_files_go_many_to_a_task(tmp_path: Path, ingest: Ingest, cluster: DaskCluster):
    logs = tmp_path / "captures"
    for i in range(120):  # like a prefix of per-minute capture objects
        day = logs / f"2026-11-{24 + i // 60}"
        day.mkdir(parents=True, exist_ok=True)
        (day / f"capture-{i:03d}.jsonl").write_text("".join(line + "\n" for line in lines(i * 5, 5)))
    with open(logs / "2026-11-25" / "capture-119.jsonl", "a") as fh:
        fh.write(lines(600, 1)[0][:40])  # a line being written
    one = ingest.json("captures", "--store", "one")
    many = backfill(ingest, cluster, "captures", "--store", "many", "--split-bytes", "40KB")
    assert 2 <= many["backfill"]["tasks"] <= 10
    assert comparable(many) == comparable(one)
    assert one["incomplete_last_lines"] and one["records_written"] == 600
    pd.testing.assert_frame_equal(store_rows(tmp_path / "many"), store_rows(tmp_path / "one"))


def test_inputs_and_store_in_s3_through_moto(
    tmp_path: Path, ingest: Ingest, cluster: DaskCluster, moto_s3: MotoS3, monkeypatch
):
    import pyarrow.dataset as ds
    import s3fs

    for name, value in moto_s3.env().items():
        monkeypatch.setenv(name, value)
    fs = s3fs.S3FileSystem()
    fs.mkdir("backfills")
    logs = tmp_path / "logs"  # as the logs fixture, smaller: S3 requests are the cost here
    shutil.copytree(SAMPLE_LOGS, logs, ignore=shutil.ignore_patterns("*.py"))
    big = generated(logs / "big.jsonl", 1200)
    with open(logs / "repeats.log", "wb") as out:
        out.write(b'{"ts": "2026-11-24T10:00:00Z", "path": "/health", "status": 200}\n')
        out.writelines(big.read_bytes().splitlines(keepends=True)[500:700])
        out.write(b'{"ts": "2026-11-24T10:00:00Z", "pa')  # an object's unterminated last line
    fs.put(str(logs), "backfills/logs", recursive=True)  # inputs in S3 too (issue 15's sources)
    one = ingest.json("s3://backfills/logs/", "--store", "one", env=moto_s3.env())
    args = ("s3://backfills/logs/", "--store", "s3://backfills/store", "--split-bytes", "400KB")
    many = backfill(ingest, cluster, *args, env=moto_s3.env())
    assert many["target"] == "store s3://backfills/store" and many["backfill"]["tasks"] >= 5
    assert comparable(many) == comparable(one)
    assert many["rejects_file"].startswith("s3://backfills/store/_rejects/")
    s3_rejects = [json.loads(line) for line in fs.cat_file(many["rejects_file"]).splitlines()]
    assert s3_rejects == read_rejects(ingest, one["rejects_file"])
    frames = []
    for meta in sorted(fs.glob("backfills/store/*/_dataset.json")):
        directory = meta.rsplit("/", 1)[0]
        table = ds.dataset(directory, filesystem=fs, format="parquet", partitioning="hive").to_table()
        frame = table.to_pandas()
        frame["dataset"] = directory.rsplit("/", 1)[1]
        frame["date"] = frame["date"].astype(str)
        frames.append(frame)
    rows = pd.concat(frames, ignore_index=True).sort_values(["dataset", "id"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(rows, store_rows(tmp_path / "one"), check_dtype=False)
    assert len(fs.cat_file("backfills/store/_runs.jsonl").splitlines()) == 1
    again = backfill(ingest, cluster, *args, env=moto_s3.env())  # the manifest is in S3 too
    assert again["backfill"]["resumed"] == again["backfill"]["tasks"] and again["lines_read"] == 0


def test_backfill_of_another_platforms_logs(tmp_path: Path, ingest: Ingest, cluster: DaskCluster):
    """SageMaker data capture (issue 15) cut into ranges gives what a single-machine run gives."""
    from tests import format_samples as samples

    key = "cap/sentiment/AllTraffic/2026/11/24/12/00-00-000-a.jsonl"
    lines = samples.sagemaker_lines()  # the pitfalls, then many ordinary lines
    answer = json.dumps([{"label": "POSITIVE", "score": 0.5}])
    for i in range(3000):
        lines.append(samples.capture(json.dumps({"inputs": f"text number {i}"}), answer, event_id=f"b-{i}"))
    samples._dump(ingest.cwd / key, lines)
    one = ingest.json("cap", "--store", "one")
    many = backfill(ingest, cluster, "cap", "--store", "many", "--split-bytes", "128KB")
    assert many["backfill"]["tasks"] > 3
    assert many["formats"] == {"sagemaker": "1 file, detected"}
    assert comparable(many) == comparable(one)
    assert one["endpoints"]["sentiment"]["written"] == 3008
    pd.testing.assert_frame_equal(store_rows(tmp_path / "many"), store_rows(tmp_path / "one"))


def test_an_endpoint_of_several_datasets_is_shown_with_each_as_on_one_machine(
    tmp_path: Path, ingest: Ingest, cluster: DaskCluster
):
    """BentoML's prediction columns go to a dataset each: the summary names all of them."""
    from tests import format_samples as samples

    samples.write_bentoml(ingest.cwd / "bento")
    one = ingest.json("bento", "--store", "one")
    many = backfill(ingest, cluster, "bento", "--store", "many")
    datasets = ", ".join(f"monitoring_ticket_triage_{c}" for c in ("entities", "reply", "sentiment"))
    assert one["endpoints"]["ticket_triage"]["dataset"] == datasets
    assert comparable(many) == comparable(one)


def test_a_file_that_is_not_a_log_stops_alone_as_on_one_machine(
    tmp_path: Path, ingest: Ingest, cluster: DaskCluster
):
    logs = tmp_path / "logs"
    logs.mkdir()
    big_log(logs / "access.jsonl", 2000)
    (logs / "export.log").write_bytes(bytes(range(256)) * 200)  # binary, named like a log
    (logs / "pretty.json").write_text(json.dumps([{"a": i} for i in range(10000)], indent=2))  # split
    one = ingest("logs", "--store", "one", "--json", check=False)
    many = ingest("backfill", "logs", "--store", "many", "--json", "--scheduler", cluster.address,
                  "--split-bytes", "100KB", check=False)  # fmt: skip
    assert one.returncode == many.returncode == 3, many.stderr.decode()
    one_summary, many_summary = json.loads(one.stdout), json.loads(many.stdout)
    assert list(many_summary["files_failed"]) == ["logs/export.log", "logs/pretty.json"]
    assert comparable(many_summary) == comparable(one_summary)
    pd.testing.assert_frame_equal(store_rows(tmp_path / "many"), store_rows(tmp_path / "one"))


@pytest.mark.parametrize("when", ["connected", "tasks_done", "local_cluster"])
def test_sigterm_mid_backfill_exits_143_without_a_traceback_and_the_rerun_finishes(
    tmp_path: Path, ingest: Ingest, cluster: DaskCluster, when: str
):
    # A signal while the cluster is being set up or the lines counted (connected), or while
    # tasks run (tasks_done), stops the backfill as it stops a one-shot `ingest run`: 143, a
    # one-line error, and what finished is recorded for the rerun.
    n = 60_000
    big_log(tmp_path / "access.jsonl", n)
    cmd = [sys.executable, "-m", "ingest", "backfill", "access.jsonl", "--scheduler", cluster.address,
           "--split-bytes", "1MB"]  # fmt: skip
    if when == "local_cluster":  # a LocalCluster started by the backfill, stopped while it counts lines
        at = cmd.index("--scheduler")
        cmd[at : at + 2] = ["--cluster", "local", "--workers", "1"]
    manifest = tmp_path / "rubrix-store" / "_backfill"
    with open(tmp_path / "stderr.txt", "wb") as err:
        proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if when != "tasks_done" and b"dask: " in (tmp_path / "stderr.txt").read_bytes():
                break
            done = sum(f.read_text().count('"task"') for f in manifest.glob("*.jsonl"))
            if when == "tasks_done" and done >= 2:
                break
            time.sleep(0.02)
        assert proc.poll() is None, "the backfill finished before the signal"
        proc.terminate()
        assert proc.wait(timeout=60) == 143
    stderr = (tmp_path / "stderr.txt").read_text()
    assert "Traceback" not in stderr and "Aborted" not in stderr, stderr
    assert "ingest: error: backfill" in stderr and "stopped" in stderr, stderr
    summary = backfill(ingest, cluster, "access.jsonl", "--split-bytes", "1MB")
    assert summary["exit_code"] == 0
    ids = sorted(Ingest(tmp_path).dataset("monitoring_spacy")["request_id"])
    assert len(ids) == len(set(ids)) == n and ids == expected(n)


def test_backfill_applies_the_dataset_decisions(tmp_path: Path, ingest: Ingest, cluster: DaskCluster):
    """Empty outputs take their dataset's task and classification scores its kind, as in
    ``ingest run`` (issue 16): within a task, from the task's own first telling records."""
    from tests.test_dataset_decisions import EMPTY_1, EMPTY_2, FOUND, tc_line

    (tmp_path / "logs").mkdir()
    lines = [EMPTY_1, FOUND, EMPTY_2, tc_line("top-1", [0.7], 1), tc_line("rounded", [0.34, 0.33, 0.34], 2)]
    (tmp_path / "logs" / "a.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    one = ingest.json("logs", "--store", "one")
    many = backfill(ingest, cluster, "logs", "--store", "many")
    assert comparable(many) == comparable(one)
    assert one["records_written"] == 5 and one["rejected"] == 0
    pd.testing.assert_frame_equal(store_rows(tmp_path / "many"), store_rows(tmp_path / "one"))
    ner = pd.read_parquet(tmp_path / "many" / "monitoring_ner")
    assert (ner["task"] == "TokenClassification").all() and len(ner) == 3


def test_files_that_cannot_be_read_are_reported_each_as_on_one_machine(
    tmp_path: Path, ingest: Ingest, cluster: DaskCluster
):
    """An unreadable file, a dangling symlink, a symlink loop and damaged .gz files among good
    files: each is named with its reason in the summary and --json's files_failed, the others
    are read, exit 3; the rerun reads the damaged files again (their tasks are not recorded as
    done, as their checkpoints stay on one machine) and stores nothing twice."""
    import gzip

    from tests.test_faults import line, unprivileged

    unprivileged(ingest)
    logs = tmp_path / "logs"
    logs.mkdir()
    big_log(logs / "a.jsonl", 3000)
    (logs / "b.jsonl").symlink_to(logs / "gone.jsonl")
    (logs / "c.jsonl").symlink_to("c.jsonl")
    locked = logs / "d.jsonl"
    locked.write_text(line(1) + "\n")
    locked.chmod(0)
    whole = gzip.compress((line(2) + "\n" + line(3) + "\n").encode(), mtime=0)
    (logs / "e.jsonl.1.gz").write_bytes(whole + b"trailing bytes")
    crc = bytearray(gzip.compress((line(4) + "\n").encode(), mtime=0))
    crc[-8] ^= 0xFF  # the CRC32 in the trailer: the line decompresses, the end does not check
    (logs / "e.jsonl.2.gz").write_bytes(bytes(crc))
    (logs / "f.jsonl").write_text(line(5) + "\n")
    one = ingest("logs", "--store", "one", "--json", check=False)
    many = ingest("backfill", "logs", "--store", "many", "--json", "--scheduler", cluster.address,
                  "--split-bytes", "200KB", check=False)  # fmt: skip
    assert one.returncode == many.returncode == 3, many.stderr.decode()
    assert b"Traceback" not in many.stderr, many.stderr.decode()
    one_summary, many_summary = json.loads(one.stdout), json.loads(many.stdout)
    failed = many_summary["files_failed"]
    names = ("b.jsonl", "c.jsonl", "d.jsonl", "e.jsonl.1.gz", "e.jsonl.2.gz")
    assert set(failed) == {f"logs/{n}" for n in names}
    assert "dangling symlink" in failed["logs/b.jsonl"] and "Permission denied" in failed["logs/d.jsonl"]
    assert "CRC" in failed["logs/e.jsonl.2.gz"]
    assert many_summary["backfill"]["tasks"] > 2
    assert comparable(many_summary) == comparable(one_summary)
    assert many_summary["error"] == one_summary["error"]
    stderr = many.stderr.decode()
    assert "could not read logs/d.jsonl: Permission denied" in stderr, stderr
    pd.testing.assert_frame_equal(store_rows(tmp_path / "many"), store_rows(tmp_path / "one"))

    again = ingest("backfill", "logs", "--store", "many", "--json", "--scheduler", cluster.address,
                   "--split-bytes", "200KB", check=False)  # fmt: skip
    assert again.returncode == 3
    summary = json.loads(again.stdout)
    assert set(summary["files_failed"]) == set(failed)
    # the task of the damaged files ran again (their sound lines, and f.jsonl's if it shares
    # their task, are already stored); a.jsonl's tasks did not
    assert summary["records_written"] == 0 and summary["lines_read"] in (3, 4)
    assert summary["skipped"] == {"already_stored": summary["lines_read"]}
    pd.testing.assert_frame_equal(store_rows(tmp_path / "many"), store_rows(tmp_path / "one"))


def test_signals_and_json_are_those_of_ingest_run(tmp_path: Path, ingest: Ingest, cluster: DaskCluster):
    """--max-rejects (exit 65 with the summary so far), the "nothing matched" warning, the
    one warning line of -q, and --json's shape: as ``ingest run`` gives them (issue 14)."""
    shutil.copytree(SAMPLE_LOGS, tmp_path / "logs", ignore=shutil.ignore_patterns("*.py"))
    bf = ("backfill", "--scheduler", cluster.address)

    runs = {name: ingest(*cmd, "logs", "--store", name, "--json", "--max-rejects", "0", check=False)
            for name, cmd in (("one", ()), ("many", bf))}  # fmt: skip
    one, many = (json.loads(runs[n].stdout) for n in ("one", "many"))
    assert runs["one"].returncode == runs["many"].returncode == 65, runs["many"].stderr.decode()
    assert one["ok"] is many["ok"] is False and one["exit_code"] == many["exit_code"] == 65
    assert set(many) - {"backfill", "dashboard"} == set(one)
    shape = r"\d+ rejected lines and \d+ rejected records in \d+ lines read exceeded --max-rejects 0; .*"
    for summary in (one, many):
        assert re.fullmatch(shape + r" \(see .*\)", summary["error"]), summary["error"]
    assert "not recorded as done" in many["error"]
    assert "Traceback" not in runs["many"].stderr.decode()
    assert b"endpoint" in runs["many"].stderr  # the table of what was done, before the error

    # a share the logs stay under: the run goes through, and so does the backfill
    one = ingest.json("logs", "--store", "one-b", "--max-rejects", "50%")
    many = ingest.json(*bf, "logs", "--store", "many-b", "--max-rejects", "50%")
    assert comparable(many) == comparable(one) and many["exit_code"] == 0

    # -q: the one warning line about rejects, and a selection that matched nothing
    quiet = {name: ingest(*cmd, "logs", "--store", f"{name}-c", "-q", "--endpoint", "/spacy",
                          check=False) for name, cmd in (("one", ()), ("many", bf))}  # fmt: skip
    assert quiet["one"].returncode == quiet["many"].returncode == 0
    one_err, many_err = (quiet[n].stderr.decode() for n in ("one", "many"))
    assert "--endpoint /spacy matched none of the endpoints read" in one_err
    assert "did you mean /spacy/" in one_err
    matched = [line for line in one_err.splitlines() if "matched none" in line]
    assert matched and matched == [line for line in many_err.splitlines() if "matched none" in line]
    quiet = {name: ingest(*cmd, "logs", "--store", f"{name}-d", "-q", check=False)
             for name, cmd in (("one", ()), ("many", bf))}  # fmt: skip
    lines = {n: re.sub(r"see \S+", "see FILE", quiet[n].stderr.decode()) for n in ("one", "many")}
    assert lines["one"].startswith("ingest: warning: 2 of 266 lines rejected")
    assert lines["one"] == lines["many"]


def _kserve_pairs(n: int, gap: int) -> list[dict]:
    """n KServe pairs whose response comes ``gap`` events after its request (so pairs straddle
    files and ranges), at 12:00:00 + 0.1 s each; pair 7's batch sizes differ (a reject)."""
    from tests import format_samples as samples

    def ts(i: int) -> str:
        return f"2026-11-24T12:0{i // 600}:{(i // 10) % 60:02d}.{i % 10}Z"

    events, step = [], 0
    for i in range(n + gap):
        if i < n:
            texts = ["first", "second"] if i == 7 else [f"text {i}"]
            events.append(samples.cloudevent("request", f"p-{i}", {"instances": texts}, time=ts(step)))
            step += 1
        if i >= gap:
            events.append(
                samples.cloudevent("response", f"p-{i - gap}", {"predictions": [i % 2]}, time=ts(step))
            )
            step += 1
    return events


def test_joined_formats_equal_a_single_machine_run(tmp_path: Path, ingest: Ingest, cluster: DaskCluster):
    """KServe and Azure ML log a pair as two events joined by an id: halves in different
    files and ranges (tasks) are joined by the join step, and the store, summary and rejects
    file equal ``ingest run``'s, the missing halves counted as there."""
    from tests import format_samples as samples

    events = tmp_path / "kserve"
    pairs = _kserve_pairs(400, gap=5)
    for k in range(4):  # a quarter of the events each: pairs straddle the files
        samples._dump(events / f"events-{k}.jsonl", pairs[k * 202 : (k + 1) * 202])
    sample = samples.kserve_lines()  # both orders, a lone request and a lone response, v2, SSE
    samples._dump(events / "z-sample-0.jsonl", sample[0:1] + sample[2:3] + sample[4:7])
    samples._dump(events / "z-sample-1.jsonl", sample[1:2] + sample[3:4] + sample[7:])
    (tmp_path / "ingest.toml").write_text('[formats.kserve]\nlabels = ["NEGATIVE", "POSITIVE"]\n')

    blob = tmp_path / "blobs" / "c-3.json"
    blob.parent.mkdir()
    blob.write_text(json.dumps([{"ticket": "big payload ticket"}]))
    azure = samples.azure_lines(str(blob), str(tmp_path / "blobs" / "gone.json"))
    folder = tmp_path / "modelDataCollector" / "tickets" / "blue" / "model_inputs" / "2026" / "11" / "24"
    for k, part in enumerate((azure[0:3], azure[3:8], azure[8:])):  # c-1, c-2, c-4 split
        samples._dump(folder / f"{12 + k}" / "0.jsonl", part)

    args = ("kserve", "modelDataCollector", "--config", "ingest.toml")
    one = ingest.json(*args, "--store", "one")
    many = backfill(ingest, cluster, *args, "--store", "many", "--split-bytes", "4KB")
    assert many["backfill"]["tasks"] > 20  # files cut into ranges: most pairs cross a task boundary
    assert (
        many["formats"] == one["formats"] == {"kserve": "6 files, detected", "azureml": "3 files, detected"}
    )
    assert comparable(many) == comparable(one)
    assert one["endpoints"]["sentiment"]["written"] == 399 + 5 and one["endpoints"]["tickets"]["written"] == 5
    assert one["skipped"]["missing_output"] == 2 and one["skipped"]["response_without_request"] == 1
    assert one["notes"] == []  # nothing waits: every pair is complete or past its window
    assert read_rejects(ingest, many["rejects_file"]) == read_rejects(ingest, one["rejects_file"])
    assert [r["line"] for r in read_rejects(ingest, one["rejects_file"])]  # pair 7, at its response
    single, cluster_rows = store_rows(tmp_path / "one"), store_rows(tmp_path / "many")
    assert not cluster_rows["id"].duplicated().any()
    pd.testing.assert_frame_equal(cluster_rows, single)

    # resumed after the tasks were done: the halves they left are in the manifest
    (manifest,) = (tmp_path / "many" / "_backfill").glob("*.jsonl")
    kept = [
        line for line in manifest.read_text().splitlines() if '"join"' not in line and "finished" not in line
    ]
    manifest.write_text("\n".join(kept) + "\n")
    shutil.rmtree(tmp_path / "many" / "monitoring_sentiment")
    again = backfill(ingest, cluster, *args, "--store", "many", "--split-bytes", "4KB")
    assert again["backfill"]["resumed"] == again["backfill"]["tasks"]
    joined = store_rows(tmp_path / "many")
    assert len(joined) < len(single)  # only the pairs the join step makes came back
    assert set(joined["id"]) <= set(single["id"])


def test_a_time_window_judges_a_joined_pair_as_a_single_machine_run_does(
    tmp_path: Path, ingest: Ingest, cluster: DaskCluster
):
    """A pair straddling --until belongs to its request's window; a half alone outside the
    window is outside_time_window, in the join step as in ``ingest run``."""
    from tests import format_samples as samples

    samples._dump(tmp_path / "kserve" / "a.jsonl", [
        samples.cloudevent("request", "late", {"instances": ["good night"]}, time="2026-11-24T23:59:59.9Z"),
        samples.cloudevent("request", "alone", {"instances": ["failed"]}, time="2026-11-25T00:00:01Z"),
    ])  # fmt: skip
    samples._dump(tmp_path / "kserve" / "b.jsonl", [
        samples.cloudevent("response", "late", {"predictions": [1]}, time="2026-11-25T00:00:00.2Z"),
    ])  # fmt: skip
    window = ("kserve", "--since", "2026-11-24", "--until", "2026-11-25")
    one = ingest.json(*window, "--store", "one")
    many = backfill(ingest, cluster, *window, "--store", "many")
    assert comparable(many) == comparable(one)
    assert one["records_written"] == 1 and one["skipped"] == {"outside_time_window": 1}


def test_a_dataset_decided_by_a_later_file_is_decided_as_on_one_machine(
    tmp_path: Path, ingest: Ingest, cluster: DaskCluster
):
    """A new dataset's task and multi-label kind come from its first telling records in input
    order (issue 16): when those are in another task than records they decide (an empty
    output before them, a multi-label record after them), the backfill decides as one machine."""
    from tests.test_dataset_decisions import EMPTY_1, EMPTY_2, FOUND, tc_line

    logs = tmp_path / "logs"
    logs.mkdir()
    files = {
        "a.jsonl": [EMPTY_1, tc_line("top-1", [0.7], 1)],  # waits for its task; decides single-label
        "b.jsonl": [EMPTY_2],
        "c.jsonl": [FOUND, tc_line("two labels", [0.9, 0.8], 3)],  # tells NER; would say multi-label
    }
    for name, logged in files.items():
        (logs / name).write_text("".join(json.dumps(line) + "\n" for line in logged))
    one = ingest.json("logs", "--store", "one")
    many = backfill(ingest, cluster, "logs", "--store", "many", "--split-bytes", "200B")
    assert many["backfill"]["tasks"] >= 4  # a line or two per task
    assert comparable(many) == comparable(one)
    assert one["endpoints"]["/ner/"]["written"] == 3 and one["rejected"] == 1
    rejects = read_rejects(ingest, many["rejects_file"])
    assert rejects == read_rejects(ingest, one["rejects_file"])
    assert "is single-label: decided by its first records" in rejects[0]["reason"]
    pd.testing.assert_frame_equal(store_rows(tmp_path / "many"), store_rows(tmp_path / "one"))
    for dataset in ("monitoring_ner", "monitoring_cls"):
        meta = json.loads((tmp_path / "one" / dataset / "_dataset.json").read_text())
        assert json.loads((tmp_path / "many" / dataset / "_dataset.json").read_text()) == meta
    assert (
        json.loads((tmp_path / "one" / "monitoring_cls" / "_dataset.json").read_text())["multi_label"]
        is False
    )


def test_a_wrong_scheduler_address_is_one_clear_line_not_a_traceback_or_a_hang(
    tmp_path: Path, ingest: Ingest, cluster: DaskCluster, moto_s3: MotoS3
):
    """Addresses a user gets wrong: a typo (exit 2, before anything is read), the dashboard's
    port or another HTTP server (exit 1 within Dask's connect timeout, which stops a Client
    from waiting forever on a server that never answers Dask's handshake), nobody there."""
    big_log(tmp_path / "access.jsonl", 20)
    env = {"DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "4s"}
    wrong = {
        "nonsense": 2,  # no port
        "http://127.0.0.1:8786": 2,  # not a Dask protocol
        f"tcp://127.0.0.1:{cluster.dashboard_port}": 1,  # the dashboard: HTTP that waits for a request
        moto_s3.url.replace("http://", "tcp://"): 1,  # an HTTP server that answers Dask with an error page
        "tcp://127.0.0.1:1": 1,  # nobody
    }
    for address, code in wrong.items():
        started = time.monotonic()
        proc = ingest("backfill", "access.jsonl", "--scheduler", address, env=env, check=False)
        err = proc.stderr.decode()
        assert proc.returncode == code, (address, err)
        assert "Traceback" not in err and err.startswith("ingest: error: "), (address, err)
        assert address in err and len(err.strip().splitlines()) == 1, (address, err)
        assert time.monotonic() - started < 60, address
    assert not (tmp_path / "rubrix-store").exists()  # nothing was written for any of them


def test_custom_mappers_on_the_workers_shadow_nothing_and_nothing_shadows_them(
    tmp_path: Path, ingest: Ingest, cluster: DaskCluster
):
    """On one machine a custom mapper's module is loaded under a private name. On the
    workers too: two ``m.py`` of two folders stay two mappers, a ``mappers.py`` of the user
    does not replace our ``mappers`` package (on the workers or the scheduler), and a folder
    named like a mapper's module where the workers run does not hide it."""
    from distributed import Client

    shout = (
        "def shout(inputs, outputs):\n"
        "    labels = [{'class': %r, 'score': 1.0}]\n"
        "    return {'inputs': {'text': str(inputs)}, 'prediction': {'labels': labels}}\n"
    )
    for folder, label in (("a", "AAA"), ("b", "BBB")):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "m.py").write_text(shout % label)
    (tmp_path / "mappers.py").write_text(shout % "MINE")
    (tmp_path / "ingest.toml").write_text(
        '[endpoints."/spacy/"]\ndataset = "aaa"\nmapper = "./a/m.py:shout"\n'
        '[endpoints."/transformers/"]\ndataset = "bbb"\nmapper = "./b/m.py:shout"\n'
        '[endpoints."/translate/"]\ndataset = "mine"\nmapper = "mappers:shout"\n'
    )
    generated(tmp_path / "access.jsonl", 300)
    one = ingest.json("access.jsonl", "-c", "ingest.toml", "--store", "one")
    hiding = cluster.workdir / "m"  # the workers' working directory
    hiding.mkdir()
    try:
        many = backfill(ingest, cluster, "access.jsonl", "-c", "ingest.toml", "--store", "many")
    finally:
        hiding.rmdir()
    assert comparable(many) == comparable(one)
    assert many["rejected"] == 0 and many["records_written"] > 300
    rows = store_rows(tmp_path / "many")
    pd.testing.assert_frame_equal(rows, store_rows(tmp_path / "one"))
    labels = {
        dataset: {json.loads(r)["prediction"]["labels"][0]["class"] for r in group["record"]}
        for dataset, group in rows.groupby("dataset")
    }
    assert labels == {"aaa": {"AAA"}, "bbb": {"BBB"}, "mine": {"MINE"}}

    # A package of the user's named ``mappers`` too, whose module imports its neighbour
    (tmp_path / "mappers.py").unlink()
    (tmp_path / "mappers").mkdir()
    (tmp_path / "mappers" / "__init__.py").write_text("")
    (tmp_path / "mappers" / "labels.py").write_text("LABEL = 'PACKAGED'\n")
    (tmp_path / "mappers" / "loud.py").write_text(
        "from .labels import LABEL\n\n\n" + (shout % "X").replace("'X'", "LABEL")
    )
    config = (tmp_path / "ingest.toml").read_text().replace("mappers:shout", "mappers.loud:shout")
    (tmp_path / "ingest.toml").write_text(config)
    args = ("access.jsonl", "-c", "ingest.toml", "-e", "/translate/")
    one = ingest.json(*args, "--store", "one-pkg")
    many = backfill(ingest, cluster, *args, "--store", "many-pkg")
    assert comparable(many) == comparable(one) and many["rejected"] == 0
    rows = store_rows(tmp_path / "many-pkg")
    pd.testing.assert_frame_equal(rows, store_rows(tmp_path / "one-pkg"))
    assert {json.loads(r)["prediction"]["labels"][0]["class"] for r in rows["record"]} == {"PACKAGED"}

    def our_mappers() -> str:
        return sys.modules["mappers"].__file__ if "mappers" in sys.modules else "not imported"

    with Client(cluster.address, timeout=10) as client:
        found = [*client.run(our_mappers).values(), client.run_on_scheduler(our_mappers)]
    assert set(found) <= {str(ROOT / "mappers" / "__init__.py"), "not imported"}, found


def test_backfill_help_says_what_max_rejects_does_in_a_backfill(ingest: Ingest):
    """A backfill has no checkpoints: past --max-rejects it leaves the task unrecorded."""
    text = " ".join(ingest("backfill", "--help").stdout.decode().split())
    option = text[text.index("--max-rejects") : text.index("--rubrix-url")]
    assert "checkpoint" not in option and "recorded as done" in option, option
    run_help = " ".join(ingest("run", "--help").stdout.decode().split())
    assert "checkpoints left where they were" in run_help


def test_a_split_size_that_is_not_positive_is_a_usage_error(tmp_path: Path, ingest: Ingest):
    """--split-bytes 0 raised ValueError from range(); a negative size planned no task for
    the file and exited 0 having read nothing."""
    big_log(tmp_path / "access.jsonl", 20)
    for size in ("0", "-5", "-1MiB"):
        proc = ingest("backfill", "access.jsonl", "--cluster", "local", "--split-bytes", size, check=False)
        err = proc.stderr.decode()
        assert proc.returncode == 2 and "Traceback" not in err and "--split-bytes" in err, (size, err)
    assert not (tmp_path / "rubrix-store").exists()


def test_cluster_local_wins_over_a_scheduler_address_from_the_environment(tmp_path: Path, ingest: Ingest):
    """A flag wins over the environment, as for every other setting: DASK_SCHEDULER_ADDRESS
    exported for the team's cluster does not make --cluster local a usage error."""
    big_log(tmp_path / "access.jsonl", 20)
    env = {"DASK_SCHEDULER_ADDRESS": "tcp://127.0.0.1:1"}  # nobody there: it must not be used
    summary = ingest.json("backfill", "access.jsonl", "--cluster", "local", "--workers", "1", env=env)
    assert summary["records_written"] == 20
    proc = ingest("backfill", "access.jsonl", "--cluster", "local", "--scheduler", "tcp://127.0.0.1:1",
                  check=False)  # fmt: skip
    assert proc.returncode == 2 and "alternatives" in proc.stderr.decode()  # both flags: which one?


def test_a_store_in_s3_keeps_and_applies_dataset_decisions_as_a_local_store(
    tmp_path: Path, ingest: Ingest, cluster: DaskCluster, moto_s3: MotoS3, monkeypatch
):
    """A dataset decided single-label by a first backfill is single-label for the next one
    into the same S3 store: a multi-label record is rejected there, as one machine rejects
    it in its local store; and the dataset's ``_dataset.json`` says so, as a local one does."""
    import s3fs

    from tests.test_dataset_decisions import tc_line

    for name, value in moto_s3.env().items():
        monkeypatch.setenv(name, value)
    fs = s3fs.S3FileSystem()
    fs.mkdir("decisions")
    (tmp_path / "a.jsonl").write_text(json.dumps(tc_line("single one", [0.7], 1)) + "\n")
    (tmp_path / "b.jsonl").write_text(json.dumps(tc_line("two labels", [0.9, 0.8], 3)) + "\n")
    local, s3 = [], []
    for log in ("a.jsonl", "b.jsonl"):
        local.append(ingest.json(log, "--store", "one"))
        s3.append(backfill(ingest, cluster, log, "--store", "s3://decisions/store", env=moto_s3.env()))
    assert local[1]["rejected"] == 1 and local[1]["records_written"] == 0
    assert [comparable(s) for s in s3] == [comparable(s) for s in local]
    meta = json.loads((tmp_path / "one" / "monitoring_cls" / "_dataset.json").read_text())
    assert meta["multi_label"] is False
    assert json.loads(fs.cat_file("decisions/store/monitoring_cls/_dataset.json")) == meta


def test_local_cluster_options_with_a_scheduler_are_a_usage_error(tmp_path: Path, ingest: Ingest):
    """--workers and --memory-limit size the LocalCluster of --cluster local: given with
    --scheduler they were ignored without a word (the cluster's own workers run the tasks)."""
    big_log(tmp_path / "access.jsonl", 20)
    for extra in (["--workers", "8"], ["--memory-limit", "2GiB"]):
        proc = ingest("backfill", "access.jsonl", "--scheduler", "tcp://127.0.0.1:1", *extra, check=False)
        err = proc.stderr.decode()
        assert proc.returncode == 2 and extra[0] in err and "--cluster local" in err, (extra, err)
