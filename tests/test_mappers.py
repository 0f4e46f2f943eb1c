"""The task mappers as pure functions: shapes in, wire-format task fields out."""

from __future__ import annotations

import pytest

import mappers
from ingest.transform.validate import validate
from mappers.text2text import text2text
from mappers.text_classification import text_classification
from mappers.token_classification import token_classification, tokenize


def full(task: str, body: dict) -> dict:
    from ingest.transform.records import complete

    return complete(task, body, id="x", event_timestamp="2026-01-01T00:00:00", agent="a", metadata={})


def test_tutorial_labels_and_scores():
    body = text_classification(
        "I really like rubrix!", {"labels": ["NEGATIVE", "POSITIVE"], "scores": [0.1, 0.9]}
    )
    assert body["inputs"] == {"text": "I really like rubrix!"}
    assert body["prediction"]["labels"] == [
        {"class": "NEGATIVE", "score": 0.1},
        {"class": "POSITIVE", "score": 0.9},
    ]
    assert body["multi_label"] is False


def test_raw_transformers_pipeline_output():
    out = [{"label": "NEGATIVE", "score": 0.0003}, {"label": "POSITIVE", "score": 0.9997}]
    body = text_classification({"text": "hi"}, out)
    assert [p["class"] for p in body["prediction"]["labels"]] == ["NEGATIVE", "POSITIVE"]


def test_top_k_1_pipeline_output_is_one_label():
    body = text_classification("hi", {"label": "POSITIVE", "score": 0.8})
    assert body["prediction"]["labels"] == [{"class": "POSITIVE", "score": 0.8}]


def test_sigmoid_scores_are_sent_as_multi_label():
    body = text_classification("hi", {"labels": ["a", "b", "c"], "scores": [0.9, 0.8, 0.3]})
    assert body["multi_label"] is True
    assert validate("TextClassification", full("TextClassification", body)) is None


def test_scores_summing_to_one_within_tolerance_stay_single_label():
    body = text_classification("hi", {"labels": ["a", "b"], "scores": [0.5, 0.5009]})
    assert body["multi_label"] is False


def test_text_classification_rejects_unknown_shape():
    with pytest.raises(ValueError):
        text_classification("hi", {"entities": []})


def test_entity_next_to_punctuation_is_aligned():
    body = token_classification("I live in Paris.", {"entities": [{"label": "GPE", "start": 10, "end": 15}]})
    assert body["tokens"] == ["I", "live", "in", "Paris", "."]
    assert body["prediction"]["entities"] == [{"start": 10, "end": 15, "label": "GPE", "score": 0.0}]
    assert validate("TokenClassification", full("TokenClassification", body)) is None


def test_entity_inside_brackets_and_possessive():
    text = "Marie Curie moved to Paris (France) in 1891."
    ents = [{"label": "PERSON", "start": 0, "end": 11}, {"label": "GPE", "start": 28, "end": 34}]
    body = token_classification(text, {"text": text, "entities": ents})
    assert "France" in body["tokens"] and "(" in body["tokens"] and ")" in body["tokens"]
    assert validate("TokenClassification", full("TokenClassification", body)) is None


def test_non_ascii_offsets_are_code_points():
    text = "東京 is the capital; Zürich isn't."
    start = text.index("Zürich")
    body = token_classification(
        text,
        [
            {"label": "GPE", "start": 0, "end": 2},
            {"label": "GPE", "start": start, "end": start + 6},
        ],
    )
    assert body["tokens"][0] == "東京"
    assert "Zürich" in body["tokens"]
    assert validate("TokenClassification", full("TokenClassification", body)) is None


def test_entity_spanning_whitespace_edges_is_trimmed():
    text = "Meet me in Zürich ."
    body = token_classification(text, [{"label": "GPE", "start": 10, "end": 18}])
    assert body["prediction"]["entities"][0]["start"] == 11
    assert body["prediction"]["entities"][0]["end"] == 17


def test_tokens_from_output_are_kept():
    out = {"text": "New York rocks", "tokens": ["New", "York", "rocks"], "entities": []}
    assert token_classification("New York rocks", out)["tokens"] == ["New", "York", "rocks"]


def test_plain_split_when_entities_are_aligned_matches_rubrix():
    assert tokenize("  Paris is  nice ", set()) == ["", "Paris", "is", "nice", ""]
    assert tokenize("  Paris. is  nice ", {2, 7}) == ["", "Paris", ".", "is", "nice", ""]


def test_token_classification_needs_text():
    with pytest.raises(ValueError):
        token_classification({"no": "text"}, {"entities": []})


@pytest.mark.parametrize(
    "outputs, expected",
    [
        ([{"generated_text": "bonjour"}], ["bonjour"]),
        ({"translation_text": "hallo"}, ["hallo"]),
        ({"summary_text": "short"}, ["short"]),
        ("plain", ["plain"]),
        ([{"generated_text": "a", "score": 0.4}, {"generated_text": "b"}], ["a", "b"]),
    ],
)
def test_text2text_shapes(outputs, expected):
    body = text2text({"text": "hello"}, outputs)
    assert [s["text"] for s in body["prediction"]["sentences"]] == expected
    assert validate("Text2Text", full("Text2Text", body)) is None


@pytest.mark.parametrize(
    "outputs, task",
    [
        ({"labels": ["a"], "scores": [1.0]}, "text_classification"),
        ([{"label": "a", "score": 1.0}], "text_classification"),
        ({"text": "x", "entities": []}, "token_classification"),
        ([{"label": "GPE", "start": 0, "end": 1}], "token_classification"),
        ([{"generated_text": "x"}], "text2text"),
        ({"translation_text": "x"}, "text2text"),
        ("a string", "text2text"),
        ({"something": "else"}, None),
        ([], None),
    ],
)
def test_detect(outputs, task):
    assert mappers.detect(outputs) == task


def test_resolve_unknown_mapper_names_the_choices():
    with pytest.raises(mappers.UnknownMapper, match="text_classification"):
        mappers.resolve("sentiment")
    with pytest.raises(mappers.UnknownMapper, match="cannot import"):
        mappers.resolve("no_such_module_xyz:fn")
    with pytest.raises(mappers.UnknownMapper, match="no function"):
        mappers.resolve("json:no_such_function")


def test_whitespace_split_is_rubrix_regex_split():
    """The fast split equals ``re.split(r"\\s+")`` on every kind of whitespace, at the ends too."""
    import random
    import re
    import sys

    from mappers.token_classification import whitespace_split

    spaces = [c for c in map(chr, range(sys.maxunicode + 1)) if re.fullmatch(r"\s", c)]
    assert len(spaces) > 20  # tabs, newlines, no-break and em spaces, separators...
    rng = random.Random(3)
    alphabet = [*spaces, "a", "ü", "東", ".", "-"]
    for _ in range(20000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 10)))
        assert whitespace_split(text) == re.split(r"\s+", text), repr(text)


def _evidence_by_the_definition(scores: list) -> str:
    """tc.evidence as issue 16 wrote it, with ``tolerance`` computed for every record."""
    from mappers import text_classification as tc

    numbers = [s for s in scores if isinstance(s, int | float) and not isinstance(s, bool)]
    total = sum(numbers)
    slack = tc.tolerance(numbers)
    if total > 1 + slack:
        return tc.MULTI
    if len(numbers) >= 2 and abs(total - 1) <= slack:
        return tc.SINGLE
    return tc.OPEN


def test_evidence_decided_without_tolerance_answers_as_the_definition():
    """The shortcuts of tc.evidence (a sum within 0.001 of 1, or beyond what 2 decimals
    allow) must give the definition's answer, also at the edges of both bounds."""
    import random

    from mappers import text_classification as tc

    rng = random.Random(5)
    cases: list[list] = [
        [],
        [1],
        [True, 0.5],
        [0.5, 0.5],
        [0.5, 0.501],
        [0.5, 0.5011],
        [10**30, 1],
        [1e308, 1e308],
    ]
    for n in (1, 2, 3, 5, 8):
        for _ in range(3000):
            raw = [rng.random() for _ in range(n)]
            scores = [x / sum(raw) for x in raw]
            shift = rng.choice(
                [0.0, 1e-3, -1e-3, 1e-3 + 1e-9, 2e-3, n * 0.005, n * 0.005 + 1e-9, rng.uniform(-0.05, 0.05)]
            )
            scores[0] += shift
            places = rng.choice([None, 1, 2, 3, 4, 6, 7])
            if places is not None:
                scores = [round(s, places) for s in scores]
            cases.append(scores)
    for scores in cases:
        assert tc.evidence(scores) == _evidence_by_the_definition(scores), scores
