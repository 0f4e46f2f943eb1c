"""Network and server faults between ``ingest`` and the real argilla-server 2.8.

``ingest`` talks to the server through tests/fault_proxy.py, a real TCP proxy on 127.0.0.1
that answers 502/503 itself, resets connections before or after the server did the work,
or holds an answer past the client's timeout. What must hold (README, "Sending to an
Argilla 2.x server" and the v0 sink's delivery rules it inherits): transient faults are
retried and every record ends up on the server exactly once (read back through the
server's API, by request id and external id); a server that stays down stops the run with
exit 1 and one line naming the target, never the key, with only what the server
acknowledged counted and the checkpoint unmoved, so that the rerun delivers the rest.

Logs are small (60 records, 10 to a request) so that the whole file takes seconds: the
2.x server on SQLite takes about a hundred records a second.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.argilla_v2_server import ArgillaV2Server
from tests.conftest import Ingest
from tests.fault_proxy import Fault, FaultProxy
from tests.test_incremental import big_log, expected

pytestmark = pytest.mark.timeout(120)

N = 60
BULK = "/records/bulk"
DATASET = "monitoring_spacy"  # big_log's lines are /spacy/ requests, one record each


@pytest.fixture
def proxy(argilla_v2: ArgillaV2Server) -> Iterator[FaultProxy]:
    proxy = FaultProxy(argilla_v2.port).start()
    yield proxy
    proxy.stop()


def via(proxy: FaultProxy, server: ArgillaV2Server, workspace: str) -> dict[str, str]:
    return {**server.env(workspace), "ARGILLA_API_URL": proxy.url}


def assert_exactly_once(server: ArgillaV2Server, workspace: str, n: int) -> None:
    """The server holds request ids r0..r{n-1}, each in one record whose external id is
    unique: nothing lost, nothing twice (a copy under another id would repeat a request id)."""
    records = server.records(DATASET, workspace)
    assert sorted(r["metadata"]["request_id"] for r in records) == expected(n)
    assert len({r["external_id"] for r in records}) == len(records) == n


@pytest.mark.parametrize(
    "fault",
    [
        Fault("status", status=503, times=3),
        Fault("status", status=502, times=2, after=2),
        Fault("reset", times=2, after=1),  # the server never saw these
        Fault("lost", times=2, after=1),  # the server stored these; the answer never came
    ],
    ids=["503", "502-later", "reset", "answer-lost"],
)
def test_transient_bulk_faults_are_retried_and_every_record_is_stored_once(
    tmp_path: Path,
    ingest: Ingest,
    argilla_v2: ArgillaV2Server,
    workspace: str,
    proxy: FaultProxy,
    fault: Fault,
):
    log = big_log(tmp_path / "a.jsonl", N)
    proxy.fail(fault)
    summary = ingest.json(str(log), "--batch-size", "10", env=via(proxy, argilla_v2, workspace))
    assert fault.applied == fault.times  # the faults did hit bulk requests
    assert summary["ok"] and summary["records_written"] == N and summary["rejected"] == 0
    assert_exactly_once(argilla_v2, workspace, N)


def test_an_answer_held_past_the_timeout_is_retried_and_stored_once(
    tmp_path: Path, ingest: Ingest, argilla_v2: ArgillaV2Server, workspace: str, proxy: FaultProxy
):
    log = big_log(tmp_path / "a.jsonl", N)
    stall = Fault("stall", stall=3.0, times=1, after=1)
    proxy.fail(stall)
    summary = ingest.json(
        str(log), "--batch-size", "10", "--timeout", "1", env=via(proxy, argilla_v2, workspace)
    )
    assert stall.applied == 1
    assert summary["records_written"] == N
    assert proxy.count(BULK) == N // 10 + 1  # the held one was sent again
    assert_exactly_once(argilla_v2, workspace, N)


@pytest.mark.parametrize(
    "fault",
    [
        Fault("lost", path="/api/v1/datasets", method="POST", times=1),  # the create itself
        Fault("lost", path="/questions", method="POST", times=1),
        Fault("lost", path="/publish", times=1),
    ],
    ids=["create", "question", "publish"],
)
def test_a_lost_answer_while_creating_the_dataset_makes_one_dataset(
    tmp_path: Path,
    ingest: Ingest,
    argilla_v2: ArgillaV2Server,
    workspace: str,
    proxy: FaultProxy,
    fault: Fault,
):
    """The server did the step and the client never heard: its retry finds it done (409, or
    422 "already been published") and goes on, with one dataset and one question."""
    log = big_log(tmp_path / "a.jsonl", 20)
    proxy.fail(fault)
    summary = ingest.json(str(log), env=via(proxy, argilla_v2, workspace))
    assert fault.applied == 1 and summary["records_written"] == 20
    spaces = {w["name"]: w["id"] for w in argilla_v2.ok("GET", "/api/v1/me/workspaces")["items"]}
    datasets = [d for d in argilla_v2.ok("GET", "/api/v1/me/datasets")["items"]
                if d["workspace_id"] == spaces[workspace]]  # fmt: skip
    assert [d["name"] for d in datasets] == [DATASET]
    dataset = argilla_v2.dataset(DATASET, workspace)
    assert dataset["status"] == "ready" and [q["name"] for q in dataset["questions"]] == ["entities"]
    assert_exactly_once(argilla_v2, workspace, 20)


def test_a_server_that_stays_down_stops_the_run_and_the_rerun_delivers_the_rest(
    tmp_path: Path, ingest: Ingest, argilla_v2: ArgillaV2Server, workspace: str, proxy: FaultProxy
):
    log = big_log(tmp_path / "a.jsonl", N)
    env = via(proxy, argilla_v2, workspace)
    # Two bulk requests get through, then every one fails: one at a time, so the two are known.
    proxy.fail(Fault("status", status=503, times=None, after=2))
    args = [str(log), "--batch-size", "10", "--concurrency", "1", "--retry-for", "1.5"]
    proc = ingest(*args, "--json", env=env, check=False)
    out, err = proc.stdout.decode(), proc.stderr.decode()
    assert proc.returncode == 1, err
    message = err.strip().splitlines()[-1]
    assert message.startswith(f"ingest: error: cannot reach {proxy.url}: HTTP 503 (gave up after"), err
    assert argilla_v2.api_key not in out + err
    failed = json.loads(out)
    assert failed["ok"] is False and failed["exit_code"] == 1 and proxy.url in failed["error"]
    # Only what the server acknowledged is counted, and it is what the server holds.
    stored = argilla_v2.records(DATASET, workspace)
    assert failed["records_written"] == len(stored) == 20
    store_files = [p.read_bytes() for p in ingest.store.rglob("*") if p.is_file()]
    assert not any(argilla_v2.api_key.encode() in data for data in store_files)

    proxy.heal()
    again = ingest.json(*args, env=env)
    assert again["lines_read"] == N  # the checkpoint had not moved past undelivered lines
    assert again["records_written"] == N
    assert_exactly_once(argilla_v2, workspace, N)
    assert ingest.json(*args, env=env)["lines_read"] == 0  # delivered: now it has


def test_a_dataset_left_unpublished_by_a_failed_run_is_finished_by_the_rerun(
    tmp_path: Path, ingest: Ingest, argilla_v2: ArgillaV2Server, workspace: str, proxy: FaultProxy
):
    log = big_log(tmp_path / "a.jsonl", 20)
    env = via(proxy, argilla_v2, workspace)
    proxy.fail(Fault("status", status=502, path="/publish", times=None))
    proc = ingest(str(log), "--retry-for", "1", env=env, check=False)
    assert proc.returncode == 1 and f"cannot reach {proxy.url}: HTTP 502" in proc.stderr.decode()
    assert argilla_v2.dataset(DATASET, workspace)["status"] == "draft"
    proxy.heal()
    assert ingest.json(str(log), env=env)["records_written"] == 20
    assert argilla_v2.dataset(DATASET, workspace)["status"] == "ready"
    assert_exactly_once(argilla_v2, workspace, 20)


def test_requests_reuse_connections(
    tmp_path: Path, ingest: Ingest, argilla_v2: ArgillaV2Server, workspace: str, proxy: FaultProxy
):
    """About 20 requests (handshake, dataset creation, 6 bulk upserts) over at most one
    connection per request in flight: a new connection per request would cost a TCP
    handshake each, and the server's keep-alive is there to avoid it."""
    log = big_log(tmp_path / "a.jsonl", N)
    ingest.json(str(log), "--batch-size", "10", env=via(proxy, argilla_v2, workspace))
    assert len(proxy.requests) >= 15
    # 1 for detection, then the sink's pool: --concurrency 4 bulk requests at once at most
    assert proxy.connections <= 1 + 4 + 2


def overlapping(answers: list[tuple[str, str, int, float, float]]) -> int:
    """How many of these requests were at the server while another one was."""
    return sum(
        1
        for i, (*_, sent, done) in enumerate(answers)
        if any(j != i and other[3] < done and sent < other[4] for j, other in enumerate(answers))
    )


def test_a_database_locked_answer_makes_bulk_requests_go_one_at_a_time(
    tmp_path: Path, ingest: Ingest, argilla_v2: ArgillaV2Server, workspace: str, proxy: FaultProxy
):
    """argilla-server on SQLite answers concurrent upserts with 500 "database is locked"
    (README): after the first such answer the run sends one bulk request at a time, and
    the refused one again. Without it, the same run has requests at the server together."""
    log = big_log(tmp_path / "a.jsonl", N)
    args = [str(log), "--batch-size", "4", "--concurrency", "4"]
    argilla_v2.new_workspace(f"{workspace}-ref")
    assert ingest.json(*args, env=via(proxy, argilla_v2, f"{workspace}-ref"))["records_written"] == N
    assert overlapping([a for a in proxy.answers if BULK in a[1]]) >= 2  # the control: concurrent

    proxy.answers.clear()
    locked = b'{"detail":{"params":{"message":"(sqlite3.OperationalError) database is locked"}}}'
    fault = Fault("status", status=500, body=locked, times=1)
    proxy.fail(fault)
    summary = ingest.json(*args, "--from-start", env=via(proxy, argilla_v2, workspace))
    assert fault.applied == 1 and summary["records_written"] == N
    bulk = [a for a in proxy.answers if BULK in a[1]]
    # Requests already under way when the 500 came finish; every one sent after them is alone.
    # (Under way: sent before the client can have read the 500, which it retries 0.2 s or
    # more later, the backoff's least.)
    read_by = proxy.injected_at[0] + 0.15
    under_way_until = max([done for *_, sent, done in bulk if sent <= read_by], default=read_by)
    later = [a for a in bulk if a[3] >= under_way_until]
    assert len(later) >= 4 and overlapping(later) == 0
    assert_exactly_once(argilla_v2, workspace, N)
