"""Complete wire records from a mapper's output, in the field order the official client sends.

The task part comes from the mapper; this module adds what belongs to the log line rather
than to the model: a deterministic id, the request time, the prediction agent and
metadata. The JSON text stored in the local store and sent to Rubrix is built here, once.
"""

from __future__ import annotations

from hashlib import blake2b
from typing import Any

from ingest.accesslog.redact import redact_keys

TASKS = ("TextClassification", "TokenClassification", "Text2Text")


def line_digest(line: bytes) -> str:
    """A content hash of a log line: the same line yields the same ids from any file or copy."""
    return blake2b(line.rstrip(b"\r\n"), digest_size=16).hexdigest()


def record_id(digest: str, index: int) -> str:
    return f"{digest}-{index}"


def _from_client_record(record: Any, agent: str) -> tuple[str, dict[str, Any]]:
    """Convert an Argilla/Rubrix client record returned by a custom mapper to wire form."""
    import orjson
    from argilla.client.sdk.text2text.models import CreationText2TextRecord
    from argilla.client.sdk.text_classification.models import CreationTextClassificationRecord
    from argilla.client.sdk.token_classification.models import CreationTokenClassificationRecord

    by_class = {
        "TextClassificationRecord": ("TextClassification", CreationTextClassificationRecord),
        "TokenClassificationRecord": ("TokenClassification", CreationTokenClassificationRecord),
        "Text2TextRecord": ("Text2Text", CreationText2TextRecord),
    }
    task, sdk_class = by_class[type(record).__name__]
    if record.prediction is not None and not record.prediction_agent:
        record.prediction_agent = agent  # else the client puts in the host name
    wire = sdk_class.from_client(record).dict(by_alias=True)
    return task, orjson.loads(orjson.dumps(wire, option=orjson.OPT_NAIVE_UTC))


def task_of_wire_dict(body: dict[str, Any]) -> str:
    if "tokens" in body:
        return "TokenClassification"
    if "inputs" in body:
        return "TextClassification"
    if "text" in body:
        return "Text2Text"
    raise ValueError("mapper returned a dict that is not a record (no inputs, tokens or text)")


def normalize_mapper_output(result: Any, task: str | None, agent: str) -> tuple[str, dict[str, Any]]:
    """(task, body) from whatever a mapper returned: a wire dict or a client record."""
    if isinstance(result, dict):
        return task or task_of_wire_dict(result), result
    if type(result).__name__ in (
        "TextClassificationRecord",
        "TokenClassificationRecord",
        "Text2TextRecord",
    ):
        return _from_client_record(result, agent)
    raise ValueError(f"mapper returned a {type(result).__name__}, expected a record, a dict or None")


def complete(
    task: str,
    body: dict[str, Any],
    *,
    id: str,
    event_timestamp: str,
    agent: str,
    metadata: dict[str, Any],
) -> dict[str, Any]:
    """The full wire record: common fields first, then the task's own, as the client orders them."""
    prediction = body.get("prediction")
    if isinstance(prediction, dict):
        given = prediction
        prediction = {"agent": None}  # first, as the client puts it; update() keeps the place
        prediction.update(given)
        prediction["agent"] = given.get("agent") or agent
    extra = body.get("metadata")
    record: dict[str, Any] = {
        "id": id,
        "metadata": {**metadata, **extra} if isinstance(extra, dict) else metadata,
        "event_timestamp": event_timestamp,
        "status": body.get("status") or "Default",
        "prediction": prediction,
        "annotation": body.get("annotation"),
        "vectors": body.get("vectors"),
        "metrics": body.get("metrics") or {},
        "search_keywords": body.get("search_keywords"),
    }
    if task == "TextClassification":
        inputs = body.get("inputs")
        # the request body's fields, as the mapper took them: one may be a credential (api_key)
        record["inputs"] = redact_keys(inputs) if isinstance(inputs, dict) else inputs
        record["multi_label"] = bool(body.get("multi_label", False))
        record["explanation"] = body.get("explanation")
    elif task == "TokenClassification":
        record["tokens"] = body.get("tokens")
        record["text"] = body.get("text")
    else:
        record["text"] = body.get("text")
    return record


def flat_columns(task: str, record: dict[str, Any]) -> tuple[Any, Any, Any, Any, Any]:
    """(text, predicted_label, predicted_score, n_entities, output_text) for analysis columns."""
    prediction = record.get("prediction") or {}
    if task == "TextClassification":
        inputs = record.get("inputs") or {}
        text = (
            inputs.get("text")
            if isinstance(inputs.get("text"), str)
            else next((v for v in inputs.values() if isinstance(v, str)), None)
        )
        labels = prediction.get("labels") or []
        if not labels:
            return text, None, None, None, None
        top = max(labels, key=lambda lab: lab.get("score") or 0.0)
        return text, str(top.get("class")), top.get("score"), None, None
    if task == "TokenClassification":
        return record.get("text"), None, None, len(prediction.get("entities") or []), None
    sentences = prediction.get("sentences") or []
    return record.get("text"), None, None, None, sentences[0]["text"] if sentences else None
