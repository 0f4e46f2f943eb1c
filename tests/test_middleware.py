"""AccessLogMiddleware in real uvicorn processes: what it writes is what ingest reads.

The service is tests/accesslog_app.py; every test sends real HTTP requests, stops the server
with SIGTERM as a process manager would, and reads the files it left behind.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import ROOT, Ingest, Service

APP = "tests.accesslog_app:app"


def start(tmp_path: Path, workers: int = 1, **options: Any) -> Service:
    env = {"ACCESS_LOG": str(tmp_path / "logs" / "access.jsonl"), "ACCESS_LOG_OPTIONS": json.dumps(options)}
    return Service(APP, tmp_path, env, workers=workers).start()


def post(client: httpx.Client, path: str, body: Any, **headers: str) -> tuple[str, httpx.Response]:
    request_id = headers.pop("request_id", None) or uuid.uuid4().hex
    response = client.post(path, json=body, headers={"x-request-id": request_id, **headers})
    return request_id, response


def log_lines(tmp_path: Path) -> list[dict]:
    """Every line the service wrote, but for the readiness probe's GET /health."""
    lines = []
    for path in sorted((tmp_path / "logs").glob("access.jsonl*")):
        if path.name.endswith(".lock"):
            continue
        raw = path.read_bytes()
        assert raw == b"" or raw.endswith(b"\n"), f"{path.name} ends inside a line"
        lines.extend(json.loads(line) for line in raw.splitlines())
    return [line for line in lines if line["path"] != "/health"]


def texts(n: int, seed: int) -> list[str]:
    words = ["Paris", "is", "lovely", "in", "May", "según", "Ana", "and", "the", "Zürich", "office"]
    return [
        " ".join(words[(seed * 7 + i * 3 + j) % len(words)] for j in range(3 + (seed + i) % 9))
        for i in range(n)
    ]


def test_records_equal_what_the_endpoints_answered(tmp_path: Path, ingest: Ingest) -> None:
    service = start(tmp_path, endpoints=["/classify/", "/ner/", "/stream/", "/fail/", "/text/"],
                    max_body_bytes=4000)  # fmt: skip
    answered: dict[str, tuple[str, list, list]] = {}
    try:
        with httpx.Client(base_url=service.url, timeout=30) as client:

            def call(i: int) -> None:
                path = ("/classify/", "/ner/", "/stream/")[i % 3]
                batch = texts(1 + i % 8, i)
                request_id, response = post(client, path, batch)
                assert response.status_code == 200
                answered[request_id] = (path, batch, response.json())

            with ThreadPoolExecutor(8) as pool:
                list(pool.map(call, range(120)))
            # uvicorn closes a connection after an unhandled error: give it its own.
            with httpx.Client(base_url=service.url) as failing:
                assert post(failing, "/fail/", ["x"])[1].status_code == 500
            assert post(client, "/classify/", texts(200, 1))[1].status_code == 200  # over the cap
            assert client.post("/text/", content=b"plain words").status_code == 200
            assert client.get("/health").status_code == 200  # not a logged endpoint
    finally:
        service.stop()

    lines = log_lines(tmp_path)
    assert len(lines) == 123
    by_id = {line["request_id"]: line for line in lines}
    for request_id, (path, batch, response) in answered.items():
        line = by_id[request_id]
        assert (line["path"], line["status"], line["request"], line["response"]) == (
            path,
            200,
            batch,
            response,
        )
        assert line["url"] == service.url + path and line["latency_ms"] > 0
    oversized = next(line for line in lines if line.get("request_omitted") == "too_large")
    assert oversized["request"] is None and oversized["request_bytes"] > 4000

    summary = ingest.json(str(tmp_path / "logs" / "access.jsonl"), "--store", str(ingest.store))
    assert summary["skipped"] == {"error_status": 1, "body_too_large": 1, "non_json_body": 1}
    assert summary["rejected"] == 0
    assert summary["records_written"] == sum(len(batch) for _, batch, _ in answered.values())
    for dataset in ("monitoring_classify", "monitoring_stream"):
        for record in ingest.records(dataset):
            _, batch, response = answered[record["metadata"]["request_id"]]
            i = int(record["id"].rsplit("-", 1)[1])
            assert record["inputs"] == {"text": batch[i]}
            expected = dict(zip(response[i]["labels"], response[i]["scores"], strict=True))
            assert {p["class"]: p["score"] for p in record["prediction"]["labels"]} == expected
    ner = ingest.records("monitoring_ner")
    assert len(ner) == sum(len(b) for p, b, _ in answered.values() if p == "/ner/")
    for record in ner:
        _, batch, response = answered[record["metadata"]["request_id"]]
        i = int(record["id"].rsplit("-", 1)[1])
        assert record["text"] == batch[i]
        got = [(e["label"], e["start"], e["end"]) for e in record["prediction"]["entities"]]
        assert got == [(e["label"], e["start"], e["end"]) for e in response[i]["entities"]]


def test_credentials_and_configured_fields_are_never_written(tmp_path: Path) -> None:
    service = start(tmp_path, log_headers=["user-agent", "authorization", "x-team"],
                    redact_headers=["x-team"], redact_fields=["email"])  # fmt: skip
    try:
        with httpx.Client(base_url=service.url) as client:
            client.post(
                "/classify/",
                json=["hello"],
                headers={"authorization": "Bearer SECRET-TOKEN-1", "cookie": "session=SECRET-COOKIE-2",
                         "x-team": "SECRET-TEAM-3", "user-agent": "probe/1.0"},
            )  # fmt: skip
            # A body field named like a credential, and one configured to be redacted.
            client.post("/text/", json={"api_key": "SECRET-KEY-4", "email": "SECRET-MAIL-5", "text": "hi"})
    finally:
        service.stop()
    raw = b"".join(p.read_bytes() for p in (tmp_path / "logs").glob("access.jsonl*"))
    for n, secret in enumerate(["TOKEN-1", "COOKIE-2", "TEAM-3", "KEY-4", "MAIL-5"], 1):
        assert f"SECRET-{secret}".encode() not in raw, n
    first, second = log_lines(tmp_path)
    assert first["headers"] == {"user-agent": "probe/1.0"}
    assert second["request"] == {"api_key": "[redacted]", "email": "[redacted]", "text": "hi"}


def test_workers_share_one_file_without_interleaving(tmp_path: Path) -> None:
    service = start(tmp_path, workers=3)
    sent: dict[str, list[str]] = {}
    try:
        with httpx.Client(base_url=service.url, timeout=60) as client:

            def call(i: int) -> None:
                # Large bodies make any interleaving of two processes' writes visible.
                batch = [f"{i} " + "Zürich und Paris " * 2000] * (1 + i % 4)
                request_id, response = post(client, "/classify/", batch)
                assert response.status_code == 200
                sent[request_id] = batch

            with ThreadPoolExecutor(12) as pool:
                list(pool.map(call, range(300)))
    finally:
        service.stop()
    lines = log_lines(tmp_path)  # every line parses
    assert len(lines) == 300
    assert {line["request_id"]: line["request"] for line in lines} == sent


def test_external_rotation_is_followed(tmp_path: Path) -> None:
    service = start(tmp_path)
    log = tmp_path / "logs" / "access.jsonl"
    try:
        with httpx.Client(base_url=service.url) as client:
            for i in range(20):
                post(client, "/classify/", [f"before {i}"])
            _wait_for_lines(log, 20)
            log.rename(log.with_name("access.jsonl.1"))  # logrotate's rename + create
            for i in range(20):
                post(client, "/classify/", [f"after {i}"])
            _wait_for_lines(log, 20)
            log.write_bytes(b"")  # copytruncate
            for i in range(5):
                post(client, "/classify/", [f"truncated {i}"])
    finally:
        service.stop()
    rotated = _first_inputs(log.with_name("access.jsonl.1"))
    current = _first_inputs(log)
    assert rotated == [f"before {i}" for i in range(20)]
    assert current == [f"truncated {i}" for i in range(5)]


def test_size_rotation_across_workers_loses_nothing(tmp_path: Path, ingest: Ingest) -> None:
    service = start(tmp_path, workers=2, max_bytes=20_000, backup_count=50)
    try:
        with httpx.Client(base_url=service.url, timeout=30) as client, ThreadPoolExecutor(6) as pool:
            ids = set(pool.map(lambda i: post(client, "/classify/", texts(4, i))[0], range(400)))
    finally:
        service.stop()
    files = [p for p in (tmp_path / "logs").iterdir() if not p.name.endswith(".lock")]
    assert len(files) > 5
    assert all(p.stat().st_size < 40_000 for p in files)
    lines = log_lines(tmp_path)
    assert {line["request_id"] for line in lines} == ids and len(lines) == 400
    summary = ingest.json(str(tmp_path / "logs"), "--store", str(ingest.store))
    assert summary["records_written"] == 1600


def test_shutdown_writes_everything_queued(tmp_path: Path) -> None:
    # The writer holds lines for up to a minute; only the shutdown flush can write them.
    service = start(tmp_path, flush_interval=60)
    with httpx.Client(base_url=service.url) as client:
        ids = {post(client, "/classify/", [f"text {i}"])[0] for i in range(50)}
    assert not (tmp_path / "logs" / "access.jsonl").exists()
    output = service.stop()
    assert {line["request_id"] for line in log_lines(tmp_path)} == ids, output


def test_a_full_queue_drops_and_counts_without_blocking(tmp_path: Path) -> None:
    service = start(tmp_path, queue_size=5, flush_interval=60)
    with httpx.Client(base_url=service.url) as client:
        statuses = [post(client, "/classify/", [f"text {i}"])[1].status_code for i in range(40)]
    output = service.stop()
    assert statuses == [200] * 40
    # The queue held the readiness probe's GET /health and the first 4 requests.
    assert [line["request"] for line in log_lines(tmp_path)] == [[f"text {i}"] for i in range(4)]
    assert "5 lines written, 36 dropped" in output


def test_importing_the_middleware_pulls_in_nothing_heavy() -> None:
    code = (
        "import sys, ingest.accesslog.middleware; "
        "heavy = {'pandas', 'pyarrow', 'argilla', 'numpy', 'httpx', 'click'} & set(sys.modules); "
        "print(sorted(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _first_inputs(path: Path) -> list[str]:
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    return [line["request"][0] for line in lines if line["path"] != "/health"]


def _wait_for_lines(path: Path, n: int, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if path.exists() and len(_first_inputs(path)) >= n:
            return
        time.sleep(0.02)
    raise AssertionError(f"{path} has fewer than {n} lines")


def test_an_unwritable_log_never_breaks_requests(tmp_path: Path) -> None:
    (tmp_path / "not-a-dir").write_text("a file where the log's directory should be")
    env = {"ACCESS_LOG": str(tmp_path / "not-a-dir" / "access.jsonl"), "ACCESS_LOG_OPTIONS": "{}"}
    service = Service(APP, tmp_path, env).start()
    with httpx.Client(base_url=service.url) as client:
        statuses = [post(client, "/classify/", [f"text {i}"])[1].status_code for i in range(10)]
    output = service.stop()
    assert statuses == [200] * 10
    # Counted, with the readiness probe: nothing written, nothing silently gone.
    assert "0 lines written, 0 dropped, 11 failed" in output
    assert "lines lost" in output
