"""Inputs in S3, against moto's S3 server on 127.0.0.1, through the real CLI.

A small recording proxy sits between ingest and moto, so that the tests can see which
requests a run makes: an object read before must cost a range request for its first
line and a metadata request, never a download.
"""

from __future__ import annotations

import gzip
import http.client
import http.server
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests import format_samples as samples
from tests.conftest import Ingest, free_port

pytest.importorskip("s3fs")
boto3 = pytest.importorskip("boto3")
pytest.importorskip("moto")


class Recorder(http.server.ThreadingHTTPServer):
    def __init__(self, upstream: str):
        super().__init__(("127.0.0.1", 0), _Forward)
        self.upstream = upstream
        self.requests: list[tuple[str, str, str | None, int]] = []  # method, path, Range, bytes sent
        # called with (method, path, Range) before a request is forwarded: a test's event
        self.before: Callable[[str, str, str | None], None] | None = None


class _Forward(http.server.BaseHTTPRequestHandler):
    server: Recorder
    protocol_version = "HTTP/1.1"

    def _forward(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.server.before is not None:
            self.server.before(self.command, self.path, self.headers.get("Range"))
        host, port = self.server.upstream.split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
        conn.request(self.command, self.path, body=body or None, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        self.server.requests.append((self.command, self.path, self.headers.get("Range"), len(data)))
        self.send_response(resp.status)
        for key, value in resp.getheaders():
            if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(key, value)
        # a HEAD's Content-Length is the object's size, not the (empty) body's
        length = resp.getheader("Content-Length") if self.command == "HEAD" else None
        self.send_header("Content-Length", length or str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        conn.close()

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _forward

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def s3() -> Iterator[dict[str, str]]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/moto-api/", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise RuntimeError("moto server did not start") from None
                time.sleep(0.1)
        recorder = Recorder(f"127.0.0.1:{port}")
        thread = threading.Thread(target=recorder.serve_forever, daemon=True)
        thread.start()
        env = {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{recorder.server_address[1]}",
        }
        yield {**env, "_recorder": recorder}  # type: ignore[dict-item]
        recorder.shutdown()
    finally:
        proc.terminate()
        proc.wait(10)


def _client(env: dict) -> object:
    return boto3.client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )


def _lines(objs: list[dict]) -> bytes:
    return "".join(json.dumps(o) + "\n" for o in objs).encode()


def _hour(hour: int, first_id: int, n: int) -> list[dict]:
    return [
        samples.capture(
            json.dumps({"inputs": f"text {i}"}),
            json.dumps([{"label": "POSITIVE", "score": 0.5}]),
            event_id=f"e-{i}",
            time=f"2026-11-24T{hour:02d}:00:{i % 60:02d}Z",
        )
        for i in range(first_id, first_id + n)
    ]


def test_s3_prefix_growing_across_cron_runs(ingest: Ingest, s3: dict) -> None:
    env = {k: v for k, v in s3.items() if not k.startswith("_")}
    recorder: Recorder = s3["_recorder"]
    client = _client(env)
    client.create_bucket(Bucket="captures")
    prefix = "data-capture/nlp-sentiment-prod/AllTraffic/2026/11/24"
    client.put_object(Bucket="captures", Key=f"{prefix}/12/00-00-000-a.jsonl", Body=_lines(_hour(12, 0, 40)))
    # a gzip object (as a lifecycle job might leave it) and a file that is not a log
    client.put_object(
        Bucket="captures",
        Key=f"{prefix}/12/30-00-000-b.jsonl.gz",
        Body=gzip.compress(_lines(_hour(12, 40, 10))),
    )
    client.put_object(Bucket="captures", Key="data-capture/README.txt", Body=b"not a log\n")

    one = ingest.json("s3://captures/data-capture/", env=env)
    assert one["formats"] == {"sagemaker": "2 files, detected"}
    assert one["endpoints"]["nlp-sentiment-prod"]["written"] == 50
    assert sorted(one["files"]) == [
        f"s3://captures/{prefix}/12/00-00-000-a.jsonl",
        f"s3://captures/{prefix}/12/30-00-000-b.jsonl.gz",
    ]

    # an hour later, the prefix has grown by one object
    client.put_object(Bucket="captures", Key=f"{prefix}/13/00-00-000-c.jsonl", Body=_lines(_hour(13, 50, 5)))
    recorder.requests.clear()
    two = ingest.json("s3://captures/data-capture/", env=env)
    assert two["lines_read"] == 5
    assert two["endpoints"]["nlp-sentiment-prod"]["written"] == 5
    assert set(two["files_not_read"].values()) == {"already read"}
    # objects read before: range requests of their start (and gzip trailer), never whole
    old = [r for r in recorder.requests if r[0] == "GET" and "/12/" in r[1] and "list-type" not in r[1]]
    assert old and all(r[2] is not None and r[2].startswith("bytes=") for r in old)
    assert sum(r[3] for r in old) < 70_000 * 3

    three = ingest.json("s3://captures/data-capture/", env=env)
    assert three["lines_read"] == 0
    assert len(ingest.dataset("monitoring_nlp-sentiment-prod")) == 55

    # a glob picks objects by pattern; the checkpoints are the same (by content)
    four = ingest.json(
        "s3://captures/data-capture/*/AllTraffic/2026/11/24/1[23]/*.jsonl", "--from-start", env=env
    )
    assert four["endpoints"]["nlp-sentiment-prod"]["skipped"]["already_stored"] == 45


def test_s3_errors_stop_before_reading(ingest: Ingest, s3: dict) -> None:
    env = {k: v for k, v in s3.items() if not k.startswith("_")}
    _client(env).create_bucket(Bucket="empty-one")
    proc = ingest("s3://empty-one/nothing-here", env=env, check=False)
    assert proc.returncode == 2
    assert "no such object or prefix: s3://empty-one/nothing-here" in proc.stderr.decode()
    proc = ingest("s3://empty-one/*.jsonl", env=env, check=False)
    assert proc.returncode == 2 and "no object matches" in proc.stderr.decode()
    # A prefix (trailing slash) with no log object under it is a usage error, as an empty
    # local directory is: a mistyped prefix must not pass for "nothing new".
    for given in ("s3://empty-one/nothing-here/", "s3://empty-one/"):
        proc = ingest(given, env=env, check=False)
        assert proc.returncode == 2, (given, proc.stderr)
        assert f"no log files in {given} (looked for *.jsonl" in proc.stderr.decode()
    _client(env).put_object(Bucket="empty-one", Key="docs/README.txt", Body=b"not a log\n")
    proc = ingest("s3://empty-one/docs/", env=env, check=False)
    assert proc.returncode == 2 and "no log files in s3://empty-one/docs/" in proc.stderr.decode()


def test_blob_reference_in_s3_is_read(ingest: Ingest, s3: dict, tmp_path: Path) -> None:
    env = {k: v for k, v in s3.items() if not k.startswith("_")}
    client = _client(env)
    client.create_bucket(Bucket="mdc")
    client.put_object(Bucket="mdc", Key="blobs/c-3.json", Body=json.dumps([{"ticket": "from s3"}]).encode())
    lines = samples.azure_lines("s3://mdc/blobs/c-3.json", "s3://mdc/blobs/missing.json")[4:8]
    key = "modelDataCollector/tickets/blue/model_inputs/2026/11/24/12/0.jsonl"
    client.put_object(Bucket="mdc", Key=key, Body=_lines(lines))
    summary = ingest.json("s3://mdc/modelDataCollector/", env=env)
    ep = summary["endpoints"]["tickets"]
    assert (ep["written"], ep["skipped"]) == (1, {"blob_unreadable": 1})


def _damaged_gzips() -> dict[str, bytes]:
    """Gzip files damaged as public bug reports about log readers show them, each with lines."""

    def gz(text: str) -> bytes:
        return gzip.compress(text.encode(), mtime=0)

    one, two = _lines(_hour(12, 0, 20)), _lines(_hour(12, 20, 20))
    crc = bytearray(gz(one.decode()))
    crc[-8] ^= 0xFF  # the CRC32 in the trailer
    whole = gz(two.decode())
    return {
        "a-crc.jsonl.gz": bytes(crc),
        "b-truncated.jsonl.gz": whole[: len(whole) // 2],  # first lines whole, the rest missing
        "c-truncated-early.jsonl.gz": whole[:30],  # not even the first line
        "d-not-gzip.jsonl.gz": b"\x1f\x8b" + bytes(range(256)) * 4,  # a gzip magic, then garbage
        "e-trailing.jsonl.gz": gz(_lines(_hour(13, 0, 5)).decode()) + b"trailing garbage",
    }


def test_damaged_gzip_objects_follow_the_rules_of_local_files(
    ingest: Ingest, s3: dict, tmp_path: Path
) -> None:
    """Issue 13 for object storage: a damaged .gz object is named with the same reason as the
    same file on disk, the run exits 3 and the other objects are read; its checkpoint does
    not move, except after trailing garbage behind whole members, which is read and reported
    once. (Objects are written whole: a truncated one is damaged, never "still being written".)"""
    env = {k: v for k, v in s3.items() if not k.startswith("_")}
    client = _client(env)
    client.create_bucket(Bucket="damaged")
    local = tmp_path / "local"
    local.mkdir()
    files = {**_damaged_gzips(), "z-fine.jsonl": _lines(_hour(14, 0, 3))}
    old = time.time() - 7200  # on disk, an old file cannot be still being written either
    for name, body in files.items():
        client.put_object(Bucket="damaged", Key=f"logs/{name}", Body=body)
        (local / name).write_bytes(body)
        os.utime(local / name, (old, old))

    def run(given: str, store: str, code: int = 3) -> dict:
        proc = ingest(given, "--store", store, "--json", env=env, check=False)
        assert b"Traceback" not in proc.stderr, proc.stderr.decode()
        assert proc.returncode == code, proc.stderr.decode()
        return json.loads(proc.stdout)

    s3_one = run("s3://damaged/logs/", "s3-store")
    local_one = run(str(local), "local-store")
    failed = {k.rsplit("/", 1)[1]: v for k, v in s3_one["files_failed"].items()}
    assert failed == {k.rsplit("/", 1)[1]: v for k, v in local_one["files_failed"].items()}
    assert set(failed) == {n for n in files if n[0] in "abcde"}, failed
    assert "CRC" in failed["a-crc.jsonl.gz"]
    assert "cut short" in failed["b-truncated.jsonl.gz"]
    assert "16 bytes of trailing garbage" in failed["e-trailing.jsonl.gz"]
    for summary in (s3_one, local_one):
        assert summary["incomplete_last_lines"] == {}
        assert "no complete line yet" not in summary["files_not_read"].values()
    assert s3_one["records_written"] == local_one["records_written"] > 3 + 5
    # the damaged objects stay unread (reported again); the trailing garbage is not reported again
    s3_two = run("s3://damaged/logs/", "s3-store")
    assert {k.rsplit("/", 1)[1] for k in s3_two["files_failed"]} == set(failed) - {"e-trailing.jsonl.gz"}
    assert s3_two["records_written"] == 0
    # a backfill reads them as ingest run does
    cluster = ("--cluster", "local", "--workers", "1")
    proc = ingest(
        "backfill", "s3://damaged/logs/", "--store", "backfill", *cluster, "--json", env=env, check=False
    )
    assert b"Traceback" not in proc.stderr, proc.stderr.decode()
    assert proc.returncode == 3, proc.stderr.decode()
    backfill = json.loads(proc.stdout)
    assert backfill["files_failed"] == s3_one["files_failed"]
    assert backfill["records_written"] == s3_one["records_written"]


def test_backfill_an_object_removed_between_planning_and_counting_is_a_file_fault(
    ingest: Ingest, s3: dict
) -> None:
    """Issue 13 in ``ingest backfill``: the pass that counts the lines of a split object's
    ranges runs after planning; an object deleted meanwhile (a lifecycle rule, a rotation)
    is reported by name like any unreadable file, the other inputs are read, exit 3."""
    env = {k: v for k, v in s3.items() if not k.startswith("_")}
    recorder: Recorder = s3["_recorder"]
    client = _client(env)
    client.create_bucket(Bucket="vanishing")
    client.put_object(Bucket="vanishing", Key="logs/a-big.jsonl", Body=_lines(_hour(12, 0, 300)))
    client.put_object(Bucket="vanishing", Key="logs/b-small.jsonl", Body=_lines(_hour(13, 0, 7)))
    upstream = _client({**env, "AWS_ENDPOINT_URL": f"http://{recorder.upstream}"})
    removed: list[str] = []

    def remove_when_counted(method: str, path: str, byte_range: str | None) -> None:
        # Planning reads an object's first 64 KB at most (its first line, its start); the
        # counting pass reads the ranges before a split: the first request past 64 KB.
        if method != "GET" or "a-big" not in path or not byte_range or removed:
            return
        first, last = (int(n) for n in byte_range.removeprefix("bytes=").split("-"))
        if first > 0 or last >= 64 << 10:
            upstream.delete_object(Bucket="vanishing", Key="logs/a-big.jsonl")
            removed.append(byte_range)

    recorder.before = remove_when_counted
    try:
        proc = ingest(
            "backfill", "s3://vanishing/logs/", "--store", "store", "--split-bytes", "40KB",
            "--cluster", "local", "--workers", "1", "--json", env=env, check=False,
        )  # fmt: skip
    finally:
        recorder.before = None
    assert removed, "the object was never read past its start: the test did not test"
    assert b"Traceback" not in proc.stderr, proc.stderr.decode()
    assert proc.returncode == 3, proc.stderr.decode()
    summary = json.loads(proc.stdout)
    assert list(summary["files_failed"]) == ["s3://vanishing/logs/a-big.jsonl"]
    assert "FileNotFoundError" in summary["files_failed"]["s3://vanishing/logs/a-big.jsonl"]
    assert summary["records_written"] == 7


def test_objects_that_start_alike_with_blank_lines_or_nuls_are_different_objects(
    ingest: Ingest, s3: dict
) -> None:
    # As for local files: a blank first line (`echo > log`) or a NUL run longer than the
    # 64 KB a first line is known by says nothing of the object; its first line with content does.
    env = {k: v for k, v in s3.items() if not k.startswith("_")}
    client = _client(env)
    client.create_bucket(Bucket="blank-starts")
    bodies = {
        "a.jsonl": b"\n" + _lines(_hour(12, 0, 2)),
        "b.jsonl": b"\n" + _lines(_hour(12, 2, 3)),
        "c.jsonl": b"\0" * (100 << 10) + _lines(_hour(12, 5, 4)),
        "d.jsonl": b"\0" * (100 << 10) + _lines(_hour(12, 9, 5)),
        "e.jsonl.gz": gzip.compress(b" \r\n\0\0\n" + _lines(_hour(12, 14, 6))),
    }
    for key, body in bodies.items():
        client.put_object(Bucket="blank-starts", Key=f"logs/{key}", Body=body)
    # the format is named: detection looks at an object's first 64 KB, all NULs in c and d
    one = ingest.json("s3://blank-starts/logs/", "--format", "sagemaker", env=env)
    assert one["files_not_read"] == {}  # lines_read counts the blank lines too
    assert one["records_written"] == 20 and one["rejected"] == 0
    # each object has its own checkpoint: a second run reads nothing again
    two = ingest.json("s3://blank-starts/logs/", "--format", "sagemaker", env=env)
    assert two["lines_read"] == 0 and set(two["files_not_read"].values()) == {"already read"}
