"""Text2Text (generation, translation, summarization, chat) outputs.

Accepts what transformers pipelines return per input (``generated_text``,
``translation_text``, ``summary_text``, or a list of such candidates), TGI's
``{"generated_text", "details"}``, OpenAI-compatible chat and text completions (streamed
too, see mappers/openai.py) and a plain string. The record's text is the prompt: the
request's text, ``inputs`` (Inference API, TGI), last user message or ``prompt``
(OpenAI). Scores default to 1.0, as the Rubrix client does for a prediction given as a
string. The text-generation pipeline returns the prompt followed by the continuation
(``return_full_text=True``, its default): the prompt is cut off the front, so the
prediction is what the model generated.
"""

from __future__ import annotations

from typing import Any

from mappers import hf, openai
from mappers.base import Rejected

TASK = "Text2Text"

_TEXT_KEYS = ("generated_text", "translation_text", "summary_text", "text")
# Keys that mark another task's output: a spaCy {"text", "entities"} is not a generated text.
_OTHER_TASKS = ("entities", "labels", "scores", "tokens", "label", "entity_group", "entity")


def _sentence(item: Any, prompt: str) -> dict[str, Any]:
    if isinstance(item, str):
        return {"text": item, "score": 1.0}
    if isinstance(item, dict):
        if any(key in item for key in _OTHER_TASKS):
            raise Rejected(
                "text2text: response item is another task's output "
                f"(has {', '.join(k for k in _OTHER_TASKS if k in item)}), not a generated text"
            )
        for key in _TEXT_KEYS:
            text = item.get(key)
            if isinstance(text, str):
                if key == "generated_text" and prompt and text.startswith(prompt) and text != prompt:
                    text = text[len(prompt) :]
                score = item.get("score")
                return {"text": text, "score": 1.0 if score is None else score}
    raise Rejected("text2text: response item has no generated_text/translation_text/summary_text")


def _input_text(inputs: Any) -> str:
    prompt = openai.prompt_of(inputs)
    if prompt is not None:
        return prompt
    inputs = hf.request_inputs(inputs)
    if isinstance(inputs, str):
        return inputs
    if isinstance(inputs, dict) and isinstance(inputs.get("text"), str):
        return inputs["text"]
    raise Rejected("text2text: no prompt in the request (text, inputs, messages or prompt)")


def text2text(inputs: Any, outputs: Any) -> dict[str, Any]:
    """The record's ``text`` (the prompt) and predicted sentences for one pair."""
    prompt = _input_text(inputs)
    if openai.is_completion(outputs):
        sentences = [{"text": text, "score": 1.0} for text in openai.answers(outputs)]
    else:
        candidates = outputs if isinstance(outputs, list) else [outputs]
        sentences = [_sentence(c, prompt) for c in candidates]
    return {"text": prompt, "prediction": {"sentences": sentences}}


def looks_like(outputs: Any) -> bool:
    if isinstance(outputs, str) or openai.is_completion(outputs):
        return True
    items = outputs if isinstance(outputs, list) and outputs else [outputs]
    return all(
        isinstance(i, dict) and any(k in i for k in _TEXT_KEYS[:3]) and not any(k in i for k in _OTHER_TASKS)
        for i in items
    )
