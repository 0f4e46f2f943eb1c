"""Text classification: the tutorial's ``{"labels", "scores"}`` and transformers outputs.

Shapes: ``{"labels", "scores"}`` (the tutorial; zero-shot classification adds
``"sequence"``), a list of ``{"label", "score"}`` (the text-classification pipeline with
``top_k``), one ``{"label", "score"}`` (``top_k=1``, the pipeline's default). The Inference
API's nested ``[[{"label", "score"}, ...]]`` for one input is unwrapped when pairing.

Semantics follow Rubrix's ``text_classification_mapper`` (inputs as given, a string
becomes ``{"text": ...}``, labels zipped with scores). Whether a record is multi-label is a
property of its dataset (Argilla refuses a bulk whose records differ from the dataset's),
so the mapper only reports what its scores say (``evidence``) and ``settle`` applies the
dataset's decision.
"""

from __future__ import annotations

from typing import Any

from mappers import hf
from mappers.base import Rejected

_NUMBER = (int, float)  # not ``int | float``, a union built anew at every call

TASK = "TextClassification"

# The server's tolerance for a single-label distribution (Argilla 1.x record model).
SINGLE_LABEL_MAX_SUM = 1.001

SINGLE, MULTI, OPEN = "single", "multi", "open"


def _labels_and_scores(outputs: Any) -> tuple[list[Any], list[Any]]:
    if isinstance(outputs, dict):
        if "labels" in outputs or "scores" in outputs:
            return list(outputs.get("labels") or []), list(outputs.get("scores") or [])
        if "label" in outputs:  # a transformers pipeline with top_k=1
            return [outputs["label"]], [outputs.get("score")]
    if isinstance(outputs, list) and all(isinstance(p, dict) and "label" in p for p in outputs):
        return [p["label"] for p in outputs], [p.get("score") for p in outputs]
    raise Rejected("text_classification: response has neither labels/scores nor label/score items")


def _decimals(score: float) -> int:
    for places in range(7):
        if abs(round(score, places) - score) < 1e-12:
            return places
    return 7


def tolerance(scores: list[Any]) -> float:
    """How far from 1 a softmax distribution's sum may be, given how its scores were rounded.

    Full-precision scores: the server's own 0.001. Scores rounded to d decimals are each
    off by up to half a unit of the last place, so n of them by n times that
    (0.34/0.33/0.34 sums to 1.01 and is a softmax rounded to 2 decimals).
    """
    numbers = [s for s in scores if isinstance(s, _NUMBER) and not isinstance(s, bool)]
    if not numbers:
        return SINGLE_LABEL_MAX_SUM - 1
    # Fewer than 2 decimals is a coincidence of the values (0.5, 0.25), not a rounding step.
    places = max(2, max(_decimals(float(s)) for s in numbers))
    return max(SINGLE_LABEL_MAX_SUM - 1, len(numbers) * 0.5 * 10.0**-places) + 1e-9


_LEAST_SLACK = (SINGLE_LABEL_MAX_SUM - 1) + 1e-9  # the least ``tolerance`` of two or more numbers


def evidence(scores: list[Any]) -> str:
    """What a prediction's scores say about its dataset being multi-label.

    ``multi``: they sum to more than 1 beyond rounding (independent sigmoid scores);
    ``single``: two or more scores summing to 1 within rounding (a softmax distribution);
    ``open``: anything else (one label, an empty list, a top-k cut of a distribution),
    which fits either kind of dataset and decides nothing.
    """
    numbers = [s for s in scores if isinstance(s, _NUMBER) and not isinstance(s, bool)]
    total = sum(numbers)
    n = len(numbers)
    # ``tolerance`` rounds every score up to 7 times (a fifth of a record's CPU on the fast
    # path); its result lies between the server's 0.001 (plus 1e-9) and what 2 decimals
    # allow, so a sum within the first or beyond the second is decided without it. Both
    # bounds are computed as ``tolerance`` computes its value, so the answer is the same.
    if n >= 2 and abs(total - 1) <= _LEAST_SLACK:
        return SINGLE
    if total > 1 + (max(SINGLE_LABEL_MAX_SUM - 1, n * 0.5 * 10.0**-2) + 1e-9):
        return MULTI
    slack = tolerance(numbers)
    if total > 1 + slack:
        return MULTI
    if n >= 2 and abs(total - 1) <= slack:
        return SINGLE
    return OPEN


def text_classification(inputs: Any, outputs: Any) -> dict[str, Any]:
    """The record's ``inputs``, predicted labels and ``multi_label`` for one pair.

    ``multi_label`` is what the scores alone say (true only for ``multi`` evidence); the
    pipeline settles it per dataset with ``settle``. Raises Rejected on other shapes.
    """
    inputs = hf.request_inputs(inputs)
    if isinstance(inputs, str):
        inputs = {"text": inputs}
    labels, scores = _labels_and_scores(outputs)
    if len(labels) != len(scores):
        raise Rejected(f"text_classification: {len(labels)} labels but {len(scores)} scores")
    predicted = [{"class": label, "score": score} for label, score in zip(labels, scores, strict=True)]
    return {
        "inputs": inputs,
        "prediction": {"labels": predicted},
        "multi_label": evidence(scores) == MULTI,
    }


def settle(body: dict[str, Any], multi_label: bool, key_hint: str = "multi_label") -> dict[str, Any]:
    """The record body as its dataset's kind requires, or Rejected when it cannot be.

    Multi-label: the flag is set, scores stay. Single-label: scores whose sum is off 1
    only by rounding are divided by their sum (the server allows 1.001); scores that sum
    to more are a multi-label prediction, rejected with the config key that would fix it.
    """
    body = dict(body)
    body["multi_label"] = multi_label
    if multi_label:
        return body
    prediction = body.get("prediction") or {}
    labels = prediction.get("labels") or []
    scores = [item.get("score") for item in labels]
    numbers = [s for s in scores if isinstance(s, _NUMBER) and not isinstance(s, bool)]
    total = sum(numbers)
    if total <= SINGLE_LABEL_MAX_SUM:
        return body
    if evidence(scores) == MULTI:
        raise Rejected(
            f"scores sum to {total:.4g}: a multi-label prediction in a single-label dataset; "
            f"set {key_hint} = true for this endpoint if the model is multi-label"
        )
    body["prediction"] = {
        **prediction,
        "labels": [
            {**item, "score": item["score"] / total} if isinstance(item.get("score"), _NUMBER) else item
            for item in labels
        ],
    }
    return body


def looks_like(outputs: Any) -> bool:
    """True when a response item has the shape of a text classification output."""
    if isinstance(outputs, dict):
        return ("labels" in outputs and "scores" in outputs) or ("label" in outputs and "score" in outputs)
    return (
        isinstance(outputs, list)
        and len(outputs) > 0
        and all(isinstance(p, dict) and "label" in p and "score" in p for p in outputs)
    )
