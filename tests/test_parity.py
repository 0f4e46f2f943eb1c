"""Parity with the client's own monitoring mappers.

Wherever Rubrix 0.18's mapper produces a record the server accepts, ours must produce the
same text/inputs/tokens/prediction. ``rubrix`` does not install on Python 3.11; Argilla
1.29 ships the same mappers, differing from Rubrix 0.18 only in the tokenization pattern
(``\\W+`` instead of ``\\s+``, per the reference file), so Rubrix's mapper is Argilla's with
Rubrix's pattern put back.
"""

from __future__ import annotations

import random
import re

import pytest

argilla_asgi = pytest.importorskip("argilla.monitoring.asgi")
from argilla.client.sdk.text_classification.models import CreationTextClassificationRecord  # noqa: E402
from argilla.client.sdk.token_classification.models import CreationTokenClassificationRecord  # noqa: E402

from ingest.transform.records import complete  # noqa: E402
from ingest.transform.validate import validate  # noqa: E402
from mappers.text_classification import text_classification  # noqa: E402
from mappers.token_classification import token_classification  # noqa: E402

WORDS = [
    "Paris",
    "France",
    "is",
    "in",
    "the",
    "Zürich",
    "東京",
    "Ada",
    "Lovelace",
    "visited",
    "and",
    "big",
]
PUNCT = ["", "", "", ".", ",", "!", "'s", ")"]
SPACES = [" ", " ", " ", "  ", "\t", "\n"]


def random_case(rng: random.Random) -> tuple[str, list[dict]]:
    text, entities = rng.choice(["", " ", "("]) if rng.random() < 0.1 else "", []
    for i in range(rng.randint(1, 8)):
        if i:
            text += rng.choice(SPACES)
        word = rng.choice(WORDS)
        if rng.random() < 0.4:
            entities.append({"label": "ENT", "start": len(text), "end": len(text) + len(word)})
        text += word + rng.choice(PUNCT)
    if rng.random() < 0.1:
        text += rng.choice(SPACES)
    return text, entities


@pytest.fixture
def rubrix_018_pattern(monkeypatch):
    monkeypatch.setattr(argilla_asgi, "_default_tokenization_pattern", re.compile(r"\s+"))


def wire(task: str, record: dict) -> dict:
    return complete(task, record, id="x", event_timestamp="2026-01-01T00:00:00", agent="a", metadata={})


def test_token_classification_parity_with_rubrix_018(rubrix_018_pattern):
    rng = random.Random(2018)
    compared = rubrix_fails = 0
    for _ in range(3000):
        text, entities = random_case(rng)
        outputs = {"text": text, "entities": entities}
        ours = token_classification(text, outputs)
        try:
            client_record = argilla_asgi.token_classification_mapper(text, outputs)
        except Exception:
            rubrix_fails += 1  # the client refuses the misaligned record: nothing is logged
            assert validate("TokenClassification", wire("TokenClassification", ours)) is None, text
            continue
        theirs = CreationTokenClassificationRecord.from_client(client_record).dict(by_alias=True)
        theirs_accepted = validate("TokenClassification", {**theirs, "id": "x", "status": "Default"}) is None
        assert validate("TokenClassification", wire("TokenClassification", ours)) is None, text
        if theirs_accepted:
            compared += 1
            assert ours["text"] == theirs["text"]
            assert ours["tokens"] == list(theirs["tokens"]), text
            assert ours["prediction"]["entities"] == theirs["prediction"]["entities"], text
        else:
            rubrix_fails += 1  # the server would reject Rubrix's record (and its whole batch)
    # the random cases must exercise both sides: aligned texts and punctuation-adjacent entities
    assert compared > 500 and rubrix_fails > 300


def test_token_classification_with_tokens_in_output_matches_argilla():
    outputs = {
        "text": "New York, USA",
        "tokens": ["New", "York", ",", "USA"],
        "entities": [{"label": "GPE", "start": 0, "end": 8}],
    }
    theirs = CreationTokenClassificationRecord.from_client(
        argilla_asgi.token_classification_mapper({"text": "New York, USA"}, outputs)
    ).dict(by_alias=True)
    ours = token_classification({"text": "New York, USA"}, outputs)
    assert ours["tokens"] == list(theirs["tokens"])
    assert ours["prediction"]["entities"] == theirs["prediction"]["entities"]


@pytest.mark.parametrize(
    "inputs, outputs",
    [
        ("I really like rubrix!", {"labels": ["NEGATIVE", "POSITIVE"], "scores": [0.0003, 0.9997]}),
        ({"text": "hi", "context": "x"}, {"labels": ["a", "b", "c"], "scores": [0.2, 0.3, 0.5]}),
        ({"text": ["a", "b"]}, {"labels": ["x"], "scores": [1.0]}),
        ("no labels", {"labels": [], "scores": []}),
    ],
)
def test_text_classification_parity(inputs, outputs):
    theirs = CreationTextClassificationRecord.from_client(
        argilla_asgi.text_classification_mapper(inputs, outputs)
    ).dict(by_alias=True)
    ours = text_classification(inputs, outputs)
    assert ours["inputs"] == theirs["inputs"]
    assert ours["prediction"]["labels"] == theirs["prediction"]["labels"]
    assert ours["multi_label"] == theirs["multi_label"]
