"""What real model servers return, hand-written from the hub's and the servers' own docs.

Each shape is either mapped to a record the server accepts, with the spans and labels the
model meant, or rejected with a reason; never stored wrong. Real pipelines run in
tests/test_real_pipelines.py; whole runs (dataset-level decisions) in
tests/test_dataset_decisions.py.
"""

from __future__ import annotations

import pytest

import mappers
from ingest.transform.records import complete
from ingest.transform.validate import validate
from mappers import Rejected, pairs
from mappers import text_classification as tc
from mappers.text2text import text2text
from mappers.token_classification import token_classification


def valid(task: str, body: dict) -> dict:
    record = complete(task, body, id="x", event_timestamp="2026-01-01T00:00:00", agent="a", metadata={})
    assert validate(task, record) is None, validate(task, record)
    return record


def spans(body: dict) -> list[tuple[str, str]]:
    return [(e["label"], body["text"][e["start"] : e["end"]]) for e in body["prediction"]["entities"]]


# -- token classification: transformers pipelines -----------------------------------------

TEXT = "My name is Wolfgang and I live in Berlin."
AGGREGATED = [  # dslim/bert-base-NER with aggregation_strategy="simple", as the hub widget shows
    {"entity_group": "PER", "score": 0.9990139, "word": "Wolfgang", "start": 11, "end": 19},
    {"entity_group": "LOC", "score": 0.999645, "word": "Berlin", "start": 34, "end": 40},
]
PER_TOKEN = [  # the same model without aggregation: one item per WordPiece token
    {"entity": "B-PER", "score": 0.99, "index": 4, "word": "Wolf", "start": 11, "end": 15},
    {"entity": "I-PER", "score": 0.98, "index": 5, "word": "##gang", "start": 15, "end": 19},
    {"entity": "B-LOC", "score": 0.99, "index": 10, "word": "Berlin", "start": 34, "end": 40},
]


def test_aggregated_entities_with_an_inference_api_request():
    body = token_classification(
        {"inputs": TEXT, "parameters": {"aggregation_strategy": "simple"}}, AGGREGATED
    )
    assert spans(body) == [("PER", "Wolfgang"), ("LOC", "Berlin")]
    assert body["prediction"]["entities"][0]["score"] == 0.9990139
    assert body["tokens"][-2:] == ["Berlin", "."]
    valid("TokenClassification", body)


def test_per_token_tags_are_merged_as_the_pipeline_aggregates():
    body = token_classification(TEXT, PER_TOKEN)
    assert spans(body) == [("PER", "Wolfgang"), ("LOC", "Berlin")]
    assert body["prediction"]["entities"][0]["score"] == pytest.approx(0.99)  # the word's first piece
    valid("TokenClassification", body)


def test_per_token_b_i_groups_and_breaks():
    text = "Ana García met John in New York"
    tokens = [
        {"entity": "B-PER", "score": 0.9, "index": 1, "word": "ana", "start": 0, "end": 3},
        {"entity": "I-PER", "score": 0.8, "index": 2, "word": "gar", "start": 4, "end": 7},
        {"entity": "I-PER", "score": 0.7, "index": 3, "word": "##cia", "start": 7, "end": 10},
        # "met" is O, left out by the pipeline: John is another person
        {"entity": "I-PER", "score": 0.9, "index": 5, "word": "john", "start": 15, "end": 19},
        {"entity": "B-LOC", "score": 0.9, "index": 7, "word": "new", "start": 23, "end": 26},
        {"entity": "I-LOC", "score": 0.7, "index": 8, "word": "york", "start": 27, "end": 31},
    ]
    body = token_classification(text, tokens)
    assert spans(body) == [("PER", "Ana García"), ("PER", "John"), ("LOC", "New York")]
    assert body["prediction"]["entities"][0]["score"] == pytest.approx(0.85)  # mean over words
    valid("TokenClassification", body)


def test_sub_word_piece_tagged_differently_takes_its_words_tag():
    text = "Visit Zürichsee today"
    tokens = [
        {"entity": "B-LOC", "score": 0.9, "index": 2, "word": "zurich", "start": 6, "end": 12},
        {"entity": "B-MISC", "score": 0.6, "index": 3, "word": "##see", "start": 12, "end": 15},
    ]
    body = token_classification(text, tokens)
    assert spans(body) == [("LOC", "Zürichsee")]  # uncased, accents stripped: still the same word


def test_plain_tags_without_b_i_prefixes_continue():
    text = "Barack Obama spoke"
    tokens = [
        {"entity": "PER", "score": 0.9, "index": 1, "word": "Barack", "start": 0, "end": 6},
        {"entity": "PER", "score": 0.9, "index": 2, "word": "Obama", "start": 7, "end": 12},
    ]
    assert spans(token_classification(text, tokens)) == [("PER", "Barack Obama")]


def test_sentencepiece_pieces_without_markers_are_one_word():
    text = "Ich wohne in Zürichsee."
    tokens = [  # xlm-roberta style: no "##", the piece starts where the previous ended
        {"entity": "B-LOC", "score": 0.9, "index": 5, "word": "▁Zürich", "start": 13, "end": 19},
        {"entity": "I-LOC", "score": 0.9, "index": 6, "word": "see", "start": 19, "end": 22},
    ]
    assert spans(token_classification(text, tokens)) == [("LOC", "Zürichsee")]


def test_entity_without_offsets_is_rejected():
    with pytest.raises(Rejected, match="no character offsets"):
        token_classification(
            TEXT, [{"entity_group": "PER", "score": 0.9, "word": "Wolfgang", "start": None, "end": None}]
        )


def test_span_that_is_not_the_entitys_word_is_rejected():
    shifted = [{"entity_group": "LOC", "score": 0.9, "word": "Berlin", "start": 33, "end": 39}]
    with pytest.raises(Rejected, match=r"is ' Berli' but the entity's text is 'Berlin'"):
        token_classification(TEXT, shifted)


def test_unknown_token_in_the_word_matches_any_characters():
    text = "Meet 张伟 in Berlin"
    body = token_classification(
        text, [{"entity_group": "PER", "score": 0.9, "word": "[UNK]", "start": 5, "end": 7}]
    )
    assert spans(body) == [("PER", "张伟")]


# -- offsets: units, texts, words -------------------------------------------------------------


def test_utf16_offsets_after_an_emoji_are_converted():
    text = "😀 I moved to Lisbon today"
    start16 = len(text[: text.index("Lisbon")].encode("utf-16-le")) // 2  # one more than code points
    body = token_classification(text, [{"label": "GPE", "start": start16, "end": start16 + 6}])
    assert spans(body) == [("GPE", "Lisbon")]  # not 'isbon ' cut mid-word
    valid("TokenClassification", body)


def test_utf16_offsets_with_the_entitys_word_are_converted():
    text = "🎉🎉 Paris rocks"
    body = token_classification(
        text, [{"entity_group": "LOC", "word": "Paris", "score": 0.9, "start": 5, "end": 10}]
    )
    assert spans(body) == [("LOC", "Paris")]


def test_utf8_byte_offsets_are_converted():
    text = "Café in München opened"
    start = len(text[: text.index("München")].encode())
    end = start + len("München".encode())
    body = token_classification(text, [{"label": "LOC", "start": start, "end": end}])
    assert spans(body) == [("LOC", "München")]


def test_offsets_that_fit_no_unit_are_rejected_not_aligned():
    text = "I moved to Lisbon today"
    with pytest.raises(Rejected, match=r"starts inside the word 'Lisbon'.*subword_spans"):
        token_classification(text, [{"label": "GPE", "start": 12, "end": 17}])  # 'isbon'
    with pytest.raises(Rejected, match="ends inside the word"):
        token_classification("I live in Paris", [{"label": "GPE", "start": 7, "end": 11}])  # 'in P'
    with pytest.raises(Rejected, match="outside the text"):
        token_classification("Paris", [{"label": "GPE", "start": 0, "end": 9}])


def test_subword_spans_allowed_by_config():
    text = "Visit the Zürichsee"
    body = token_classification(text, [{"label": "GPE", "start": 10, "end": 16}], subword_spans=True)
    assert spans(body) == [("GPE", "Zürich")]
    assert "Zürich" in body["tokens"] and "see" in body["tokens"]
    valid("TokenClassification", body)


def test_spaceless_scripts_are_not_cut_words():
    text = "東京に住んでいます"
    body = token_classification(text, [{"label": "GPE", "start": 0, "end": 2}])
    assert spans(body) == [("GPE", "東京")]


def test_offsets_are_taken_on_the_responses_text():
    request = "Meet  Ana in   Paris"  # the service collapsed the spaces before running the model
    response = {"text": "Meet Ana in Paris", "entities": [{"label": "GPE", "start": 12, "end": 17}]}
    body = token_classification(request, response)
    assert body["text"] == "Meet Ana in Paris"
    assert spans(body) == [("GPE", "Paris")]


def test_spacy_entity_text_is_checked():
    response = {
        "text": "I live in Paris",
        "entities": [{"label": "GPE", "start": 10, "end": 15, "text": "Paris"}],
    }
    assert spans(token_classification("I live in Paris", response)) == [("GPE", "Paris")]
    response["entities"][0]["text"] = "London"
    with pytest.raises(Rejected, match="entity's text is 'London'"):
        token_classification("I live in Paris", response)


# -- text classification ------------------------------------------------------------------------


def test_nested_inference_api_list_for_one_input():
    request = {"inputs": "I love this", "parameters": {"top_k": 2}}
    response = [[{"label": "POSITIVE", "score": 0.9998}, {"label": "NEGATIVE", "score": 0.0002}]]
    ((inputs, outputs),) = pairs.pairs(request, response, mappers.detect)
    body = tc.text_classification(inputs, outputs)
    assert body["inputs"] == {"text": "I love this"}  # not {"inputs": ...}
    assert [p["class"] for p in body["prediction"]["labels"]] == ["POSITIVE", "NEGATIVE"]
    valid("TextClassification", body)


def test_batched_inference_api_request_with_a_list_of_lists():
    request = {"inputs": ["good", "bad"]}
    response = [[{"label": "POSITIVE", "score": 0.9}, {"label": "NEGATIVE", "score": 0.1}],
                [{"label": "NEGATIVE", "score": 0.8}, {"label": "POSITIVE", "score": 0.2}]]  # fmt: skip
    found = pairs.pairs(request, response, mappers.detect)
    assert [i for i, _ in found] == ["good", "bad"]
    assert tc.text_classification(*found[1])["prediction"]["labels"][0] == {"class": "NEGATIVE", "score": 0.8}


def test_batch_size_mismatch_is_rejected():
    with pytest.raises(Rejected, match="batch size mismatch: request has 2 inputs, response 1 outputs"):
        pairs.pairs({"inputs": ["a", "b"]}, [[{"label": "x", "score": 1.0}]], mappers.detect)


def test_top_k_1_single_dict():
    body = tc.text_classification({"inputs": "meh"}, {"label": "NEUTRAL", "score": 0.61})
    assert body["prediction"]["labels"] == [{"class": "NEUTRAL", "score": 0.61}]
    assert tc.evidence([0.61]) == tc.OPEN


def test_zero_shot_classification():
    request = {"inputs": "I want a refund", "parameters": {"candidate_labels": ["billing", "tech", "sales"]}}
    response = {
        "sequence": "I want a refund",
        "labels": ["billing", "sales", "tech"],
        "scores": [0.81, 0.12, 0.07],
    }
    assert mappers.detect(response) == "text_classification"
    body = tc.text_classification(request, response)
    assert body["inputs"] == {"text": "I want a refund"}
    assert body["multi_label"] is False
    multi = {"sequence": "x", "labels": ["a", "b", "c"], "scores": [0.97, 0.91, 0.2]}  # multi_label=True
    assert tc.text_classification("x", multi)["multi_label"] is True


@pytest.mark.parametrize(
    "scores, expected",
    [
        ([0.34, 0.33, 0.34], tc.SINGLE),  # softmax rounded to 2 decimals: sums to 1.01
        ([0.5, 0.5009], tc.SINGLE),
        ([0.0003226407279726118, 0.9996774196624756], tc.SINGLE),
        ([0.9, 0.8, 0.3], tc.MULTI),
        ([0.34, 0.33, 0.36], tc.MULTI),  # 1.03: beyond what rounding 3 scores can add
        ([0.6, 0.3], tc.OPEN),  # a top-k cut of a distribution, or two sigmoids
        ([0.99], tc.OPEN),
        ([], tc.OPEN),
    ],
)
def test_multi_label_evidence(scores, expected):
    assert tc.evidence(scores) == expected


def test_settle_single_label_divides_rounded_scores_by_their_sum():
    body = tc.text_classification("x", {"labels": ["a", "b", "c"], "scores": [0.34, 0.33, 0.34]})
    assert body["multi_label"] is False  # not sent as multi-label
    settled = tc.settle(body, False)
    assert sum(p["score"] for p in settled["prediction"]["labels"]) == pytest.approx(1.0)
    valid("TextClassification", settled)
    assert tc.settle(body, True)["prediction"] == body["prediction"]  # multi-label: scores kept


def test_settle_refuses_multi_label_scores_in_a_single_label_dataset():
    body = tc.text_classification("x", {"labels": ["a", "b"], "scores": [0.9, 0.8]})
    with pytest.raises(Rejected, match="set multi_label = true"):
        tc.settle(body, False)


# -- text2text -----------------------------------------------------------------------------------


def test_generation_cuts_the_prompt_off_the_front():
    body = text2text({"inputs": "Once upon a time"}, [{"generated_text": "Once upon a time, a fox"}])
    assert body == {
        "text": "Once upon a time",
        "prediction": {"sentences": [{"text": ", a fox", "score": 1.0}]},
    }


@pytest.mark.parametrize(
    "request_body, response, prompt, answer",
    [
        ({"inputs": "Long article"}, [{"summary_text": "Short"}], "Long article", "Short"),
        (["Hello"], [{"translation_text": "Bonjour"}], "Hello", "Bonjour"),
        # TGI /generate: one object; SageMaker /invocations: a one-item list
        ({"inputs": "Q: 2+2?", "parameters": {"max_new_tokens": 5}},
         {"generated_text": " 4", "details": {"finish_reason": "eos_token"}}, "Q: 2+2?", " 4"),
        ({"inputs": "Q: 2+2?"}, [{"generated_text": " 4"}], "Q: 2+2?", " 4"),
    ],
)  # fmt: skip
def test_text2text_shapes(request_body, response, prompt, answer):
    ((inputs, outputs),) = pairs.pairs(request_body, response, mappers.detect)
    body = text2text(inputs, outputs)
    assert body["text"] == prompt and body["prediction"]["sentences"][0]["text"] == answer
    valid("Text2Text", body)


CHAT_REQUEST = {
    "model": "tgi",
    "messages": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Capital of France?"},
        {"role": "assistant", "content": "Paris."},
        {"role": "user", "content": [{"type": "text", "text": "And of Spain?"}]},
    ],
}


def test_openai_chat_completion():
    response = {
        "id": "",  # TGI's chat id is empty: never an id source
        "object": "chat.completion",
        "created": 1,
        "model": "tgi",
        "system_fingerprint": "3.0",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Madrid."}, "logprobs": None,
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 30, "completion_tokens": 3, "total_tokens": 33},
    }  # fmt: skip
    assert mappers.detect(response) == "text2text"
    body = text2text(CHAT_REQUEST, response)
    assert body == {"text": "And of Spain?", "prediction": {"sentences": [{"text": "Madrid.", "score": 1.0}]}}


def test_openai_streamed_chat_is_reassembled():
    chunks = [
        {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"role": "assistant"}}]},
        {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": "Mad"}}]},
        {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": "rid."}}]},
        {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
    ]
    import json

    sse = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
    assert text2text(CHAT_REQUEST, sse)["prediction"]["sentences"] == [{"text": "Madrid.", "score": 1.0}]
    assert text2text(CHAT_REQUEST, chunks)["prediction"]["sentences"][0]["text"] == "Madrid."


def test_openai_completions_batched_prompts_and_streamed():
    request = {"model": "m", "prompt": ["1+1=", "2+2="], "n": 1}
    response = {
        "object": "text_completion",
        "choices": [{"index": 1, "text": "4"}, {"index": 0, "text": "2"}],
    }
    found = pairs.pairs(request, response, mappers.detect)
    assert [text2text(*p)["prediction"]["sentences"][0]["text"] for p in found] == ["2", "4"]
    assert [text2text(*p)["text"] for p in found] == ["1+1=", "2+2="]
    sse = 'data: {"object":"text_completion","choices":[{"index":0,"text":"2"}]}\n\ndata: [DONE]\n\n'
    assert text2text({"prompt": "1+1="}, sse)["prediction"]["sentences"][0]["text"] == "2"


def test_streamed_error_is_rejected():
    sse = 'data: {"object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"Ma"}}]}\n\n' \
          'data: {"error": {"message": "overloaded"}}\n\n'  # fmt: skip
    with pytest.raises(Rejected, match="overloaded"):
        text2text(CHAT_REQUEST, sse)


def test_text2text_does_not_take_a_spacy_output():
    with pytest.raises(Rejected, match="another task's output"):
        text2text("I live in Paris", {"text": "I live in Paris", "entities": []})
    assert mappers.detect({"text": "x", "entities": []}) == "token_classification"


# -- what pairs and detection make of exchanges ---------------------------------------------------


def test_skip_reasons():
    assert pairs.method_skip_reason("OPTIONS") == "options_request"
    assert pairs.method_skip_reason("POST") is None
    for empty in ("", "  ", {}):
        assert pairs.body_skip_reason(empty) == "empty_request"
    assert pairs.body_skip_reason({"inputs": ""}) is None


@pytest.mark.parametrize(
    "outputs, name",
    [
        (AGGREGATED, "token_classification"),
        (PER_TOKEN, "token_classification"),
        ([{"label": "a", "score": 0.5}], "text_classification"),
        ({"sequence": "s", "labels": ["a"], "scores": [1.0]}, "text_classification"),
        ({"generated_text": "x", "details": None}, "text2text"),
        ({"object": "text_completion", "choices": [{"text": "x"}]}, "text2text"),
        ("data: [DONE]", "text2text"),
        ([], None),
    ],
)
def test_detect_shapes(outputs, name):
    assert mappers.detect(outputs) == name


def test_empty_output_is_ambiguous_and_every_task_maps_it():
    assert mappers.is_ambiguous([])
    assert token_classification("No entities here", [])["prediction"]["entities"] == []
    assert tc.text_classification("No entities here", [])["prediction"]["labels"] == []
    assert text2text("No entities here", [])["prediction"]["sentences"] == []
