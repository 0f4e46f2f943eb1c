"""Real transformers and spaCy pipelines, their outputs mapped as an endpoint would return them.

The models are the tutorial service's offline stand-ins (examples/tutorial_service/models.py):
its builder makes the DistilBERT sentiment classifier and its WordPiece tokenizer, and the
same tokenizer serves tiny token-classification, zero-shot and generation models built
here with random or briefly trained weights. Their predictions are a toy's, but the
pipeline code, output shapes, sub-word pieces and offsets are the real ones. Needs the
``tutorial`` extra.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("spacy")
pytest.importorskip("transformers")

import mappers
from examples.tutorial_service import models as tutorial
from ingest.transform.records import complete
from ingest.transform.validate import validate
from mappers import pairs
from mappers import text_classification as tc
from mappers.spans import normalize_surface
from mappers.text2text import text2text
from mappers.token_classification import token_classification

SENTENCES = [
    "Meet Ana García in São Paulo on Monday.",
    "Marie Curie flew from Paris to Tokyo with Hugging Face people next week",
    "I really like rubrix!",
    "   spaces  around   Berlin  ",
    "Zürich, Barcelona and New York.",
    "no entities here at all",
]
TAGS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


def record_of(inputs: Any, outputs: Any) -> tuple[str, dict]:
    """Map one pair as the pipeline does: detect the task, map, complete, validate."""
    name = mappers.detect(outputs)
    assert name is not None, outputs
    mapper, task = mappers.resolve(name)
    body = mapper(inputs, outputs)
    if task == tc.TASK:
        body = tc.settle(body, tc.evidence([p["score"] for p in body["prediction"]["labels"]]) == tc.MULTI)
    record = complete(task, body, id="x", event_timestamp="2026-01-01T00:00:00", agent="a", metadata={})
    assert validate(task, record) is None, (validate(task, record), record)
    return task, record


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("models") / "tiny-sentiment"
    tutorial.build_sentiment_model(out)
    return out


@pytest.fixture(scope="session")
def tokenizer(built: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(built)


@pytest.fixture(scope="session")
def ner(tokenizer: Any) -> Any:
    """A DistilBERT token classifier trained for a few steps on the tutorial's names."""
    import torch
    from transformers import DistilBertConfig, DistilBertForTokenClassification, pipeline

    torch.manual_seed(0)
    config = DistilBertConfig(
        vocab_size=tokenizer.vocab_size, dim=32, n_layers=2, n_heads=2, hidden_dim=64,
        max_position_embeddings=128, id2label=dict(enumerate(TAGS)),
        label2id={t: i for i, t in enumerate(TAGS)},
    )  # fmt: skip
    model = DistilBertForTokenClassification(config)
    texts, labels = [], []
    for i, (person, place) in enumerate(zip(tutorial.PEOPLE * 2, tutorial.PLACES * 2, strict=False)):
        text = f"{person} lives in {place}" if i % 2 else f"In {place} I met {person} today"
        enc = tokenizer(text, return_offsets_mapping=True)
        tags = []
        for start, end in enc["offset_mapping"]:
            tag = "O"
            for name, kind in ((person, "PER"), (place, "LOC")):
                at = text.index(name)
                if start < end and at <= start and end <= at + len(name):
                    tag = ("B-" if start == at else "I-") + kind
            tags.append(-100 if start == end else TAGS.index(tag))
        texts.append(text)
        labels.append(tags)
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    width = batch["input_ids"].shape[1]
    target = torch.tensor([row + [-100] * (width - len(row)) for row in labels])
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(40):
        loss = model(**batch, labels=target).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    return lambda strategy: pipeline(
        "token-classification", model=model, tokenizer=tokenizer, aggregation_strategy=strategy, device="cpu"
    )


@pytest.mark.parametrize("strategy", ["none", "simple", "first", "max"])
def test_token_classification_pipeline(ner: Any, strategy: str):
    nlp = ner(strategy)
    found = 0
    for text in SENTENCES:
        raw = nlp(text)
        outputs = [{k: (float(v) if k == "score" else v) for k, v in e.items()} for e in raw]
        request = {"inputs": text, "parameters": {"aggregation_strategy": strategy}}
        ((inputs, out),) = pairs.pairs(request, outputs, mappers.detect)
        if not out:
            assert mappers.is_ambiguous(out)
            continue
        try:
            task, record = record_of(inputs, out)
        except mappers.Rejected as exc:
            # The toy model may tag a piece of a word: then the reason says so, nothing is cut.
            assert "inside the word" in str(exc), exc
            continue
        assert task == "TokenClassification" and record["text"] == text
        for entity in record["prediction"]["entities"]:
            span = text[entity["start"] : entity["end"]]
            assert span == span.strip() and span
            found += 1
        if strategy != "none":  # aggregated: each span is the entity's own word
            for entity, given in zip(record["prediction"]["entities"], out, strict=True):
                assert normalize_surface(text[entity["start"] : entity["end"]]) == normalize_surface(
                    given["word"]
                )
    assert found, "the trained toy model finds some entities"


def test_per_token_output_merges_like_the_first_strategy(ner: Any):
    """Per-token tags merged here give the spans of the pipeline's own ``first`` strategy.

    One known difference: the pipeline counts a token glued to the previous one as a
    piece of its word even when it is punctuation ("Paris." is one word to it); here a
    piece continues a word only as ``##`` or between two letters. So spans are compared
    without trailing punctuation.
    """

    def core(text: str, label: str, start: int, end: int) -> tuple[str, int, int]:
        while end > start and not text[end - 1].isalnum():
            end -= 1
        return label, start, end

    compared = 0
    for text in SENTENCES:
        per_token = [{k: (float(v) if k == "score" else v) for k, v in e.items()} for e in ner("none")(text)]
        if not per_token:
            continue
        try:
            _, record = record_of(text, per_token)
        except mappers.Rejected as exc:
            assert "inside the word" in str(exc)
            continue
        ours = {core(text, e["label"], e["start"], e["end"]) for e in record["prediction"]["entities"]}
        theirs = {core(text, e["entity_group"], e["start"], e["end"]) for e in ner("first")(text)}
        assert ours == theirs, text
        compared += 1
    assert compared


def test_text_classification_pipeline_shapes(built: Path):
    from transformers import pipeline

    every = pipeline("text-classification", model=str(built), top_k=None, device="cpu")
    top1 = pipeline("text-classification", model=str(built), device="cpu")
    batch = SENTENCES[:3]
    for inputs, outputs in pairs.pairs({"inputs": batch}, every(batch), mappers.detect):
        _, record = record_of(inputs, outputs)
        assert record["multi_label"] is False and len(record["prediction"]["labels"]) == 2
    # one input: the pipeline answers a list holding the list of labels, as the Inference API does
    answer = every(batch[0])
    assert isinstance(answer[0], list)
    ((inputs, outputs),) = pairs.pairs({"inputs": batch[0]}, answer, mappers.detect)
    _, record = record_of(inputs, outputs)
    assert record["inputs"] == {"text": batch[0]}
    (single,) = top1(batch[0])  # top_k=1 answers [{"label", "score"}]
    _, record = record_of(batch[0], single)
    assert record["prediction"]["labels"] == [{"class": single["label"], "score": single["score"]}]
    rounded = [{"label": p["label"], "score": round(p["score"], 2)} for p in every(batch[1])[0]]
    body = tc.settle(tc.text_classification(batch[1], rounded), False)
    assert sum(p["score"] for p in body["prediction"]["labels"]) <= tc.SINGLE_LABEL_MAX_SUM


def test_zero_shot_pipeline(tokenizer: Any):
    import torch
    from transformers import DistilBertConfig, DistilBertForSequenceClassification, pipeline

    torch.manual_seed(1)
    labels = ["contradiction", "neutral", "entailment"]
    config = DistilBertConfig(
        vocab_size=tokenizer.vocab_size, dim=32, n_layers=1, n_heads=2, hidden_dim=64,
        id2label=dict(enumerate(labels)), label2id={t: i for i, t in enumerate(labels)},
    )  # fmt: skip
    nlp = pipeline(
        "zero-shot-classification", model=DistilBertForSequenceClassification(config), tokenizer=tokenizer,
        device="cpu",
    )  # fmt: skip
    candidates = ["travel", "science", "sport"]
    single = nlp(SENTENCES[1], candidate_labels=candidates)
    assert single.keys() == {"sequence", "labels", "scores"}
    _, record = record_of({"inputs": SENTENCES[1], "parameters": {"candidate_labels": candidates}}, single)
    assert record["multi_label"] is False and record["inputs"] == {"text": SENTENCES[1]}
    multi = nlp(SENTENCES[1], candidate_labels=candidates, multi_label=True)
    body = tc.text_classification(SENTENCES[1], multi)
    assert tc.evidence(multi["scores"]) in (tc.MULTI, tc.OPEN, tc.SINGLE)
    assert tc.settle(body, True)["multi_label"] is True


def test_generation_pipeline(tokenizer: Any):
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, pipeline

    torch.manual_seed(2)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=tokenizer.vocab_size, n_embd=32, n_layer=1, n_head=2))
    nlp = pipeline("text-generation", model=model, tokenizer=tokenizer, device="cpu")
    prompt = "I really like rubrix"
    outputs = nlp(prompt, max_new_tokens=4, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    assert outputs[0]["generated_text"].startswith(prompt)  # the pipeline's default: full text
    _, record = record_of({"inputs": prompt, "parameters": {"max_new_tokens": 4}}, outputs)
    assert record["text"] == prompt
    assert record["prediction"]["sentences"][0]["text"] == outputs[0]["generated_text"][len(prompt) :]


def test_summarization_and_translation_pipelines_are_gone_in_transformers_5():
    """Their shapes ({"summary_text"}, {"translation_text"}) come from servers still on
    transformers 4 or TGI; tests/test_model_outputs.py maps hand-written samples of them."""
    from transformers import pipeline

    for task in ("summarization", "translation_en_to_fr"):
        with pytest.raises(KeyError, match="has been removed"):
            pipeline(task)


def test_spacy_pipeline_outputs():
    nlp = tutorial.load_spacy()
    found = 0
    for text in [*SENTENCES, "😀 Ana García lives in Zürich"]:
        doc = nlp(text)
        outputs = {
            "text": doc.text,
            "entities": [
                {"label": e.label_, "start": e.start_char, "end": e.end_char, "text": e.text}
                for e in doc.ents
            ],
        }
        _, record = record_of(text, outputs)
        got = [(e["label"], text[e["start"] : e["end"]]) for e in record["prediction"]["entities"]]
        assert got == [(e.label_, e.text.strip()) for e in doc.ents]
        found += len(got)
        # a JavaScript client re-serving spaCy's spans in UTF-16 units: converted back
        if any(ord(c) > 0xFFFF for c in text) and doc.ents:

            def utf16(i: int, t: str = text) -> int:
                return len(t[:i].encode("utf-16-le")) // 2

            shifted = {
                **outputs,
                "entities": [
                    {**e, "start": utf16(e["start"]), "end": utf16(e["end"])} for e in outputs["entities"]
                ],
            }
            assert (
                token_classification(text, shifted)["prediction"]["entities"]
                == record["prediction"]["entities"]
            )
    assert found >= 8


def test_text2text_refuses_a_real_spacy_output():
    doc = tutorial.load_spacy()("I live in Paris")
    outputs = {
        "text": doc.text,
        "entities": [{"label": e.label_, "start": e.start_char, "end": e.end_char} for e in doc.ents],
    }
    with pytest.raises(mappers.Rejected):
        text2text("I live in Paris", outputs)
