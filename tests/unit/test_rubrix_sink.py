"""The Rubrix sink's retry and split logic (ingest/sinks/rubrix/sink.py), through
httpx.MockTransport: the server's answers are scripted, our code runs unchanged."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import httpx
import pyarrow as pa
import pytest

from ingest.errors import DeliveryError
from ingest.model import SCHEMA, Batch
from ingest.settings import ServerSettings
from ingest.sinks.rubrix.sink import RubrixSink
from ingest.transform.routing import Route

KEY = "secret-key-never-shown"


def _batch(ids: list[str], dataset: str = "ds", workspace: str | None = None) -> Batch:
    rows = [
        {
            "id": i,
            "event_timestamp": datetime(2026, 11, 24, tzinfo=UTC),
            "task": "TextClassification",
            "record": json.dumps({"id": i, "inputs": {"text": i}}),
            "endpoint": "/a/",
            "source_file": "a.jsonl",
            "source_line": n + 1,
        }
        for n, i in enumerate(ids)
    ]
    table = pa.Table.from_pylist(rows, schema=SCHEMA)
    route = Route(endpoint="/a/", dataset=dataset, workspace=workspace, tags={"model": "m"})
    return Batch(route, "TextClassification", table)


class Server:
    """Scripted answers: ``bulk`` decides each bulk request's status from its record ids."""

    def __init__(self, bulk: Any):
        self.bulk = bulk
        self.bulk_calls: list[list[str]] = []
        self.stored: list[str] = []
        self.requests: list[tuple[str, httpx.Headers]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        self.requests.append((path, request.headers))
        if path == "/api/_info":
            return httpx.Response(200, json={"version": "1.29.0"})
        if path == "/api/me":
            return httpx.Response(200, json={"username": "u", "workspaces": ["ws", "other"]})
        if path == "/api/datasets":
            return httpx.Response(200, json={})
        if path.endswith(":bulk"):
            ids = [r["id"] for r in json.loads(request.content)["records"]]
            self.bulk_calls.append(ids)
            status = self.bulk(ids, len(self.bulk_calls))
            if status < 300:
                self.stored.extend(ids)
                return httpx.Response(200, json={"processed": len(ids), "failed": 0})
            return httpx.Response(status, json={"detail": f"refused {ids}"})
        return httpx.Response(404)


def _sink(server: Server, **settings: Any) -> RubrixSink:
    config = ServerSettings(url="http://rubrix.test", api_key=KEY, **settings)
    return RubrixSink(config, transport=httpx.MockTransport(server))


def test_transient_failures_are_retried_until_the_server_takes_the_batch():
    server = Server(lambda ids, call: 503 if call <= 2 else 200)
    sink = _sink(server, retry_for=30)
    delivery = sink.add(_batch(["a", "b"]))
    delivery.merge(sink.flush())
    sink.close()
    assert len(server.bulk_calls) == 3 and server.stored == ["a", "b"]
    assert delivery.written == Counter({"/a/": 2}) and delivery.rejects == []


def test_past_the_retry_budget_the_run_stops_with_a_one_line_error_naming_the_url_not_the_key():
    server = Server(lambda ids, call: 503)
    sink = _sink(server, retry_for=0.5)
    with pytest.raises(DeliveryError) as caught:
        sink.add(_batch(["a"]))
        sink.flush()
    sink.close()
    message = str(caught.value)
    assert message.startswith("cannot reach http://rubrix.test: HTTP 503 (gave up after ")
    assert KEY not in message and "\n" not in message
    assert caught.value.exit_code == 1 and caught.value.delivery.written == Counter()


def test_a_422_is_split_until_the_bad_records_are_isolated_and_the_rest_delivered():
    bad = {"c", "f"}
    server = Server(lambda ids, call: 422 if bad & set(ids) else 200)
    sink = _sink(server, batch_size=8)
    ids = list("abcdefgh")
    delivery = sink.add(_batch(ids))
    delivery.merge(sink.flush())
    sink.close()
    assert sorted(server.stored) == sorted(set(ids) - bad)
    assert delivery.written == Counter({"/a/": 6})
    assert sorted(json.loads(r["raw"])["id"] for r in delivery.rejects) == ["c", "f"]
    assert {r["stage"] for r in delivery.rejects} == {"server"}
    assert all("HTTP 422" in r["reason"] and "refused" in r["reason"] for r in delivery.rejects)
    assert server.bulk_calls[0] == ids  # one request first; splits only after a refusal


def test_a_401_stops_at_once_without_retrying():
    server = Server(lambda ids, call: 401)
    sink = _sink(server, retry_for=30)
    with pytest.raises(DeliveryError, match=r"refused the request \(HTTP 401\)") as caught:
        sink.add(_batch(["a"]))
        sink.flush()
    sink.close()
    assert len(server.bulk_calls) == 1 and KEY not in str(caught.value)


def test_each_batch_goes_to_its_own_routes_workspace_with_the_key_in_a_header_only():
    server = Server(lambda ids, call: 200)
    sink = _sink(server, workspace="ws")
    sink.add(_batch(["a"], workspace="other"))
    sink.add(_batch(["b"]))
    sink.flush()
    sink.close()
    bulks = [h.get("X-Argilla-Workspace") for path, h in server.requests if path.endswith(":bulk")]
    assert sorted(bulks) == ["other", "ws"]
    assert all(h.get("X-Argilla-Api-Key") == KEY for path, h in server.requests if path != "/api/_info")
