"""Token classification (NER): spaCy-style ``{"text", "entities"}`` outputs.

Rubrix's ``token_classification_mapper`` splits the text on ``\\s+`` when the endpoint does
not return tokens. That misaligns any entity next to punctuation ("in Paris." gives the
token "Paris." for the span "Paris"), and the server then rejects the whole bulk request.
We keep Rubrix's split wherever it is aligned (so records are identical to Rubrix's) and
only split a whitespace token further at the entity boundaries that fall inside it.
Offsets are Python string indices (code points), as spaCy's ``start_char``/``end_char``.
"""

from __future__ import annotations

from typing import Any

from mappers.tokens import tokenize, trim_span, whitespace_split

__all__ = ["TASK", "looks_like", "token_classification", "tokenize", "trim_span", "whitespace_split"]

TASK = "TokenClassification"


def _text_of(inputs: Any, outputs: Any) -> str:
    if isinstance(inputs, str):
        return inputs
    if isinstance(inputs, dict) and isinstance(inputs.get("text"), str):
        return inputs["text"]
    if isinstance(outputs, dict) and isinstance(outputs.get("text"), str):
        return outputs["text"]
    raise ValueError("token_classification: no text in the request or the response")


def _entities_of(outputs: Any) -> list[dict[str, Any]]:
    entities = outputs.get("entities") if isinstance(outputs, dict) else outputs
    if not isinstance(entities, list) or not all(isinstance(e, dict) for e in entities):
        raise ValueError("token_classification: response has no list of entities")
    return entities


def token_classification(inputs: Any, outputs: Any) -> dict[str, Any]:
    text = _text_of(inputs, outputs)
    entities = []
    boundaries: set[int] = set()
    for entity in _entities_of(outputs):
        start, end = entity.get("start"), entity.get("end")
        if isinstance(start, int) and isinstance(end, int) and 0 <= start < end <= len(text):
            start, end = trim_span(text, start, end)
            boundaries.update((start, end))
        score = entity.get("score")
        entities.append(
            {
                "start": start,
                "end": end,
                "label": entity.get("label"),
                "score": 0.0 if score is None else score,
            }
        )
    given = outputs.get("tokens") if isinstance(outputs, dict) else None
    tokens = list(given) if given else tokenize(text, boundaries)
    return {
        "tokens": tokens,
        "text": text,
        "prediction": {"entities": entities, "score": None},
    }


def looks_like(outputs: Any) -> bool:
    if isinstance(outputs, dict):
        return isinstance(outputs.get("entities"), list)
    return (
        isinstance(outputs, list)
        and len(outputs) > 0
        and all(isinstance(e, dict) and {"start", "end", "label"} <= e.keys() for e in outputs)
    )
