"""The fast path: one function per built-in task that maps, validates, identifies,
serializes and splits into columns a whole log line's pairs in one pass.

The general path (``Transformer._map_line``) calls the mapper, completes the record
(ingest/transform/records.py), validates it against the server's rules
(ingest/transform/validate.py), serializes it and extracts the analysis columns: five
walks over each record, each with its own type checks, for records that in a real log are
almost all of one shape. Here a line whose pairs all have the usual shape of their
built-in mapper's input (plain values of the expected types, nothing the mapper would
repair or the server refuse) is turned into rows directly; anything else returns
``None`` and the *whole line* goes to the general path, so a record or reject reason can
only ever come from one place. Acceptance is deliberately narrow: ``type(x) is int``, not
``isinstance`` (a boolean offset is an ``int`` to Python and ``true`` in JSON), floats
only where a float is what the general path would write, and so on.

What a function here returns must equal, byte for byte, what the general path gives for
the same line: the record JSON (keys in the client's order, see records.complete), every
column, the row order. tests/test_fast_path.py runs logs of ordinary and odd lines through
both paths with the real CLI and compares stores, rejects and summaries;
``RUBRIX_INGEST_FAST_PATH=0`` turns this path off.

Only the built-in mappers have a fast path, chosen by identity of the route's mapper
function: a custom ``package.module:function`` always takes the general path.

Each fast function is tied to the source of what it reproduces (its mapper, records.py,
validate.py, the stage's ``_map_line``, ...) by a fingerprint. When any of that changes,
the task's fast path turns itself off, so the output stays right whatever is edited, and
tests/test_fast_path.py fails until the function has been checked against the change by
the parity tests and ``FINGERPRINTS`` updated (``python -m ingest.transform.fast`` prints
the current values).
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

ENV = "RUBRIX_INGEST_FAST_PATH"

_Fragment = orjson.Fragment
_MAX_LABEL = 128  # validate.MAX_LABEL_LENGTH
_SINGLE_LABEL_MAX_SUM = _tc.SINGLE_LABEL_MAX_SUM
_T2T_KEYS = ("generated_text", "translation_text", "summary_text", "text")  # mappers/text2text.py


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


Rows = list[tuple[Any, ...]]
# The line's pairs, what its records share, and ``mappers.detect`` when the route has no
# mapper of its own (each output's shape picks its mapper: a fast function then takes only
# pairs whose shape picks its own), else None.
Detect = Callable[[Any], "str | None"] | None
FastMap = Callable[[list[tuple[Any, Any]], Line, Detect], "Rows | None"]


def text_classification(pairs: list[tuple[Any, Any]], line: Line, detect: Detect = None) -> Rows | None:
    """Rows for a line of ``{"labels": [...], "scores": [...]}`` answers to text inputs."""
    rows = []
    digest, agent, metadata, event_ts = line.digest, line.agent, line.metadata, line.event_ts
    for index, (inputs, outputs) in enumerate(pairs):
        if type(inputs) is not str or type(outputs) is not dict:
            return None
        labels = outputs.get("labels")
        scores = outputs.get("scores")
        if detect is not None and type(outputs.get("entities")) is list:  # detected as NER first
            return None
        if type(labels) is not list or type(scores) is not list or len(labels) != len(scores) or not labels:
            return None
        predicted = []
        total = 0
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
            total += score
            if top_score is None or score > top_score:  # max(): the first of equal scores
                top_label, top_score = label, score
        record_id = f"{digest}-{index}"
        record = {
            "id": record_id,
            "metadata": metadata,
            "event_timestamp": event_ts,
            "status": "Default",
            "prediction": {"agent": agent, "labels": predicted},
            "annotation": None,
            "vectors": None,
            "metrics": {},
            "search_keywords": None,
            "inputs": {"text": inputs},
            "multi_label": total > _SINGLE_LABEL_MAX_SUM,
            "explanation": None,
        }
        rows.append(
            (
                record_id,
                line.ts_micros,
                "TextClassification",
                orjson.dumps(record),
                line.path,
                line.status,
                line.latency,
                line.request_id,
                inputs,
                top_label,
                top_score,
                None,
                None,
                line.source,
                line.number,
            )
        )
    return rows


def token_classification(pairs: list[tuple[Any, Any]], line: Line, detect: Detect = None) -> Rows | None:
    """Rows for a line of spaCy-style ``{"text", "entities"}`` answers to text inputs.

    Accepted: a text that neither starts nor ends with whitespace, entities with integer
    offsets inside it that still span something once trimmed, labels of 1 to 128
    characters, scores absent or floats in [0, 1], and no tokens in the response. For such
    a record the mapper's tokens (cut at every entity boundary) are where the server finds
    them, so every span is aligned: validation has nothing left to refuse. (A dict with a
    list of entities is detected as NER before any other shape: ``detect`` needs no call.)
    """
    rows = []
    digest, agent, metadata, event_ts = line.digest, line.agent, line.metadata, line.event_ts
    for index, (text, outputs) in enumerate(pairs):
        if type(text) is not str or not text or type(outputs) is not dict:
            return None
        found = outputs.get("entities")
        if type(found) is not list or outputs.get("tokens") or text[0].isspace() or text[-1].isspace():
            return None
        size = len(text)
        entities = []
        cuts = None  # entity edges inside a word, where the mapper cuts its tokens
        for entity in found:
            if type(entity) is not dict:
                return None
            start = entity.get("start")
            end = entity.get("end")
            label = entity.get("label")
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
            # mappers.tokens.trim_span, inline
            while start < end and text[start].isspace():
                start += 1
            while end > start and text[end - 1].isspace():
                end -= 1
            if start == end:
                return None
            # mappers.tokens.tokenize cuts where an edge has no whitespace on either side
            # (the edges themselves are not whitespace once trimmed)
            if start and not text[start - 1].isspace():
                cuts = {start} if cuts is None else cuts | {start}
            if end < size and not text[end].isspace():
                cuts = {end} if cuts is None else cuts | {end}
            entities.append({"start": start, "end": end, "label": label, "score": score})
        if cuts is None:
            tokens = text.split()  # whitespace_split, for a text with no whitespace at its ends
        else:
            tokens = []
            at = 0
            for cut in sorted(cuts):
                tokens += text[at:cut].split()
                at = cut
            tokens += text[at:].split()
        record_id = f"{digest}-{index}"
        record = {
            "id": record_id,
            "metadata": metadata,
            "event_timestamp": event_ts,
            "status": "Default",
            "prediction": {"agent": agent, "entities": entities, "score": None},
            "annotation": None,
            "vectors": None,
            "metrics": {},
            "search_keywords": None,
            "tokens": tokens,
            "text": text,
        }
        rows.append(
            (
                record_id,
                line.ts_micros,
                "TokenClassification",
                orjson.dumps(record),
                line.path,
                line.status,
                line.latency,
                line.request_id,
                text,
                None,
                None,
                len(entities),
                None,
                line.source,
                line.number,
            )
        )
    return rows


def _sentence(item: Any) -> dict[str, Any] | None:
    """mappers.text2text._sentence for the values that need no check, else None."""
    if type(item) is str:
        return {"text": item, "score": 1.0}
    if type(item) is dict:
        for key in _T2T_KEYS:
            value = item.get(key)
            if isinstance(value, str):
                if type(value) is not str:
                    return None
                score = item.get("score")
                if score is None:
                    return {"text": value, "score": 1.0}
                if type(score) is float and 0.0 <= score <= 1.0:
                    return {"text": value, "score": score}
                return None
    return None


def text2text(pairs: list[tuple[Any, Any]], line: Line, detect: Detect = None) -> Rows | None:
    """Rows for a line of generated, translated or summarized texts."""
    rows = []
    digest, agent, metadata, event_ts = line.digest, line.agent, line.metadata, line.event_ts
    for index, (inputs, outputs) in enumerate(pairs):
        if detect is not None and detect(outputs) != "text2text":
            return None
        if type(inputs) is str:
            text = inputs
        elif type(inputs) is dict and type(inputs.get("text")) is str:
            text = inputs["text"]
        else:
            return None
        sentences = []
        for candidate in outputs if type(outputs) is list else (outputs,):
            sentence = _sentence(candidate)
            if sentence is None:
                return None
            sentences.append(sentence)
        record_id = f"{digest}-{index}"
        record = {
            "id": record_id,
            "metadata": metadata,
            "event_timestamp": event_ts,
            "status": "Default",
            "prediction": {"agent": agent, "sentences": sentences},
            "annotation": None,
            "vectors": None,
            "metrics": {},
            "search_keywords": None,
            "text": text,
        }
        rows.append(
            (
                record_id,
                line.ts_micros,
                "Text2Text",
                orjson.dumps(record),
                line.path,
                line.status,
                line.latency,
                line.request_id,
                text,
                None,
                None,
                None,
                sentences[0]["text"] if sentences else None,
                line.source,
                line.number,
            )
        )
    return rows


# The fast path of each built-in mapper, by the mapper function itself (not its name): a
# route whose mapper is anything else has none.
_BY_MAPPER: tuple[tuple[Any, FastMap, str], ...] = (
    (_tc.text_classification, text_classification, _tc.TASK),
    (_tok.token_classification, token_classification, _tok.TASK),
    (_t2t.text2text, text2text, _t2t.TASK),
)


_NAMED: dict[str, tuple[FastMap, str]] = {}


def for_name(name: str | None) -> tuple[FastMap, str] | None:
    """The fast path of the built-in mapper of this name (as ``mappers.detect`` answers)."""
    if not _NAMED:
        import mappers  # the package imports this module's mappers: imported late, no cycle

        _NAMED.update((n, found) for n, (fn, _) in mappers.BUILTIN.items() if (found := for_mapper(fn)))
    return _NAMED.get(name) if name is not None else None


def for_mapper(mapper: Any) -> tuple[FastMap, str] | None:
    """The fast path of a built-in mapper function and its task; None for any other mapper
    (compared by identity: a custom mapper object need not even be hashable) and for a
    task whose general path changed since its fast function was checked against it."""
    for builtin, fast_map, task in _BY_MAPPER:
        if mapper is builtin:
            return (fast_map, task) if current(task) else None
    return None


# What each fast function reproduces, as module or module:attribute names.
_SHARED = (
    "ingest.transform.records",
    "ingest.transform.validate",
    "ingest.model:SCHEMA",
    "ingest.transform.stage:Transformer._map_line",
    "ingest.transform.stage:_Line.commit_rows",
    "mappers:detect",
    "mappers:_DETECTORS",
)
_DEPENDS = {
    _tc.TASK: (*_SHARED, "mappers.text_classification"),
    _tok.TASK: (*_SHARED, "mappers.token_classification", "mappers.tokens"),
    _t2t.TASK: (*_SHARED, "mappers.text2text"),
}
# The fingerprints of the sources above when each fast function last passed the parity tests.
FINGERPRINTS = {
    _tc.TASK: "cd642b7dfcd2f9c3",
    _tok.TASK: "cadb9eb8465a11a1",
    _t2t.TASK: "c1f670cca3905354",
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
