"""The pure parts of the Argilla 2.x mapping: rules of argilla-server 2.8 applied before sending."""

from __future__ import annotations

import httpx
import pytest

from ingest.sinks.argilla_v2.schema import agent_of, options_for, question_name_for
from ingest.sinks.argilla_v2.sink import _refused_positions
from ingest.sinks.detect import major


@pytest.mark.parametrize(
    ("given", "sent"),
    [
        ("http://localhost:8000/transformers/", "http://localhost:8000/transformers/"),
        ("http://h:8000/predict?model=x#top", "http://h:8000/predict"),
        ("bert@v1", "bert_v1"),
        ("Helsinki-NLP/opus-mt-en-es", "Helsinki-NLP/opus-mt-en-es"),
        ("???", None),
        ("", None),
        (None, None),
        ("x" * 300, "x" * 200),
    ],
)
def test_agent_meets_the_servers_character_rules(given, sent):
    assert agent_of(given) == sent


def test_options_are_padded_to_the_servers_minimum_and_capped():
    assert options_for("TextClassification", ["A"]) == ["A", "(other)"]
    assert options_for("TextClassification", ["(other)"]) == ["(other)", "(other label)"]
    assert options_for("TokenClassification", []) == ["(other)"]
    assert options_for("TokenClassification", ["GPE", "GPE", ""]) == ["GPE"]
    with pytest.raises(ValueError, match="more than the 500"):
        options_for("TextClassification", [str(i) for i in range(501)])


def test_question_names_never_clash_with_fields():
    assert question_name_for("TextClassification", False, ["text"]) == "label"
    assert question_name_for("TextClassification", False, ["label"]) == "label_prediction"
    assert question_name_for("TextClassification", True, []) == "labels"


def test_refused_positions_from_both_error_shapes():
    domain = httpx.Response(422, json={"detail": "Record at position 3 is not valid because bad label"})
    assert _refused_positions(domain, 5) == {3: "bad label"}
    assert _refused_positions(domain, 3) == {}  # not an index of this request
    schema = httpx.Response(
        422,
        json={
            "detail": {
                "code": "argilla.api.errors::ValidationError",
                "params": {
                    "errors": [
                        {"loc": ["body", "items", 1, "suggestions", 0, "agent"], "msg": "String should match"}
                    ]
                },
            }
        },
    )
    assert _refused_positions(schema, 2) == {1: "suggestions.0.agent: String should match"}
    assert _refused_positions(httpx.Response(422, json={"detail": "External IDs must be unique"}), 2) == {}


def test_major_version():
    assert [major(v) for v in ("2.8.0", "1.29.1", "v2", "", "dev")] == [2, 1, 2, None, None]


def test_config_api_and_labels(tmp_path):
    from ingest.errors import ConfigError
    from ingest.settings import load, server

    path = tmp_path / "ingest.toml"
    path.write_text('[rubrix]\nurl = "http://x:6900"\napi = "v2"\n[endpoints."/t/"]\nlabels = ["A", "B"]\n')
    config = load(path)
    assert server({}, config, environ={}).api == "v2"
    assert config.routes["/t/"].labels == ("A", "B")
    path.write_text('[rubrix]\napi = "v3"\n')
    with pytest.raises(ConfigError, match='api must be "auto"'):
        load(path)
    path.write_text('[endpoints."/t/"]\nlabels = "A"\n')
    with pytest.raises(ConfigError, match="labels must be a list"):
        load(path)


def test_bulk_writes_go_one_at_a_time_once_the_database_is_locked():
    """argilla-server on SQLite refuses concurrent bulk upserts with 500 'database is locked'."""
    import threading
    import time

    from ingest.sinks.argilla_v2.sink import OneWriterOnLock

    state = {"in_flight": 0, "most": 0, "calls": 0}
    guard = threading.Lock()

    def server(request: httpx.Request) -> httpx.Response:
        with guard:
            state["calls"] += 1
            first = state["calls"] == 1
            state["in_flight"] += 1
            state["most"] = max(state["most"], state["in_flight"])
        time.sleep(0.05)
        with guard:
            state["in_flight"] -= 1
        if first:
            return httpx.Response(500, json={"detail": {"params": {"message": "database is locked"}}})
        return httpx.Response(200, json={"items": []})

    gate = OneWriterOnLock(httpx.MockTransport(server))
    client = httpx.Client(transport=gate, base_url="http://argilla")
    assert client.put("/api/v1/datasets/d/records/bulk").status_code == 500 and gate.serial.is_set()
    state["most"] = 0
    threads = [
        threading.Thread(target=client.put, args=("/api/v1/datasets/d/records/bulk",)) for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert state["calls"] == 5 and state["most"] == 1
