"""The fast path: one function per built-in task that maps, validates, identifies,
serializes and splits into columns one pair of a log line in one pass.

The general path (``Transformer._map_line``) calls the mapper, settles the text
classification flag (``stage._multi_label``), completes the record
(ingest/transform/records.py), validates it against the server's rules
(ingest/transform/validate.py), serializes it and extracts the analysis columns: several
walks over each record, each with its own type checks, for records that in a real log are
almost all of one shape. Here a pair of the usual shape of its built-in mapper's input
(plain values of the expected types, nothing the mapper would repair or refuse, nothing
the server would refuse) is turned into its row directly; anything else returns ``None``
and the *whole line* goes to the general path, so a record or reject reason can only ever
come from one place. Acceptance is deliberately narrow: ``type(x) is int``, not
``isinstance`` (a boolean offset is an ``int`` to Python and ``true`` in JSON), floats
only where a float is what the general path would write, and so on. Where a mapper's rule
is more than a type check (issue 16's span checks, the multi-label evidence, tokens cut at
entity edges), the fast function calls the mapper's own helper rather than a copy.

What a function here returns must equal, byte for byte, what the general path gives for
the same pair: the (task, variant, row) the stage appends, with the record JSON (keys in
the client's order, see records.complete) and every column. tests/test_fast_path.py runs
logs of ordinary and odd lines through both paths with the real CLI and in process and
compares stores, rejects and summaries, and plants bugs in this file to prove that the
comparison sees them; ``RUBRIX_INGEST_FAST_PATH=0`` turns this path off.

Only the built-in mappers have a fast path, chosen as the stage chooses the mapper
(``Transformer._fast_chooser``: config's mapper or task, else each output's detected shape)
and compared by identity of the mapper function: a custom ``package.module:function``, or
a built-in one wrapped for ``subword_spans``, always takes the general path. So do the
dataset-level decisions of issue 16 (ingest/transform/datasets.py): they act in the parent
on the rows either path makes.

Each fast function is tied to the source of what it reproduces (its mapper and helpers,
records.py, validate.py, the stage's choice of mapper, ...) by a fingerprint. When any of
that changes, the task's fast path turns itself off, so the output stays right whatever is
edited, and tests/test_fast_path.py fails until the function has been checked against the
change by the parity tests and ``FINGERPRINTS`` updated (``python -m ingest.transform.fast``
prints the current values).
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import os
from collections.abc import Callable
from typing import Any

import orjson

from mappers import text2text as _t2t
from mappers import text_classification as _tc
from mappers import token_classification as _tok
from mappers.openai import is_completion as _is_completion
from mappers.spans import inside_word as _inside_word
from mappers.spans import surface_matches as _surface_matches
from mappers.tokens import tokenize as _tokenize
from mappers.tokens import trim_span as _trim_span

ENV = "RUBRIX_INGEST_FAST_PATH"

_Fragment = orjson.Fragment
_MAX_LABEL = 128  # validate.MAX_LABEL_LENGTH
_SINGLE_LABEL_MAX_SUM = _tc.SINGLE_LABEL_MAX_SUM
_T2T_KEYS = _t2t._TEXT_KEYS
_T2T_OTHER_TASKS = _t2t._OTHER_TASKS


def enabled() -> bool:
    """False when ``RUBRIX_INGEST_FAST_PATH=0`` (for the parity tests and for bisecting)."""
    return os.environ.get(ENV, "1").strip().lower() not in ("0", "false", "no", "off")


class Line:
    """What every record of one log line shares (computed once per line by the stage)."""

    __slots__ = (
        "agent",
        "digest",
        "event_ts",
        "latency",
        "metadata",
        "number",
        "path",
        "request_id",
        "source",
        "status",
        "ts_micros",
    )

    def __init__(
        self,
        digest: str,
        event_ts: str,
        ts_micros: int,
        agent: str,
        metadata: dict[str, Any],
        path: str,
        status: int,
        latency: float | None,
        request_id: str | None,
        source: str,
        number: int,
    ):
        self.digest, self.event_ts, self.ts_micros, self.agent = digest, event_ts, ts_micros, agent
        # The line's metadata, serialized once and spliced into each record's JSON as is:
        # orjson writes a Fragment's bytes verbatim, which are what it would have written.
        self.metadata = _Fragment(orjson.dumps(metadata))
        self.path, self.status, self.latency, self.request_id = path, status, latency, request_id
        self.source, self.number = source, number


Row = tuple[Any, ...]
Variant = tuple[bool, "str | None", "bool | None"]  # (candidate, evidence, multi_label): see stage._Columns
# One pair's outcome: (task, variant, row), exactly what the general path appends to _Line.rows
# (with the route); None hands the whole line to the general path.
Made = tuple[str, Variant, Row]
# (pair index, inputs, outputs, what the line's records share, the route's multi_label config)
FastMap = Callable[[int, Any, Any, Line, "bool | None"], "Made | None"]

_NO_TASK_VARIANT: Variant = (False, None, None)


def _row(
    line: Line,
    index: int,
    task: str,
    prediction: dict[str, Any],
    fields: dict[str, Any],
    text: str,
    top_label: Any,
    top_score: Any,
    entities: int | None,
    first_sentence: str | None,
) -> Row:
    """One record's row: the record as the general path completes it (common keys, then the
    task's ``fields``, in the order ``records.complete`` writes them, since the store keeps
    the JSON bytes) serialized, and the columns beside it."""
    record_id = f"{line.digest}-{index}"
    record = {
        "id": record_id,
        "metadata": line.metadata,
        "event_timestamp": line.event_ts,
        "status": "Default",
        "prediction": {"agent": line.agent, **prediction},
        "annotation": None,
        "vectors": None,
        "metrics": {},
        "search_keywords": None,
        **fields,
    }
    return (
        record_id,
        line.ts_micros,
        task,
        orjson.dumps(record),
        line.path,
        line.status,
        line.latency,
        line.request_id,
        text,
        top_label,
        top_score,
        entities,
        first_sentence,
        line.source,
        line.number,
    )


def text_classification(
    index: int, inputs: Any, outputs: Any, line: Line, multi_label: bool | None
) -> Made | None:
    """A ``{"labels": [...], "scores": [...]}`` answer to a text input, as the general path
    makes it: mappers.text_classification, then stage._multi_label (the dataset's flag as far
    as a worker knows), records.complete, validate and flat_columns. Labels of 1 to 128
    characters and float scores in [0, 1] only; anything else (an integer score, a label
    that is a number, a configured single-label dataset whose scores need rescaling) is
    the general path's."""
    if type(inputs) is not str or type(outputs) is not dict:
        return None
    labels = outputs.get("labels")
    scores = outputs.get("scores")
    if type(labels) is not list or type(scores) is not list or len(labels) != len(scores) or not labels:
        return None
    predicted = []
    top_label = top_score = None
    for label, score in zip(labels, scores):  # noqa: B905 (lengths checked above)
        if (
            type(label) is not str
            or not 0 < len(label) <= _MAX_LABEL
            or type(score) is not float
            or not 0.0 <= score <= 1.0
        ):
            return None
        predicted.append({"class": label, "score": score})
        if top_score is None or score > top_score:  # flat_columns' max(): the first of equal scores
            top_label, top_score = label, score
    total = sum(scores)  # as the stage sums them: from the integer 0, in order
    if multi_label is None:
        evidence = _tc.evidence(scores)
        flag = evidence == _tc.MULTI or total > _SINGLE_LABEL_MAX_SUM
        variant: Variant = (False, evidence, flag)
    elif multi_label:
        flag, variant = True, (False, _tc.MULTI, True)
    elif total <= _SINGLE_LABEL_MAX_SUM:  # tc.settle leaves such a body as it is
        flag, variant = False, (False, _tc.SINGLE, False)
    else:  # rescaled or rejected by tc.settle: the general path's
        return None
    fields = {
        "inputs": {"text": inputs},  # a text request: no body field to mask (records.complete)
        "multi_label": flag,
        "explanation": None,
    }
    row = _row(line, index, _tc.TASK, {"labels": predicted}, fields, inputs, top_label, top_score, None, None)
    return _tc.TASK, variant, row


def token_classification(
    index: int, inputs: Any, outputs: Any, line: Line, multi_label: bool | None
) -> Made | None:
    """A spaCy-style ``{"text", "entities"}`` answer (or transformers' aggregated
    ``entity_group`` items in it), as mappers.token_classification, records.complete,
    validate and flat_columns make it.

    Accepted: the response's text (else a text request, as the mapper reads them) that
    neither starts nor ends with whitespace; entities with integer offsets that fit it in
    code points, span more than whitespace, match their ``word``/``text`` when they carry
    one and cut no word (mappers.spans.check_spans finds no problem in the first unit it
    tries); labels of 1 to 128 characters; scores absent or floats in [0, 1]; no tokens in
    the response and no per-token (``entity``) items. For such a record the mapper's tokens
    (mappers.tokens.tokenize, cut at every entity edge) are where the server finds them, so
    every span is aligned: validation has nothing left to refuse.
    """
    if type(outputs) is not dict:
        return None
    text = outputs.get("text")
    if type(text) is not str:
        if isinstance(text, str) or type(inputs) is not str:  # a str subclass, or a request to unwrap
            return None
        text = inputs
    found = outputs.get("entities")
    if (
        type(found) is not list
        or outputs.get("tokens")
        or not text
        or text[0].isspace()
        or text[-1].isspace()
    ):
        return None
    size = len(text)
    entities = []
    boundaries = set()
    for entity in found:
        if type(entity) is not dict or "entity" in entity:  # per-token items: hf.aggregate's
            return None
        label = entity["label"] if "label" in entity else entity.get("entity_group")
        start = entity.get("start")
        end = entity.get("end")
        score = entity.get("score")
        if (
            type(start) is not int
            or type(end) is not int
            or not 0 <= start < end <= size
            or type(label) is not str
            or not 0 < len(label) <= _MAX_LABEL
        ):
            return None
        if score is None:
            score = 0.0
        elif type(score) is not float or not 0.0 <= score <= 1.0:
            return None
        piece = text[start:end]
        if not piece.strip():
            return None
        # spans.inside_word decides; most edges lie next to a space or a punctuation mark,
        # where its first condition (letters or digits on both sides) is false: no call
        if start and text[start - 1].isalnum() and text[start].isalnum() and _inside_word(text, start):
            return None
        if end < size and text[end - 1].isalnum() and text[end].isalnum() and _inside_word(text, end):
            return None
        surface = entity["word"] if "word" in entity else entity.get("text")
        if isinstance(surface, str) and not _surface_matches(piece, surface):
            return None
        start, end = _trim_span(text, start, end)
        boundaries.add(start)
        boundaries.add(end)
        entities.append({"start": start, "end": end, "label": label, "score": score})
    tokens = _tokenize(text, boundaries)
    prediction = {"entities": entities, "score": None}
    row = _row(
        line,
        index,
        _tok.TASK,
        prediction,
        {"tokens": tokens, "text": text},
        text,
        None,
        None,
        len(entities),
        None,
    )
    return _tok.TASK, _NO_TASK_VARIANT, row


def _sentence(item: Any, prompt: str) -> dict[str, Any] | None:
    """mappers.text2text._sentence for the values that need no check, else None."""
    if type(item) is str:
        return {"text": item, "score": 1.0}
    if type(item) is not dict:
        return None
    for key in _T2T_OTHER_TASKS:
        if key in item:  # the mapper rejects it
            return None
    for key in _T2T_KEYS:
        text = item.get(key)
        if isinstance(text, str):
            if type(text) is not str:
                return None
            if key == "generated_text" and prompt and text.startswith(prompt) and text != prompt:
                text = text[len(prompt) :]
            score = item.get("score")
            if score is None:
                return {"text": text, "score": 1.0}
            if type(score) is float and 0.0 <= score <= 1.0:
                return {"text": text, "score": score}
            return None
    return None


def text2text(index: int, inputs: Any, outputs: Any, line: Line, multi_label: bool | None) -> Made | None:
    """A generated, translated or summarized text (or a list of them) for a text request
    or ``{"text": ...}``, as mappers.text2text, records.complete, validate and flat_columns
    make it. Chat and completion requests and answers (mappers/openai.py) are the general
    path's."""
    if type(inputs) is str:
        prompt = inputs
    elif type(inputs) is dict and not ("messages" in inputs or "prompt" in inputs or "inputs" in inputs):
        prompt = inputs.get("text")
        if type(prompt) is not str:
            return None
    else:
        return None
    if _is_completion(outputs):
        return None
    sentences = []
    for candidate in outputs if type(outputs) is list else (outputs,):
        sentence = _sentence(candidate, prompt)
        if sentence is None:
            return None
        sentences.append(sentence)
    first = sentences[0]["text"] if sentences else None
    row = _row(
        line, index, _t2t.TASK, {"sentences": sentences}, {"text": prompt}, prompt, None, None, None, first
    )
    return _t2t.TASK, _NO_TASK_VARIANT, row


# The fast path of each built-in mapper, by the mapper function itself (not its name): a
# route whose mapper is anything else has none.
_BY_MAPPER: tuple[tuple[Any, FastMap, str], ...] = (
    (_tc.text_classification, text_classification, _tc.TASK),
    (_tok.token_classification, token_classification, _tok.TASK),
    (_t2t.text2text, text2text, _t2t.TASK),
)


def for_mapper(mapper: Any) -> tuple[FastMap, str] | None:
    """The fast path of a built-in mapper function and its task; None for any other mapper
    (compared by identity: a custom mapper object need not even be hashable) and for a
    task whose general path changed since its fast function was checked against it."""
    for builtin, fast_map, task in _BY_MAPPER:
        if mapper is builtin:
            return (fast_map, task) if current(task) else None
    return None


# What each fast function reproduces, as module or module:attribute names: the mappers
# and the helpers they call, the record and validation rules, and the stage's choice of
# mapper per output (the fast path asks the same question through its own code).
_SHARED = (
    "ingest.transform.records",
    "ingest.transform.validate",
    "ingest.model:SCHEMA",
    "ingest.transform.stage:Transformer._map_line",
    "ingest.transform.stage:Transformer._mappers_for",
    "ingest.transform.stage:Transformer._mapper",
    "ingest.transform.stage:Transformer._fast_chooser",
    "ingest.transform.stage:_Line.commit_rows",
    "mappers:detect",
    "mappers:is_ambiguous",
    "mappers:_DETECTORS",
    "mappers.hf",
)
_DEPENDS = {
    _tc.TASK: (*_SHARED, "mappers.text_classification", "ingest.transform.stage:_multi_label"),
    _tok.TASK: (*_SHARED, "mappers.token_classification", "mappers.tokens", "mappers.spans"),
    _t2t.TASK: (*_SHARED, "mappers.text2text", "mappers.openai"),
}
# The fingerprints of the sources above when each fast function last passed the parity tests.
FINGERPRINTS = {
    _tc.TASK: "90d2dab0da2df911",
    _tok.TASK: "289198d6d4fd8c7f",
    _t2t.TASK: "c38bd3888b604fe0",
}
_CURRENT: dict[str, bool] = {}


def fingerprint(task: str) -> str | None:
    """A hash of the source the task's fast function reproduces; None if it cannot be read."""
    digest = hashlib.blake2b(digest_size=8)
    for name in _DEPENDS[task]:
        module_name, _, attribute = name.partition(":")
        obj: Any = importlib.import_module(module_name)
        for part in attribute.split(".") if attribute else ():
            obj = getattr(obj, part)
        if isinstance(obj, tuple | list) or (not callable(obj) and not inspect.ismodule(obj)):
            text = _describe(obj)  # data (a schema, the detectors' order): its value
        else:
            try:
                text = inspect.getsource(obj)
            except (OSError, TypeError):  # no source to compare (a frozen or compiled build)
                return None
        digest.update(name.encode() + b"\0" + text.encode() + b"\0")
    return digest.hexdigest()


def _describe(value: Any) -> str:
    """A value as text that is the same in every process (functions by name, not address)."""
    if isinstance(value, tuple | list):
        return "(" + ", ".join(_describe(v) for v in value) + ")"
    if callable(value) and hasattr(value, "__qualname__"):
        return f"{value.__module__}.{value.__qualname__}"
    return repr(value)


def current(task: str) -> bool:
    """True when the general path of ``task`` is what its fast function was checked against."""
    found = _CURRENT.get(task)
    if found is None:
        found = _CURRENT[task] = fingerprint(task) == FINGERPRINTS[task]
    return found


if __name__ == "__main__":
    for name in FINGERPRINTS:
        print(f"{name}: {fingerprint(name)!r}  (recorded {FINGERPRINTS[name]!r})")
