"""The built-in profiles, each read from its platform's specification.

Sources and pitfalls per platform: docs/profiles.md (from the team's reference notes on
SageMaker data capture, the KServe payload logger, BentoML monitoring, the Azure ML data
collector, and structlog/loguru body logging in FastAPI apps).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from ingest.sources.formats.fieldmap import MISSING, FieldMap, compile_path
from ingest.sources.formats.profile import (
    Bad,
    Entry,
    Half,
    Item,
    Profile,
    Skip,
    as_status,
    load_object,
)
from ingest.sources.formats.rules import PairError, as_number, normalize_output, open_request, pair
from ingest.transform.logline import REQUIRED, BadLine


def _map(**paths: str | list[str]) -> FieldMap:
    return FieldMap.from_config(dict(paths), "built-in profile")


# --- this project's access log -------------------------------------------------------------


@dataclass
class AccessLog(Profile):
    """docs/log-format.md; read by the original reader (``native``), kept fast."""

    def sniff(self, obj: dict[str, Any]) -> bool:
        return all(k in obj for k in REQUIRED)


# --- AWS SageMaker data capture ------------------------------------------------------------

# <DestinationS3Uri>/<endpoint>/<variant>/yyyy/mm/dd/hh/<file>.jsonl
SAGEMAKER_PATH = re.compile(r"(?:^|/)(?P<endpoint>[^/]+)/(?P<variant>[^/]+)/\d{4}/\d{2}/\d{2}/\d{2}/[^/]+$")


@dataclass
class SageMaker(Profile):
    """One invocation per line; bodies are JSON text, CSV or base64 per ``encoding``."""

    def sniff(self, obj: dict[str, Any]) -> bool:
        return isinstance(obj.get("captureData"), dict)


def sagemaker() -> SageMaker:
    return SageMaker(
        name="sagemaker",
        description="AWS SageMaker Model Monitor data capture",
        fields=_map(
            time="eventMetadata.inferenceTime",
            request="captureData.endpointInput.data",
            response="captureData.endpointOutput.data",
            request_encoding="captureData.endpointInput.encoding",
            response_encoding="captureData.endpointOutput.encoding",
            content_type="captureData.endpointInput.observedContentType",
            response_content_type="captureData.endpointOutput.observedContentType",
            request_id=["eventMetadata.inferenceId", "eventMetadata.eventId"],
        ),
        endpoint_from_path=SAGEMAKER_PATH,
        endpoint="sagemaker",
    )


# --- KServe payload logger -----------------------------------------------------------------

_KSERVE_TYPE = "org.kubeflow.serving.inference."


@dataclass
class KServe(Profile):
    """CloudEvents (JSON event format): request and response are two events with one id."""

    def sniff(self, obj: dict[str, Any]) -> bool:
        return str(obj.get("type", "")).startswith(_KSERVE_TYPE) and "specversion" in obj

    @property
    def joins(self) -> bool:
        return True

    def parse_object(self, obj: dict[str, Any], raw: bytes, source: str) -> list[Item]:
        kind = str(obj.get("type", ""))
        if not kind.startswith(_KSERVE_TYPE) or kind.rsplit(".", 1)[-1] not in ("request", "response"):
            return [Skip("not_a_request", "-")]
        side = kind.rsplit(".", 1)[-1]
        event_id = obj.get("id")
        if not isinstance(event_id, str) or not event_id:
            raise BadLine("CloudEvent without an id")
        ts = self.time_of(obj)
        endpoint = self.endpoint_of(obj, source)
        if "data" in obj:
            body: Any = obj["data"]
        elif "data_base64" in obj:
            try:
                body = base64.b64decode(obj["data_base64"], validate=True)
            except (binascii.Error, TypeError, ValueError):
                raise BadLine("data_base64 is not base64") from None
        else:
            body = None
        fields = self.common_fields(obj, source)
        fields["request_id"] = event_id
        for name in ("metadata", "annotations"):  # JSON strings inside the event
            if isinstance(fields.get(name), str):
                with contextlib.suppress(orjson.JSONDecodeError):
                    fields[name] = orjson.loads(fields[name])
        # The id is the caller's Ce-Id when it sent one, so services (and components) behind
        # one sink can share it; the agent that logs both halves of a pair is one service's.
        where = [str(obj.get(k, "")) for k in ("namespace", "component")]
        key = "\x1f".join([where[0], endpoint, where[1], event_id])
        return [Half(key, side, ts, endpoint, 200, body, fields, raw)]


def kserve() -> KServe:
    return KServe(
        name="kserve",
        description="KServe payload logger CloudEvents",
        fields=_map(
            time=["time", "recordedtime"],
            endpoint=["inferenceservicename", "source"],
        ),
        join_window=300.0,
    )


# --- Azure ML data collector ---------------------------------------------------------------

_AZURE_TYPE = "azureml.inference."
_AZURE_SOURCE = re.compile(r"onlineEndpoints/(?P<endpoint>[^/]+)/deployments/(?P<deployment>[^/]+)")
# <endpoint>/<deployment>/<collection>/yyyy/MM/dd/HH/<instance>.jsonl (shorter partitions too)
AZURE_PATH = re.compile(
    r"(?:^|/)(?P<endpoint>[^/]+)/(?P<deployment>[^/]+)/(?P<collection>[^/]+)/\d{4}(?:/\d{2}){0,4}/[^/]+$"
)
_AZURE_SIDES = {
    "model_inputs": ("rows", "request"),
    "inputs": ("rows", "request"),
    "model_outputs": ("rows", "response"),
    "outputs": ("rows", "response"),
    "request": ("http", "request"),
    "response": ("http", "response"),
}


class Unreadable:
    """A body kept in a blob that could not be read: the pair is skipped with this reason."""

    def __init__(self, reason: str):
        self.reason = reason


def read_blob(location: str, source: str) -> Any:
    """The JSON document at a blob reference (URL, absolute path, or relative to the source)."""
    from ingest.sources import objectstore

    return orjson.loads(objectstore.read_bytes(objectstore.resolve(location, source)))


@dataclass
class AzureML(Profile):
    """Data collector events: ``model_inputs``/``model_outputs`` rows joined by correlation id."""

    row_key: str | None = "row"  # output rows naming their input row (one row per entity)
    input_column: str | None = None  # the text column of input rows; None: the only text one
    blob_reader: Callable[[str, str], Any] = field(default=read_blob, repr=False, compare=False)

    def sniff(self, obj: dict[str, Any]) -> bool:
        return str(obj.get("type", "")).startswith(_AZURE_TYPE)

    @property
    def joins(self) -> bool:
        return True

    def endpoint_of(self, obj: dict[str, Any], source: str) -> str:
        match = _AZURE_SOURCE.search(str(obj.get("source", "")))
        if match:
            return match.group("endpoint")
        return super().endpoint_of(obj, source)

    def parse_object(self, obj: dict[str, Any], raw: bytes, source: str) -> list[Item]:
        kind = str(obj.get("type", ""))
        family_side = (
            _AZURE_SIDES.get(kind.removeprefix(_AZURE_TYPE)) if kind.startswith(_AZURE_TYPE) else None
        )
        if family_side is None:
            return [Skip("not_a_request", "-")]
        family, side = family_side
        key = obj.get("correlationid") or obj.get("xrequestid")
        if not isinstance(key, str) or not key:
            raise BadLine("data collector event without a correlationid")
        ts = self.time_of(obj)
        endpoint = self.endpoint_of(obj, source)
        fields = self.common_fields(obj, source)
        fields["request_id"] = key
        match = _AZURE_SOURCE.search(str(obj.get("source", "")))
        if match:
            fields.setdefault("deployment", match.group("deployment"))
        body: Any
        if "data" in obj and str(obj.get("datainblob", "")).lower() != "true":
            body = obj["data"]
        else:
            location = obj.get("dataref") or obj.get("data")
            if not isinstance(location, str):
                body = Unreadable("blob_unreadable")
            else:
                try:
                    body = self.blob_reader(location, source)
                except Exception:  # any storage or decoding failure: counted, never fatal
                    body = Unreadable("blob_unreadable")
        # a pair is logged by one deployment: mirrored traffic can log one correlation id on two
        where = f"{endpoint}/{fields.get('deployment', '')}"
        return [Half(f"{family}:{where}:{key}", side, ts, endpoint, 200, body, fields, raw)]

    def join(self, request: Half, response: Half) -> list[Item]:
        fields = {**response.fields, **request.fields}
        digest = request.raw + b"\n" + response.raw
        for half in (request, response):
            if isinstance(half.body, Unreadable):
                return [Skip(half.body.reason, request.endpoint, request.ts, 200)]
        if request.key.startswith("http:"):
            return [
                self.entry({}, request.ts, request.endpoint, 200, request.body, response.body, fields, digest)
            ]
        inputs, outputs = request.body, response.body
        if not isinstance(inputs, list) or not isinstance(outputs, list):
            reason = "model_inputs/model_outputs data is not a list of rows"
            return [Bad(reason, request.endpoint, request.ts, 200)]
        texts = [self._text(row) for row in inputs]
        if self.row_key and outputs and all(isinstance(r, dict) and self.row_key in r for r in outputs):
            grouped: list[list[dict[str, Any]]] = [[] for _ in texts]
            for row in outputs:
                index = row[self.row_key]
                if not isinstance(index, int) or not 0 <= index < len(texts):
                    return [Bad(f"output row names input row {index!r}, out of range", request.endpoint)]
                grouped[index].append({k: v for k, v in row.items() if k != self.row_key})
            preds: list[Any] = [normalize_output(g, self.labels) for g in grouped]
        else:
            preds = [_single(row) for row in outputs]
        try:
            pairs = pair(texts, preds, self.labels)
        except PairError as exc:
            return [Bad(str(exc), request.endpoint, request.ts, 200)]
        return [Entry(request.ts, request.endpoint, 200, pairs, fields, digest)]

    def _text(self, row: Any) -> Any:
        if not isinstance(row, dict):
            return row
        if self.input_column:
            return row.get(self.input_column)
        texts = [v for v in row.values() if isinstance(v, str)]
        return texts[0] if len(texts) == 1 else row


def _single(row: Any) -> Any:
    """An output row: one column is its value; several (label and score) stay a dict."""
    if isinstance(row, dict) and len(row) == 1:
        return next(iter(row.values()))
    return row


def azureml() -> AzureML:
    return AzureML(
        name="azureml",
        description="Azure ML online endpoint data collector",
        fields=_map(time="time"),
        endpoint_from_path=AZURE_PATH,
        join_window=3600.0,  # time partitions of inputs and outputs can differ at hour boundaries
    )


# --- BentoML monitor -----------------------------------------------------------------------

BENTOML_PATH = re.compile(r"(?:^|/)(?P<endpoint>[^/]+)/data/data\.(?P<worker>\d+)\.log(?:\.[^/]*)?$")
_BENTOML_RESERVED = ("timestamp", "request_id", "trace_id")


@dataclass
class BentoML(Profile):
    """``bentoml.monitor`` data lines; the schema file says which column is which."""

    input_column: str | None = None  # without a schema file: the input column
    prediction_columns: tuple[str, ...] = ()  # without a schema file: the prediction columns
    # source -> the columns of each worker start in its schema file, the last start's first
    schemas: dict[str, list[list[dict[str, Any]]]] = field(default_factory=dict)

    def sniff(self, obj: dict[str, Any]) -> bool:
        return "timestamp" in obj and "request_id" in obj and "trace_id" in obj and "event" not in obj

    def columns(
        self, source: str, obj: dict[str, Any] | None = None
    ) -> tuple[str | None, list[tuple[str, str]]]:
        """(input column, [(prediction column, type)]) for a source's lines, or for the line
        ``obj``: the schema of the last worker start whose input and prediction columns the
        line has (a line logged before a restart that renamed either has the earlier
        start's), else of the last whose prediction columns it has, else the last start's."""
        starts = self.schemas.get(source)
        if not starts:
            return self.input_column, [(c, "") for c in self.prediction_columns]
        chosen = self._schema_columns(starts[0])
        if obj is None or len(starts) == 1 or self._fits(chosen, obj, True):
            return chosen
        found = [self._schema_columns(schema) for schema in starts]
        for with_input in (True, False):
            for columns in found:
                if self._fits(columns, obj, with_input):
                    return columns
        return chosen

    @staticmethod
    def _fits(
        columns: tuple[str | None, list[tuple[str, str]]], obj: dict[str, Any], with_input: bool
    ) -> bool:
        """The line has one of the prediction columns (and, ``with_input``, the input column)."""
        if with_input and columns[0] not in obj:
            return False
        return any(c in obj for c, t in columns[1] if t != "numerical")

    def _schema_columns(self, schema: list[dict[str, Any]]) -> tuple[str | None, list[tuple[str, str]]]:
        features = [c for c in schema if c.get("role") == "feature"]
        text = next((c for c in features if c.get("type") == "text"), features[0] if features else None)
        preds = [(str(c["name"]), str(c.get("type", ""))) for c in schema if c.get("role") == "prediction"]
        return (self.input_column or (str(text["name"]) if text else None)), preds

    def parse_object(self, obj: dict[str, Any], raw: bytes, source: str) -> list[Item]:
        input_column, prediction_columns = self.columns(source, obj)
        if input_column is None or not prediction_columns:
            raise BadLine("no schema file for this monitor: set input_column and prediction_columns")
        ts = self.time_of(obj)
        endpoint = self.endpoint_of(obj, source)
        fields = self.common_fields(obj, source)
        if fields.get("request_id") in ("None", None):
            fields.pop("request_id", None)
        if input_column not in obj:
            return [Skip("response_without_request", endpoint, ts, 200)]
        text = obj[input_column]
        # numeric prediction columns are the scores of the label column they are named after
        numeric = [c for c, t in prediction_columns if t == "numerical"]
        tasks = [(c, t) for c, t in prediction_columns if t != "numerical"]
        present = [(c, t) for c, t in tasks if c in obj]
        if not present:
            return [Skip("input_only", endpoint, ts, 200)]
        several = len(tasks) > 1
        items: list[Item] = []
        for column, kind in present:
            score_column = next((n for n in numeric if n.startswith(column)), None)
            if (
                score_column is None
                and len([t for t in tasks if t[1] == "categorical"]) == 1
                and kind == "categorical"
            ):
                score_column = numeric[0] if len(numeric) == 1 else None
            output = self._output(obj[column], kind, obj.get(score_column) if score_column else None)
            digest = raw + b"\x00" + column.encode() if several else raw
            items.append(
                Entry(ts, endpoint, 200, [(text, output)], fields, digest, column if several else None)
            )
        return items

    def _output(self, value: Any, kind: str, score: Any) -> Any:
        if isinstance(value, str) and kind in ("text", "generated", "reply"):
            return {"generated_text": value}
        if isinstance(value, str):
            number = as_number(score)
            return {"label": value, "score": 1.0 if number is None else number}
        if isinstance(value, list) and all(isinstance(e, dict) and "start" in e for e in value):
            return {"entities": normalize_output(value, self.labels)}  # none found is an answer too
        return normalize_output(value, self.labels)


def bentoml() -> BentoML:
    return BentoML(
        name="bentoml",
        description="BentoML bentoml.monitor log files",
        fields=_map(time="timestamp", request_id="request_id"),
        endpoint_from_path=BENTOML_PATH,
    )


def is_bentoml_schema(obj: dict[str, Any]) -> bool:
    return "columns" in obj and "meta_data" in obj


# --- FastAPI apps: structlog and loguru ----------------------------------------------------


@dataclass
class Structlog(Profile):
    def sniff(self, obj: dict[str, Any]) -> bool:
        return "event" in obj and "level" in obj and "timestamp" in obj


def structlog() -> Structlog:
    return Structlog(
        name="structlog",
        description="FastAPI body logging with structlog's JSONRenderer",
        fields=_map(
            time="timestamp",
            endpoint="path",
            status=["status_code", "status"],
            request=["request_body", "request"],
            response=["response_body", "response"],
            request_id="request_id",
            latency=["duration_ms", "latency_ms"],
            content_type="content_type",
        ),
        event_field=compile_path("event"),
        request_event="request_started",
        response_event="request_finished",
        join_window=300.0,
    )


@dataclass
class Loguru(Profile):
    def sniff(self, obj: dict[str, Any]) -> bool:
        record = obj.get("record")
        return set(obj) == {"text", "record"} and isinstance(record, dict) and "extra" in record


def loguru() -> Loguru:
    return Loguru(
        name="loguru",
        description="FastAPI body logging with loguru's serialize=True",
        fields=_map(
            time=["record.time.repr", "record.time.timestamp"],
            endpoint="record.extra.path",
            status=["record.extra.status", "record.extra.status_code"],
            request=["record.extra.request", "record.extra.request_body"],
            response=["record.extra.response", "record.extra.response_body"],
            request_id="record.extra.request_id",
            latency=["record.extra.duration_ms", "record.extra.latency_ms"],
        ),
        event_field=compile_path("record.message"),
        request_event="request_started",
        response_event="request_finished",
        join_window=300.0,
    )


def access_log() -> AccessLog:
    return AccessLog(name="access-log", description="this project's access log", native=True)


BUILTIN: dict[str, Callable[[], Profile]] = {
    "access-log": access_log,
    "sagemaker": sagemaker,
    "kserve": kserve,
    "bentoml": bentoml,
    "azureml": azureml,
    "structlog": structlog,
    "loguru": loguru,
}

__all__ = ["BUILTIN", "MISSING", "as_status", "is_bentoml_schema", "load_object", "open_request"]
