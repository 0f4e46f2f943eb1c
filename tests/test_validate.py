"""The server's record rules, each one: a record it rejects is one we reject, with a reason."""

from __future__ import annotations

import pytest

from ingest.transform.records import complete
from ingest.transform.routing import check_dataset_name, dataset_for_endpoint
from ingest.transform.validate import validate


def tc(inputs=None, labels=None, multi_label=False) -> dict:
    body = {
        "inputs": {"text": "hi"} if inputs is None else inputs,
        "prediction": {"labels": labels if labels is not None else [{"class": "a", "score": 0.5}]},
        "multi_label": multi_label,
    }
    return complete("TextClassification", body, id="1", event_timestamp="t", agent="a", metadata={})


def tok(text="I live in Paris.", tokens=None, entities=None) -> dict:
    body = {
        "text": text,
        "tokens": ["I", "live", "in", "Paris", "."] if tokens is None else tokens,
        "prediction": {"entities": entities or [], "score": None},
    }
    return complete("TokenClassification", body, id="1", event_timestamp="t", agent="a", metadata={})


@pytest.mark.parametrize(
    "record, reason",
    [
        (tc(inputs={}), "non-empty object"),
        (tc(inputs={"text": None}), "string or a list of strings"),
        (tc(inputs={"text": 3}), "string or a list of strings"),
        (tc(labels=[{"class": "", "score": 0.5}]), "non-empty string"),
        (tc(labels=[{"class": "x" * 129, "score": 0.5}]), "longer than 128"),
        (tc(labels=[{"class": "a", "score": 1.5}]), "within [0, 1]"),
        (tc(labels=[{"class": "a", "score": -0.1}]), "within [0, 1]"),
        (tc(labels=[{"class": "a", "score": None}]), "not a number"),
        (tc(labels=[{"class": "a", "score": 0.7}, {"class": "b", "score": 0.4}]), "sum to"),
        (tok(tokens=[]), "at least one"),
        (tok(text="   "), "non-blank"),
        (tok(tokens=["I", "Berlin"]), "not found in text"),
        (tok(tokens=["Paris", "I"]), "not found in text"),
        (
            tok(
                tokens=["I", "live", "in", "Paris."],
                entities=[{"start": 10, "end": 15, "label": "GPE", "score": 0.0}],
            ),
            "not aligned",
        ),
        (tok(entities=[{"start": 10, "end": 10, "label": "GPE", "score": 0.0}]), "start < end"),
        (tok(entities=[{"start": 10, "end": 15, "label": "", "score": 0.0}]), "1 to 128"),
        (tok(entities=[{"start": 10, "end": 15, "label": "GPE", "score": 2.0}]), "within [0, 1]"),
    ],
)
def test_server_rules_reject(record, reason):
    error = validate("TokenClassification" if "tokens" in record else "TextClassification", record)
    assert error is not None and reason in error


@pytest.mark.parametrize(
    "record",
    [
        tc(),
        tc(inputs={"text": ["a", "b"], "title": "t"}),
        tc(labels=[{"class": 3, "score": 1.0}]),
        tc(labels=[{"class": "a", "score": 0.7}, {"class": "b", "score": 0.4}], multi_label=True),
        tc(labels=[{"class": "a", "score": 0.5}, {"class": "b", "score": 0.501}]),
        tok(entities=[{"start": 10, "end": 15, "label": "GPE", "score": 0.0}]),
        # the server trims whitespace at span edges before checking alignment
        tok(
            text="I live in Paris .",
            tokens=["I", "live", "in", "Paris", "."],
            entities=[{"start": 9, "end": 15, "label": "GPE", "score": 0.0}],
        ),
    ],
)
def test_server_rules_accept(record):
    task = "TokenClassification" if "tokens" in record else "TextClassification"
    assert validate(task, record) is None


def test_integer_ids_are_allowed_and_others_are_not():
    record = tc()
    record["id"] = 7
    assert validate("TextClassification", record) is None
    record["id"] = 1.5
    assert "id" in validate("TextClassification", record)


@pytest.mark.parametrize(
    "path, name",
    [
        ("/spacy/", "monitoring_spacy"),
        ("/transformers/", "monitoring_transformers"),
        ("/", "monitoring_root"),
        ("/API/v1/NER.model/", "monitoring_api_v1_ner_model"),
        ("/_private/", "monitoring_private"),
        ("/naïve/", "monitoring_na_ve"),
    ],
)
def test_dataset_names_from_endpoints_are_valid(path, name):
    assert dataset_for_endpoint(path) == name
    check_dataset_name(name)


@pytest.mark.parametrize("bad", ["Monitoring", "-x", "_x", "a.b", "a/b", ""])
def test_invalid_dataset_names(bad):
    with pytest.raises(ValueError):
        check_dataset_name(bad)


def test_spaced_tokens_shortcut_finds_what_the_search_finds():
    """The one-character look used for single-spaced tokens agrees with the server's search."""
    import random

    from ingest.transform.validate import _FoundTokens, _SpacedTokens, token_boundaries

    rng = random.Random(7)
    pieces = ["a", "bb", "ü", "東京", "", "x.", "\t", "aa"]
    shortcut_taken = 0
    for _ in range(3000):
        tokens = [rng.choice(pieces) for _ in range(rng.randint(1, 6))]
        text = " ".join(tokens)
        if rng.random() < 0.2:  # a token holding a space: the shortcut must not be taken
            tokens = [" ".join(tokens[:2]), *tokens[2:]]
        found = token_boundaries(text, tokens)
        if isinstance(found, str):
            continue
        if isinstance(found, _SpacedTokens):
            shortcut_taken += 1
        searched = _FoundTokens(set(), set())
        position = 0
        for token in tokens:
            start = text.find(token, position)
            position = start + len(token)
            searched.starts.add(start)
            searched.ends.add(position)
            if position < len(text) and text[position] == " ":
                position += 1
        for offset in range(-2, len(text) + 3):
            assert found.is_start(offset) == searched.is_start(offset), (text, tokens, offset)
            assert found.is_end(offset) == searched.is_end(offset), (text, tokens, offset)
    assert shortcut_taken > 1000
