"""Token classification (NER): spaCy-style ``{"text", "entities"}`` outputs and the
transformers pipeline's entity lists (aggregated or per token, see mappers/hf.py).

Rubrix's ``token_classification_mapper`` splits the text on ``\\s+`` when the endpoint does
not return tokens. That misaligns any entity next to punctuation ("in Paris." gives the
token "Paris." for the span "Paris"), and the server then rejects the whole bulk request.
We keep Rubrix's split wherever it is aligned (so records are identical to Rubrix's) and
only split a whitespace token further at the entity boundaries that fall inside it.
Offsets are Python string indices (code points), as spaCy's ``start_char``/``end_char``;
they are checked, not forced (mappers/spans.py): a span that does not fit its text in any
unit is rejected with the reason, never cut to the nearest tokens.
"""

from __future__ import annotations

from typing import Any

from mappers import hf
from mappers.base import Rejected
from mappers.spans import check_spans
from mappers.tokens import tokenize, trim_span, whitespace_split

__all__ = ["TASK", "looks_like", "token_classification", "tokenize", "trim_span", "whitespace_split"]

TASK = "TokenClassification"


def _text_of(inputs: Any, outputs: Any) -> str:
    # The response's own text first: offsets were computed on it, and a service may have
    # normalized the request's text (whitespace, Unicode form) before running the model.
    if isinstance(outputs, dict) and isinstance(outputs.get("text"), str):
        return outputs["text"]
    inputs = hf.request_inputs(inputs)
    if isinstance(inputs, str):
        return inputs
    if isinstance(inputs, dict) and isinstance(inputs.get("text"), str):
        return inputs["text"]
    raise Rejected("token_classification: no text in the request or the response")


def _entities_of(outputs: Any) -> list[dict[str, Any]]:
    entities = outputs.get("entities") if isinstance(outputs, dict) else outputs
    if not isinstance(entities, list) or not all(isinstance(e, dict) for e in entities):
        raise Rejected("token_classification: response has no list of entities")
    return entities


def token_classification(inputs: Any, outputs: Any, *, subword_spans: bool = False) -> dict[str, Any]:
    """The record's ``text``, ``tokens`` and predicted entities for one pair.

    ``subword_spans`` (the endpoint's config) accepts spans that start or end inside a
    word; otherwise such a span is rejected as a sign of offsets in the wrong unit or on
    another text. Raises Rejected with the reason a user sees.
    """
    text = _text_of(inputs, outputs)
    spans = hf.spans_of(_entities_of(outputs), text)
    offsets = check_spans(text, spans, subword_spans)
    entities = []
    boundaries: set[int] = set()
    for span, (start, end) in zip(spans, offsets, strict=True):
        start, end = trim_span(text, start, end)
        boundaries.update((start, end))
        entities.append(
            {
                "start": start,
                "end": end,
                "label": span.label,
                "score": 0.0 if span.score is None else span.score,
            }
        )
    given = outputs.get("tokens") if isinstance(outputs, dict) else None
    tokens = list(given) if given else tokenize(text, boundaries)
    return {
        "tokens": tokens,
        "text": text,
        "prediction": {"entities": entities, "score": None},
    }


def _is_entity(item: Any) -> bool:
    return (
        isinstance(item, dict)
        and "start" in item
        and "end" in item
        and ("label" in item or "entity_group" in item or "entity" in item)
    )


def looks_like(outputs: Any) -> bool:
    """True for ``{"entities": [...]}`` or a non-empty list of entities (any style)."""
    if isinstance(outputs, dict):
        return isinstance(outputs.get("entities"), list)
    return isinstance(outputs, list) and len(outputs) > 0 and all(_is_entity(e) for e in outputs)
