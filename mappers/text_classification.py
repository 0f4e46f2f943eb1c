"""Text classification: the tutorial's ``{"labels", "scores"}`` and raw transformers output.

Semantics follow Rubrix's ``text_classification_mapper`` (inputs as given, a string
becomes ``{"text": ...}``, labels zipped with scores) with one deliberate difference:
scores that cannot be a single-label distribution (they sum to more than 1.001) are sent
with ``multi_label: true``, because the server rejects them otherwise and takes the whole
bulk request down with them.
"""

from __future__ import annotations

from typing import Any

_NUMBER = (int, float)  # not ``int | float``, a union built anew at every call

TASK = "TextClassification"

# The server's tolerance for a single-label distribution (Argilla 1.x record model).
SINGLE_LABEL_MAX_SUM = 1.001


def _labels_and_scores(outputs: Any) -> tuple[list[Any], list[Any]]:
    if isinstance(outputs, dict):
        if "labels" in outputs or "scores" in outputs:
            return list(outputs.get("labels") or []), list(outputs.get("scores") or [])
        if "label" in outputs:  # a transformers pipeline with top_k=1
            return [outputs["label"]], [outputs.get("score")]
    if isinstance(outputs, list) and all(isinstance(p, dict) and "label" in p for p in outputs):
        return [p["label"] for p in outputs], [p.get("score") for p in outputs]
    raise ValueError("text_classification: response has neither labels/scores nor label/score items")


def text_classification(inputs: Any, outputs: Any) -> dict[str, Any]:
    if isinstance(inputs, str):
        inputs = {"text": inputs}
    labels, scores = _labels_and_scores(outputs)
    if len(labels) != len(scores):
        raise ValueError(f"text_classification: {len(labels)} labels but {len(scores)} scores")
    predicted = [{"class": label, "score": score} for label, score in zip(labels, scores, strict=True)]
    total = sum(s for s in scores if isinstance(s, _NUMBER))
    return {
        "inputs": inputs,
        "prediction": {"labels": predicted},
        "multi_label": total > SINGLE_LABEL_MAX_SUM,
    }


def looks_like(outputs: Any) -> bool:
    """True when a response item has the shape of a text classification output."""
    if isinstance(outputs, dict):
        return ("labels" in outputs and "scores" in outputs) or ("label" in outputs and "score" in outputs)
    return (
        isinstance(outputs, list)
        and len(outputs) > 0
        and all(isinstance(p, dict) and "label" in p and "score" in p for p in outputs)
    )
