"""What a user expects from platform bodies, as rules applied before the task mappers.

- Request envelopes are opened: Hugging Face's ``{"inputs": ...}``, KServe v1 / TF Serving
  ``{"instances": [...]}``, the Open Inference Protocol's ``{"inputs": [{"data": [...]}]}``;
  response envelopes likewise: ``{"predictions": [...]}``, ``{"outputs": [{"data": [...]}]}``.
- A CSV prediction row ``label,score`` is that label with that score; a one-cell row is a
  label (score 1.0) or, when numeric, a class index.
- Class indices without names (``1``, as the KServe Hugging Face server answers) keep the
  index as the label, unless the config maps indices to names (``labels = ["NEGATIVE", "POSITIVE"]``);
  probabilities keyed by index (``{"0": 0.01, "1": 0.99}``) become labels with scores.
  The log has no score for a bare index: the label gets 1.0.
- Hugging Face NER items name their label ``entity_group`` (aggregated) or ``entity``.
"""

from __future__ import annotations

from typing import Any

import mappers
from ingest.sources.formats.decode import CsvRows, Lines
from mappers.pairs import batch_mismatch

_NUMBER = (int, float)  # a tuple: ``int | float`` would be built anew at every call


class PairError(ValueError):
    """A request and a response that cannot be paired; the message is the reject reason."""


def as_number(value: Any) -> float | None:
    """An int or float, or a string ``float()`` reads (``"0.9"``, ``"1e-3"``), as a float;
    None for anything else (booleans and None included). Raises OverflowError only for an
    int past a float's range, which no decoder here gives (orjson refuses such a number)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, _NUMBER):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def open_request(body: Any) -> Any:
    """The model inputs inside a request body's envelope, if it has a known one."""
    if isinstance(body, Lines):
        return [open_request(item) for item in body]
    if isinstance(body, CsvRows):
        return [row[0] if len(row) == 1 else row for row in body]
    if isinstance(body, dict):
        if "instances" in body:
            return body["instances"]
        inputs = body.get("inputs", body.get("text_inputs"))
        if isinstance(inputs, list) and inputs and all(isinstance(t, dict) and "data" in t for t in inputs):
            return _tensor_data(inputs)
        if inputs is not None and set(body) <= {"inputs", "parameters", "text_inputs", "options"}:
            return inputs
    return body


def _tensor_data(tensors: list[dict[str, Any]]) -> Any:
    """Open Inference Protocol tensors: the BYTES (text) one's data, else the first one's."""
    chosen = next((t for t in tensors if t.get("datatype") == "BYTES"), tensors[0])
    return chosen["data"]


def open_response(body: Any, labels: tuple[str, ...] = ()) -> Any:
    """The model outputs inside a response body's envelope, with the rules above applied."""
    if isinstance(body, Lines):
        return [open_response(item, labels) for item in body]
    if isinstance(body, CsvRows):
        return [_csv_prediction(row, labels) for row in body]
    if isinstance(body, dict):
        if "predictions" in body:
            return open_response(body["predictions"], labels)
        outputs = body.get("outputs")
        if (
            isinstance(outputs, list)
            and outputs
            and all(isinstance(t, dict) and "data" in t for t in outputs)
        ):
            if len(outputs) == 1:
                return open_response(outputs[0]["data"], labels)
            names = [str(t.get("name", i)) for i, t in enumerate(outputs)]
            rows = zip(*(t["data"] for t in outputs), strict=False)
            return [dict(zip(names, row, strict=True)) for row in rows]
    return body


def _csv_prediction(row: list[str], labels: tuple[str, ...]) -> Any:
    if len(row) == 2 and as_number(row[1]) is not None and as_number(row[0]) is None:
        return {"label": row[0], "score": as_number(row[1])}
    if len(row) == 1:
        number = as_number(row[0])
        if number is None:
            return {"label": row[0], "score": 1.0}
        if number.is_integer() and "." not in row[0]:
            return normalize_output(int(number), labels)
        return number
    return row


def normalize_output(item: Any, labels: tuple[str, ...] = ()) -> Any:
    """One model output with the index and NER rules applied (see the module docstring)."""
    if isinstance(item, int) and not isinstance(item, bool):
        return {"label": labels[item] if 0 <= item < len(labels) else str(item), "score": 1.0}
    if isinstance(item, dict):
        if item and all(k.isdigit() for k in item) and all(as_number(v) is not None for v in item.values()):
            names = [labels[int(k)] if int(k) < len(labels) else k for k in item]
            return {"labels": names, "scores": [as_number(v) for v in item.values()]}
        if "label" in item and isinstance(item["label"], int) and not isinstance(item["label"], bool):
            index = item["label"]
            return {**item, "label": labels[index] if 0 <= index < len(labels) else str(index)}
        if "label" not in item and ("entity_group" in item or "entity" in item) and "start" in item:
            return {**item, "label": item.get("entity_group", item.get("entity"))}
        if "score" in item and isinstance(item["score"], str) and as_number(item["score"]) is not None:
            return {**item, "score": as_number(item["score"])}
        return item
    if isinstance(item, list) and item and all(isinstance(e, dict) for e in item):
        return [normalize_output(e, labels) for e in item]
    return item


def pair(inputs: Any, outputs: Any, labels: tuple[str, ...] = ()) -> list[tuple[Any, Any]]:
    """(input, output) pairs of one request, one to one, never truncating.

    A list of inputs needs a list of outputs of the same length (else PairError, the
    line is rejected); a single input answered by a one-item list gets that item.
    """
    if isinstance(inputs, list):
        mismatch = batch_mismatch(inputs, outputs)
        if mismatch:
            raise PairError(mismatch)
        return [(i, normalize_output(o, labels)) for i, o in zip(inputs, outputs, strict=True)]
    whole = normalize_output(outputs, labels)
    if isinstance(outputs, list) and len(outputs) == 1:
        item = outputs[0]
        if (isinstance(item, dict | list) and mappers.detect(whole) is None) or (
            isinstance(item, int) and not isinstance(item, bool)
        ):
            # a single input answered by a one-item batch, as list-typed endpoints do
            return [(inputs, normalize_output(item, labels))]
    return [(inputs, whole)]
