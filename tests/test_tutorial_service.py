"""The tutorial's FastAPI service with real spaCy and transformers models, end to end.

Needs the ``tutorial`` extra (spaCy, transformers, torch), which .ci/run installs.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.conftest import Ingest, Service

pytest.importorskip("spacy")
pytest.importorskip("transformers")

SENTENCES = [
    "I really like rubrix!",
    "Meet Ana García in São Paulo on Monday.",
    "This is terrible",
    "Marie Curie flew from Paris to Tokyo with Hugging Face people next week",
    "no entities here at all",
    "   spaces  around   Berlin  ",
    "Zürich",
]


@pytest.fixture(scope="module")
def tutorial(tmp_path_factory: pytest.TempPathFactory) -> Service:
    cwd = tmp_path_factory.mktemp("tutorial")
    service = Service("examples.tutorial_service.main:app", cwd, {"ACCESS_LOG": str(cwd / "access.jsonl")})
    return service.start(ready_path="/", seconds=300)


def test_ingested_records_equal_the_answers(tutorial: Service, tmp_path: Path) -> None:
    answers: dict[str, tuple[str, list[str], list]] = {}
    with httpx.Client(base_url=tutorial.url, timeout=60) as client:

        def call(i: int) -> None:
            endpoint = ("/transformers/", "/spacy/")[i % 2]
            batch = [SENTENCES[(i + j) % len(SENTENCES)] for j in range(1 + i % 8)]
            response = client.post(endpoint, json=batch, headers={"x-request-id": f"req-{i}"})
            assert response.status_code == 200
            answers[f"req-{i}"] = (endpoint, batch, response.json())

        with ThreadPoolExecutor(6) as pool:
            list(pool.map(call, range(60)))
        assert client.post("/spacy/", json={"not": "a list"}).status_code == 422
        assert client.post("/transformers/", content=b"plain text").status_code == 422
    output = tutorial.stop()
    assert "Application shutdown complete" in output

    ingest = Ingest(tmp_path)
    summary = ingest.json(str(tutorial.cwd / "access.jsonl"), "--store", str(ingest.store))
    assert summary["skipped"] == {"error_status": 2}
    assert summary["rejected"] == 0
    assert summary["records_written"] == sum(len(b) for _, b, _ in answers.values())

    for record in ingest.records("monitoring_transformers"):
        endpoint, batch, response = answers[record["metadata"]["request_id"]]
        i = int(record["id"].rsplit("-", 1)[1])
        assert endpoint == "/transformers/" and record["inputs"] == {"text": batch[i]}
        expected = dict(zip(response[i]["labels"], response[i]["scores"], strict=True))
        assert {p["class"]: p["score"] for p in record["prediction"]["labels"]} == expected
    spacy_records = ingest.records("monitoring_spacy")
    assert any(record["prediction"]["entities"] for record in spacy_records)
    for record in spacy_records:
        endpoint, batch, response = answers[record["metadata"]["request_id"]]
        i = int(record["id"].rsplit("-", 1)[1])
        assert endpoint == "/spacy/" and record["text"] == response[i]["text"] == batch[i]
        entities = [[e["label"], e["start"], e["end"]] for e in record["prediction"]["entities"]]
        assert entities == [[e["label"], e["start"], e["end"]] for e in response[i]["entities"]]
        for _, start, end in entities:  # every span lies on whole tokens of the record
            assert record["text"][start:end].strip() == record["text"][start:end]
