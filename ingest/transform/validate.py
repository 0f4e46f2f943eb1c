"""The server's record rules, checked before a record is written or sent.

The server validates a bulk request as a whole: one invalid record fails the request and
none of the batch is stored. Checking each record here lets us reject exactly that record,
with a reason, and deliver the rest. The rules are those of the Argilla 1.29 server's
record models (see ../shared/reference/rubrix-wire-protocol.md).
"""

from __future__ import annotations

from typing import Any

from mappers.tokens import trim_span

# Type tuples, not ``int | float``: the union is built anew at every call on the hot path.
_NUMBER = (int, float)
_ID = (str, int)

MAX_LABEL_LENGTH = 128
SINGLE_LABEL_MAX_SUM = 1.001


def _label_error(label: Any) -> str | None:
    if label.__class__ is str and 0 < len(label) <= MAX_LABEL_LENGTH:  # the usual case, first
        return None
    if isinstance(label, bool):
        return "label is a boolean"
    if isinstance(label, int):
        return None
    if not isinstance(label, str) or not label:
        return f"label {label!r} is not a non-empty string"
    if len(label) > MAX_LABEL_LENGTH:
        return f"label is longer than {MAX_LABEL_LENGTH} characters"
    return None


def _score_error(score: Any, nullable: bool = False) -> str | None:
    if score.__class__ is float and 0.0 <= score <= 1.0:  # the usual case, first
        return None
    if score is None and nullable:
        return None
    if isinstance(score, bool) or not isinstance(score, _NUMBER):
        return f"score {score!r} is not a number"
    if not 0.0 <= score <= 1.0:
        return f"score {score!r} is not within [0, 1]"
    return None


def _text_classification(record: dict[str, Any]) -> str | None:
    inputs = record.get("inputs")
    if not isinstance(inputs, dict) or not inputs:
        return "inputs must be a non-empty object"
    for key, value in inputs.items():
        if isinstance(value, str):
            continue
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            continue
        return f"input {key!r} must be a string or a list of strings"
    prediction = record.get("prediction")
    if prediction is None:
        return None
    labels = prediction.get("labels")
    if not isinstance(labels, list):
        return "prediction labels must be a list"
    total = 0.0
    for item in labels:
        error = _label_error(item.get("class")) or _score_error(item.get("score"))
        if error:
            return error
        total += item["score"]
    if not record.get("multi_label") and total > SINGLE_LABEL_MAX_SUM:
        return f"single-label scores sum to {total:.4f}, more than {SINGLE_LABEL_MAX_SUM}"
    return None


class _SpacedTokens:
    """Token boundaries of tokens joined by single spaces, none of them holding a space.

    That is what the built-in mapper makes of almost every text. The server's search finds
    each such token where the previous one ended plus one, so a token starts at 0 and
    after every space, and ends at the end of the text and before every space: a look at
    one neighbouring character answers, with no list of offsets built.
    """

    __slots__ = ("text",)

    def __init__(self, text: str):
        self.text = text

    def is_start(self, offset: int) -> bool:
        return offset == 0 or (0 < offset <= len(self.text) and self.text[offset - 1] == " ")

    def is_end(self, offset: int) -> bool:
        return offset == len(self.text) or (0 <= offset < len(self.text) and self.text[offset] == " ")


class _FoundTokens:
    """Token boundaries as the server finds them: each token searched from where the last ended."""

    __slots__ = ("ends", "starts")

    def __init__(self, starts: set[int], ends: set[int]):
        self.starts, self.ends = starts, ends

    def is_start(self, offset: int) -> bool:
        return offset in self.starts

    def is_end(self, offset: int) -> bool:
        return offset in self.ends


def token_boundaries(text: str, tokens: list[str]) -> _SpacedTokens | _FoundTokens | str:
    """Where the server finds the tokens in the text, or the reason it cannot."""
    try:
        spaced = " ".join(tokens) == text and text.count(" ") == len(tokens) - 1
    except TypeError:
        spaced = False
    if spaced:
        return _SpacedTokens(text)
    starts: set[int] = set()
    ends: set[int] = set()
    find, size = text.find, len(text)
    position = 0
    for token in tokens:
        if not isinstance(token, str):
            return f"token {token!r} is not a string"
        start = find(token, position)
        if start == -1:
            return f"token {token!r} not found in text"
        position = start + len(token)
        starts.add(start)
        ends.add(position)
        if position < size and text[position] == " ":
            position += 1
    return _FoundTokens(starts, ends)


def _token_classification(record: dict[str, Any]) -> str | None:
    text, tokens = record.get("text"), record.get("tokens")
    if not isinstance(text, str) or not text or text.isspace():
        return "text must be a non-blank string"
    if not isinstance(tokens, list) or not tokens:
        return "tokens must have at least one item"
    boundaries = token_boundaries(text, tokens)
    if isinstance(boundaries, str):
        return boundaries
    prediction = record.get("prediction")
    if prediction is None:
        return None
    entities = prediction.get("entities")
    if not isinstance(entities, list):
        return "prediction entities must be a list"
    for entity in entities:
        start, end = entity.get("start"), entity.get("end")
        if not isinstance(start, int) or not isinstance(end, int) or not start < end:
            return f"entity span ({start!r}, {end!r}) needs integers with start < end"
        label = entity.get("label")
        if not isinstance(label, str) or not 1 <= len(label) <= MAX_LABEL_LENGTH:
            return f"entity label {label!r} must be a string of 1 to {MAX_LABEL_LENGTH} characters"
        error = _score_error(entity.get("score"))
        if error:
            return "entity " + error
        if not (boundaries.is_start(start) and boundaries.is_end(end)):
            # The server trims whitespace at span edges before it gives up on a span.
            trimmed_start, trimmed_end = trim_span(text, max(start, 0), min(end, len(text)))
            if boundaries.is_start(trimmed_start) and boundaries.is_end(trimmed_end):
                continue
            return (
                f"entity span ({start}, {end}, {label!r}) = {text[start:end]!r} "
                "is not aligned with provided tokenization"
            )
    return _score_error(prediction.get("score"), nullable=True)


def _text2text(record: dict[str, Any]) -> str | None:
    if not isinstance(record.get("text"), str):
        return "text must be a string"
    prediction = record.get("prediction")
    if prediction is None:
        return None
    sentences = prediction.get("sentences")
    if not isinstance(sentences, list):
        return "prediction sentences must be a list"
    for sentence in sentences:
        if not isinstance(sentence.get("text"), str):
            return "predicted sentence text must be a string"
        error = _score_error(sentence.get("score"))
        if error:
            return "sentence " + error
    return None


_BY_TASK = {
    "TextClassification": _text_classification,
    "TokenClassification": _token_classification,
    "Text2Text": _text2text,
}


def validate(task: str, record: dict[str, Any]) -> str | None:
    """Why the server would reject this record, or None when it would accept it."""
    record_id = record.get("id")
    if isinstance(record_id, bool) or not isinstance(record_id, _ID):
        return "id must be a string or an integer"
    if record.get("status") not in ("Default", "Edited", "Discarded", "Validated"):
        return f"status {record.get('status')!r} is not a record status"
    prediction = record.get("prediction")
    if prediction is not None and not isinstance(prediction, dict):
        return "prediction must be an object"
    return _BY_TASK[task](record)
