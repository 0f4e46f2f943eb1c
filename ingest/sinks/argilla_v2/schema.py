"""From our v0 wire records to Argilla 2.x datasets and records (API v1).

Argilla 2.x has no tasks: a dataset has fields (the inputs), questions (what an annotator
answers; a model's prediction travels as a *suggestion* to a question) and metadata
properties. This module decides, per v0 task, the dataset settings and turns each v0
record into a 2.x record item for ``PUT /api/v1/datasets/{id}/records/bulk``:

=====================  ==========================  ==========================================
v0 task                fields                      question (suggestion)
=====================  ==========================  ==========================================
TextClassification     one text field per input    ``label`` (label_selection): the top label
                       key (``text`` usually)      and its score; ``labels``
                                                   (multi_label_selection) when the run's
                                                   records are multi-label: the labels scored
                                                   >= 0.5 and their scores
TokenClassification    ``text``                    ``entities`` (span on ``text``): every
                                                   entity, code-point offsets, scores
Text2Text              ``text``                    ``output`` (text): the best sentence, score
=====================  ==========================  ==========================================

Every record gets ``external_id`` = its v0 id (so a resend updates it) and metadata
``endpoint`` (terms), ``status`` (integer), ``latency_ms`` (float), ``request_id`` (terms),
declared with those types, plus ``event_timestamp`` and any route metadata as extra
metadata (the dataset is created with ``allow_extra_metadata``).

The server's rules applied here come from argilla-server 2.8.0 (see
shared/reference/argilla-v2-wire-protocol.md): label options 2..500 and span options
1..500 (``ARGILLA_LABEL_SELECTION_OPTIONS_MAX_ITEMS``, ``ARGILLA_SPAN_OPTIONS_MAX_ITEMS``),
options frozen once published (``validators/questions.py``), suggestion values among the
options, scores in [0, 1] with a list for list values, span offsets as code points within
the field's length, agent characters ``[a-zA-Z0-9-_:./ ]`` up to 200
(``api/schemas/v1/suggestions.py``), strict int/float metadata
(``models/metadata_properties.py``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

TEXT_FIELD = "text"
LABEL_QUESTION = "label"
MULTI_LABEL_QUESTION = "labels"
SPAN_QUESTION = "entities"
TEXT_QUESTION = "output"
MULTI_LABEL_THRESHOLD = 0.5  # a multi-label prediction's labels are those scored at least this
MAX_LABEL_OPTIONS = 500
MAX_OPTION_LENGTH = 200
MAX_AGENT_LENGTH = 200
# Placeholder options when a run has seen too few labels for the server's minimum (2 for a
# label question, 1 for a span question); the first one not already a label is used.
FALLBACK_OPTIONS = ("(other)", "(other label)", "(unseen label)")

METADATA_PROPERTIES: dict[str, dict[str, Any]] = {
    "endpoint": {"type": "terms", "values": None},
    "status": {"type": "integer", "min": None, "max": None},
    "latency_ms": {"type": "float", "min": None, "max": None},
    "request_id": {"type": "terms", "values": None},
}

_AGENT_BAD_CHARS = re.compile(r"[^a-zA-Z0-9\-_:./\s]+")


class RecordRefused(ValueError):
    """A record that this dataset can never hold; the message says why and how to fix it."""


@dataclass
class Seen:
    """What a run's records for one dataset need from its settings, gathered before creating it."""

    task: str
    labels: dict[str, None] = field(default_factory=dict)  # insertion-ordered set
    inputs: dict[str, None] = field(default_factory=dict)
    multi_label: bool = False

    def add(self, record: dict[str, Any]) -> None:
        prediction = record.get("prediction") or {}
        if self.task == "TextClassification":
            for key in record.get("inputs") or {}:
                self.inputs.setdefault(str(key))
            self.multi_label = self.multi_label or bool(record.get("multi_label"))
            for label in prediction.get("labels") or ():
                self.labels.setdefault(str(label.get("class")))
        elif self.task == "TokenClassification":
            for entity in prediction.get("entities") or ():
                self.labels.setdefault(str(entity.get("label")))


@dataclass(frozen=True)
class Question:
    """A question as the server holds it: suggestions are addressed by its id."""

    id: str
    name: str
    type: str  # label_selection | multi_label_selection | span | text
    options: frozenset[str] | None = None  # None: any value (text questions)
    field: str | None = None  # span questions: the field they mark


@dataclass(frozen=True)
class Layout:
    """A published dataset's settings, as far as mapping records needs them."""

    id: str
    name: str
    task: str
    fields: tuple[str, ...]
    question: Question
    metadata: frozenset[str]  # declared metadata property names
    extra_metadata: bool  # allow_extra_metadata: undeclared keys are stored too


def question_name_for(task: str, multi_label: bool, fields: Iterable[str] = ()) -> str:
    """The question our suggestions answer; never the name of a field (the SDK forbids that)."""
    if task == "TextClassification":
        name = MULTI_LABEL_QUESTION if multi_label else LABEL_QUESTION
    elif task == "TokenClassification":
        name = SPAN_QUESTION
    else:
        name = TEXT_QUESTION
    taken = set(fields)
    while name in taken:
        name = f"{name}_prediction"
    return name


def options_for(task: str, labels: Iterable[str]) -> list[str]:
    """The label options to declare: the given labels, padded to the server's minimum.

    Raises ValueError when there are more labels, or longer ones, than the server allows.
    """
    options = list(dict.fromkeys(lab for lab in labels if lab))
    minimum = 2 if task == "TextClassification" else 1
    for placeholder in FALLBACK_OPTIONS:
        if len(options) >= minimum:
            break
        if placeholder not in options:
            options.append(placeholder)
    if len(options) > MAX_LABEL_OPTIONS:
        raise ValueError(f"{len(options)} labels, more than the {MAX_LABEL_OPTIONS} a question can have")
    long = next((o for o in options if len(o) > MAX_OPTION_LENGTH), None)
    if long is not None:
        raise ValueError(f"label {long[:40]!r}... is longer than {MAX_OPTION_LENGTH} characters")
    return options


def dataset_settings(seen: Seen, labels: Iterable[str] | None) -> dict[str, list[dict[str, Any]]]:
    """The bodies to POST before publishing: ``fields``, ``questions``, ``metadata-properties``.

    ``labels`` (from config) win over the labels seen in the run's records.
    """
    fields = (list(seen.inputs) if seen.task == "TextClassification" else []) or [TEXT_FIELD]
    # Text classification inputs vary between records (a missing key is fine); the other
    # tasks always have their text, and a span question needs its field present.
    required = seen.task != "TextClassification" or len(fields) == 1
    field_bodies = [
        {"name": f, "title": f, "required": required, "settings": {"type": "text", "use_markdown": False}}
        for f in fields
    ]
    name = question_name_for(seen.task, seen.multi_label, fields)
    if seen.task == "Text2Text":
        settings: dict[str, Any] = {"type": "text", "use_markdown": False}
    else:
        chosen = list(labels) if labels else sorted(seen.labels)
        options = [{"value": o, "text": o} for o in options_for(seen.task, chosen)]
        if seen.task == "TokenClassification":
            # v0 allowed overlapping entities; refusing them here would lose such records.
            settings = {"type": "span", "field": fields[0], "allow_overlapping": True, "options": options}
        elif seen.multi_label:
            settings = {"type": "multi_label_selection", "options": options, "options_order": "natural"}
        else:
            settings = {"type": "label_selection", "options": options}
    question = {"name": name, "title": name, "required": True, "settings": settings}
    return {"fields": field_bodies, "questions": [question], "metadata-properties": metadata_bodies()}


def metadata_bodies() -> list[dict[str, Any]]:
    """The metadata properties to POST (they can be added before or after publishing)."""
    return [
        {"name": n, "title": n, "settings": dict(s), "visible_for_annotators": True}
        for n, s in METADATA_PROPERTIES.items()
    ]


def layout_of(
    dataset: dict[str, Any],
    task: str,
    fields: list[dict[str, Any]],
    questions: list[dict[str, Any]],
    metadata: list[dict[str, Any]],
) -> Layout:
    """Our view of a dataset read from the server; RecordRefused when it cannot hold ``task``.

    The question is found by our name and type, so a dataset made by hand works as long as
    it has one (e.g. a ``label`` label_selection question for text classification).
    """
    names = [f["name"] for f in fields]
    wanted = {
        "TextClassification": ("label_selection", "multi_label_selection"),
        "TokenClassification": ("span",),
        "Text2Text": ("text",),
    }[task]
    candidates = [question_name_for(task, multi, names) for multi in (False, True)]
    found = None
    for q in questions:
        qtype = (q.get("settings") or {}).get("type")
        if q.get("name") in candidates and qtype in wanted:
            found = q
            break
    if found is None:
        kinds = " or ".join(wanted)
        raise RecordRefused(
            f"dataset {dataset['name']!r} on the server has no {'/'.join(dict.fromkeys(candidates))!r} "
            f"question of type {kinds}, so it cannot hold {task} records; send this endpoint to "
            'another dataset (dataset = ... under [endpoints."<path>"] in the config)'
        )
    settings = found["settings"]
    options = settings.get("options")
    question = Question(
        id=str(found["id"]),
        name=found["name"],
        type=settings["type"],
        options=frozenset(str(o["value"]) for o in options) if options is not None else None,
        field=settings.get("field"),
    )
    return Layout(
        id=str(dataset["id"]),
        name=dataset["name"],
        task=task,
        fields=tuple(names),
        question=question,
        metadata=frozenset(m["name"] for m in metadata),
        extra_metadata=bool(dataset.get("allow_extra_metadata")),
    )


def agent_of(agent: Any) -> str | None:
    """A prediction agent the server accepts, or None.

    The middleware used the request URL: its query string and fragment go (a ``?`` or ``=``
    is refused, and a query may hold personal data); other refused characters become ``_``.
    """
    if not isinstance(agent, str):
        return None
    text = _AGENT_BAD_CHARS.sub("_", agent.split("?", 1)[0].split("#", 1)[0]).strip()
    text = text[:MAX_AGENT_LENGTH]
    return text if any(c.isalnum() and c.isascii() for c in text) else None


def _score(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return min(1.0, max(0.0, float(value)))


def _unknown_labels_reason(layout: Layout, unknown: list[str]) -> str:
    shown = ", ".join(repr(u) for u in unknown[:5])
    options = sorted(layout.question.options or ())
    listed = ", ".join(repr(o) for o in options[:20]) + (", ..." if len(options) > 20 else "")
    return (
        f"label {shown} is not an option of the published Argilla dataset {layout.name!r} "
        f"(options: {listed}); Argilla 2.x cannot add labels to a published dataset: list every label "
        f'in the config (labels = [...] under [endpoints."<path>"]) and send to a new dataset '
        "(dataset = ...), or delete the dataset on the server so the next run creates it with the "
        "labels it sees, then run again with --from-start or ingest push"
    )


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "\n".join(str(v) for v in value)
    return str(value)


def _metadata(record: dict[str, Any], layout: Layout) -> dict[str, Any]:
    given = record.get("metadata") or {}
    out: dict[str, Any] = {}
    for key, value in given.items():
        spec = METADATA_PROPERTIES.get(key)
        if spec is not None and key in layout.metadata:
            # The server's types are strict: 200.0 is no integer and 1 is no float.
            if spec["type"] == "integer":
                value = value if isinstance(value, int) and not isinstance(value, bool) else None
            elif spec["type"] == "float":
                value = (
                    float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
                )
            elif value is not None:
                value = str(value)
            out[key] = value
        elif key in layout.metadata or layout.extra_metadata:
            out[key] = value
    if layout.extra_metadata and record.get("event_timestamp") and "event_timestamp" not in out:
        out["event_timestamp"] = record["event_timestamp"]
    return out


def suggestion_of(task: str, record: dict[str, Any], layout: Layout) -> dict[str, Any] | None:
    """The record's prediction as a suggestion to the layout's question (None: no prediction).

    Raises RecordRefused when the prediction does not fit the published question.
    """
    prediction = record.get("prediction")
    if not isinstance(prediction, dict):
        return None
    question = layout.question
    value: Any
    score: Any
    if task == "TextClassification":
        labels = [lab for lab in prediction.get("labels") or () if isinstance(lab, dict)]
        if not labels:
            return None
        ranked = sorted(labels, key=lambda lab: _score(lab.get("score")) or 0.0, reverse=True)
        if question.type == "multi_label_selection":
            chosen = (
                [lab for lab in ranked if (_score(lab.get("score")) or 0.0) >= MULTI_LABEL_THRESHOLD]
                if record.get("multi_label")
                else ranked[:1]
            )
            if not chosen:
                return None  # no label reached the threshold: the model predicted none
            value = [str(lab["class"]) for lab in chosen]
            scores = [_score(lab.get("score")) for lab in chosen]
            score = scores if all(s is not None for s in scores) else None
        else:
            value = str(ranked[0]["class"])
            score = _score(ranked[0].get("score"))
        unknown = [v for v in ([value] if isinstance(value, str) else value) if v not in question.options]
    elif task == "TokenClassification":
        text = record.get("text") or ""
        value, scores = [], []
        for entity in prediction.get("entities") or ():
            start, end = entity.get("start"), entity.get("end")
            if not (isinstance(start, int) and isinstance(end, int) and 0 <= start < end <= len(text)):
                raise RecordRefused(
                    f"entity span ({start!r}, {end!r}) is outside the text ({len(text)} characters)"
                )
            value.append({"label": str(entity.get("label")), "start": start, "end": end})
            scores.append(_score(entity.get("score")))
        score = scores if value and all(s is not None for s in scores) else None
        unknown = list(
            dict.fromkeys(span["label"] for span in value if span["label"] not in question.options)
        )
    else:
        sentences = [s for s in prediction.get("sentences") or () if isinstance(s, dict)]
        if not sentences:
            return None
        best = max(sentences, key=lambda s: _score(s.get("score")) or 0.0)
        value, score, unknown = _text(best.get("text")), _score(best.get("score")), []
    if unknown:
        raise RecordRefused(_unknown_labels_reason(layout, unknown))
    suggestion: dict[str, Any] = {"question_id": question.id, "value": value, "type": "model"}
    if score is not None:
        suggestion["score"] = score
    agent = agent_of(prediction.get("agent"))
    if agent is not None:
        suggestion["agent"] = agent
    return suggestion


def record_item(task: str, record: dict[str, Any], layout: Layout) -> dict[str, Any]:
    """The 2.x record item for one v0 record; RecordRefused when the dataset cannot hold it."""
    if task == "TextClassification":
        inputs = record.get("inputs") or {}
        fields = {str(k): _text(v) for k, v in inputs.items()}
        extra = [k for k in fields if k not in layout.fields]
        if extra:
            raise RecordRefused(
                f"input {extra[0]!r} is not a field of the published Argilla dataset {layout.name!r} "
                f"(fields: {', '.join(layout.fields)}); fields cannot be added once a dataset is "
                "published: send this endpoint to a new dataset (dataset = ... in the config)"
            )
    else:
        name = layout.question.field or (TEXT_FIELD if TEXT_FIELD in layout.fields else layout.fields[0])
        fields = {name: _text(record.get("text") or "")}
    item: dict[str, Any] = {"external_id": str(record["id"]), "fields": fields}
    item["metadata"] = _metadata(record, layout)
    suggestion = suggestion_of(task, record, layout)
    item["suggestions"] = [suggestion] if suggestion is not None else []
    return item
