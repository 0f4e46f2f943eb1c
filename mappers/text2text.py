"""Text2Text (generation, translation, summarization) outputs.

Accepts what transformers pipelines return per input (``generated_text``,
``translation_text``, ``summary_text``, or a list of such candidates) and a plain string.
Scores default to 1.0, as the Rubrix client does for a prediction given as a string.
"""

from __future__ import annotations

from typing import Any

TASK = "Text2Text"

_TEXT_KEYS = ("generated_text", "translation_text", "summary_text", "text")


def _sentence(item: Any) -> dict[str, Any]:
    if isinstance(item, str):
        return {"text": item, "score": 1.0}
    if isinstance(item, dict):
        for key in _TEXT_KEYS:
            if isinstance(item.get(key), str):
                score = item.get("score")
                return {"text": item[key], "score": 1.0 if score is None else score}
    raise ValueError("text2text: response item has no generated_text/translation_text/summary_text")


def _input_text(inputs: Any) -> str:
    if isinstance(inputs, str):
        return inputs
    if isinstance(inputs, dict) and isinstance(inputs.get("text"), str):
        return inputs["text"]
    raise ValueError("text2text: no text in the request")


def text2text(inputs: Any, outputs: Any) -> dict[str, Any]:
    candidates = outputs if isinstance(outputs, list) else [outputs]
    return {
        "text": _input_text(inputs),
        "prediction": {"sentences": [_sentence(c) for c in candidates]},
    }


def looks_like(outputs: Any) -> bool:
    if isinstance(outputs, str):
        return True
    items = outputs if isinstance(outputs, list) and outputs else [outputs]
    return all(isinstance(i, dict) and any(k in i for k in _TEXT_KEYS[:3]) for i in items)
