# ruff: noqa: E501  (sample data: one event per line reads best)
"""Sample logs of other platforms, written from their specifications (made-up content).

Each writer reproduces its platform's pitfalls as described in the team's reference notes
(docs/profiles.md lists them): bodies as JSON text, CSV and base64, events out of order, a
response without its request, partial batches, naive local times, numbers as strings.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any


def _dump(path: Path, objs: list[Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(o) + "\n" for o in objs), encoding="utf-8")
    return path


# --- SageMaker data capture -----------------------------------------------------------------


def capture(
    request: str | None,
    response: str | None,
    *,
    event_id: str,
    time: str = "2026-11-24T12:00:16Z",
    enc_in: str = "JSON",
    enc_out: str = "JSON",
    ct_in: str = "application/json",
    ct_out: str = "application/json",
    inference_id: str | None = None,
) -> dict[str, Any]:
    data: dict[str, Any] = {}
    if request is not None:
        data["endpointInput"] = {
            "observedContentType": ct_in,
            "mode": "INPUT",
            "data": request,
            "encoding": enc_in,
        }
    if response is not None:
        data["endpointOutput"] = {
            "observedContentType": ct_out,
            "mode": "OUTPUT",
            "data": response,
            "encoding": enc_out,
        }
    meta = {"eventId": event_id, "inferenceTime": time}
    if inference_id:
        meta["inferenceId"] = inference_id
    return {"captureData": data, "eventMetadata": meta, "eventVersion": "0"}


SAGEMAKER_KEY = "nlp-sentiment-prod/AllTraffic/2026/11/24/12/00-16-421-9a0c7e3d.jsonl"


def sagemaker_lines() -> list[dict[str, Any]]:
    """Nine invocations of a sentiment endpoint, one per pitfall."""
    j = json.dumps
    return [
        # 1: JSON text with a trailing newline, the caller's InferenceId
        capture(j({"inputs": "I love this phone"}) + "\n", j([{"label": "POSITIVE", "score": 0.998}]) + "\n",
                event_id="e-1", inference_id="order-1"),
        # 2: a batch of two
        capture(j({"inputs": ["great", "awful"]}), j([{"label": "POSITIVE", "score": 0.9}, {"label": "NEGATIVE", "score": 0.8}]),
                event_id="e-2"),
        # 3: CSV in, CSV out ("label,score"), output type with a charset
        capture("fast delivery\n", "POSITIVE,0.97\n", event_id="e-3", enc_in="CSV", enc_out="CSV",
                ct_in="text/csv", ct_out="text/csv; charset=utf-8"),
        # 4: text/plain is captured as BASE64; the output of the same line is JSON
        capture(base64.b64encode(b"arrived broken").decode(), j([{"label": "NEGATIVE", "score": 0.91}]),
                event_id="e-4", enc_in="BASE64", ct_in="text/plain"),
        # 5: both sides base64 (json_content_types did not list application/json; charset=utf-8)
        capture(base64.b64encode(j({"inputs": "so-so"}).encode()).decode(),
                base64.b64encode(j([{"label": "NEUTRAL", "score": 0.6}]).encode()).decode(),
                event_id="e-5", enc_in="BASE64", enc_out="BASE64",
                ct_in="application/json; charset=utf-8", ct_out="application/json; charset=utf-8"),
        # 6: JSON Lines: one output line per input line
        capture(j({"inputs": "first"}) + "\n" + j({"inputs": "second"}) + "\n",
                j({"label": "POSITIVE", "score": 0.7}) + "\n" + j({"label": "NEGATIVE", "score": 0.65}) + "\n",
                event_id="e-6", ct_in="application/jsonlines", ct_out="application/jsonlines"),
        # 7: input-only capture
        capture(j({"inputs": "no answer captured"}), None, event_id="e-7"),
        # 8: a partial batch: three inputs, one output
        capture(j({"inputs": ["a", "b", "c"]}), j([{"label": "POSITIVE", "score": 0.5}]), event_id="e-8"),
        # 9: output-only capture
        capture(None, j([{"label": "POSITIVE", "score": 0.5}]), event_id="e-9", time="2026-11-24T12:59:59Z"),
    ]  # fmt: skip


def write_sagemaker(root: Path, key: str = SAGEMAKER_KEY) -> Path:
    return _dump(root / key, sagemaker_lines())


# --- KServe CloudEvents -------------------------------------------------------------------


def cloudevent(
    side: str,
    event_id: str,
    data: Any = None,
    *,
    time: str,
    isvc: str = "sentiment",
    b64: bytes | None = None,
) -> dict[str, Any]:
    event = {
        "specversion": "1.0",
        "id": event_id,
        "source": "http://localhost:9081/",
        "type": f"org.kubeflow.serving.inference.{side}",
        "datacontenttype": "application/x-www-form-urlencoded",  # curl -d: the type lies
        "time": time,
        "inferenceservicename": isvc,
        "namespace": "models",
        "component": "predictor",
        "endpoint": "",
        "metadata": json.dumps({"X-Request-Id": [event_id]}),
    }
    if b64 is not None:
        event["data_base64"] = base64.b64encode(b64).decode()
    else:
        event["data"] = data
    return event


def kserve_lines() -> list[dict[str, Any]]:
    """Pairs in either order, an orphan request (non-200), a lone response, SSE, v2."""
    return [
        # a pair, request first; 9 fraction digits
        cloudevent("request", "id-1", {"instances": ["good film", "bad film"]}, time="2026-11-24T12:00:16.420961234Z"),
        cloudevent("response", "id-1", {"predictions": [1, 0]}, time="2026-11-24T12:00:16.52Z"),
        # a pair, response first (as an HTTP echo server sees them)
        cloudevent("response", "id-2", {"predictions": [0]}, time="2026-11-24T12:00:17.1Z"),
        cloudevent("request", "id-2", {"instances": ["dull"]}, time="2026-11-24T12:00:17Z"),
        # a request whose predictor answered non-200: no response event ever
        cloudevent("request", "id-3", {"instances": ["crash me"]}, time="2026-11-24T12:00:18Z"),
        # a response whose request was never logged
        cloudevent("response", "id-4", {"predictions": [1]}, time="2026-11-24T12:00:19Z"),
        # v2 (Open Inference Protocol), probabilities keyed by index
        cloudevent("request", "id-5", {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["superb"]}]},
                   time="2026-11-24T12:00:20Z"),
        cloudevent("response", "id-5", {"outputs": [{"name": "probs", "shape": [1], "datatype": "FP32", "data": [{"0": 0.1, "1": 0.9}]}]},
                   time="2026-11-24T12:00:20.2Z"),
        # a streamed (SSE) answer, kept by the sink as data_base64
        cloudevent("request", "id-6", {"instances": ["stream it"]}, time="2026-11-24T12:00:21Z"),
        cloudevent("response", "id-6", b64=b'data: {"token": "ok"}\n\ndata: [DONE]\n\n', time="2026-11-24T12:00:21.5Z"),
        # much later: pushes the event-time clock past the join window for id-3 and id-4
        cloudevent("request", "id-7", {"instances": ["later"]}, time="2026-11-24T12:30:00Z"),
        cloudevent("response", "id-7", {"predictions": [1]}, time="2026-11-24T12:30:00.1Z"),
    ]  # fmt: skip


# --- Azure ML data collector ----------------------------------------------------------------

AZURE_SOURCE = "/subscriptions/s/resourceGroups/g/providers/Microsoft.MachineLearningServices/workspaces/w/onlineEndpoints/tickets/deployments/blue"


def azure_event(
    kind: str, correlation: str, data: Any = None, *, time: str, endpoint: str = "tickets", **extra: Any
) -> dict[str, Any]:
    event = {
        "specversion": "1.0",
        "id": f"{kind}-{correlation}-{time}",
        "source": AZURE_SOURCE.replace("/tickets/", f"/{endpoint}/"),
        "type": f"azureml.inference.{kind}",
        "datacontenttype": "application/json",
        "time": time,
        "correlationid": correlation,
        "xrequestid": correlation,
        "contentrange": "bytes 0-59/*",
        **extra,
    }
    if data is not None:
        event["data"] = data
    return event


def azure_lines(blob: str, missing_blob: str) -> list[dict[str, Any]]:
    return [
        # outputs before inputs; two requests merged into one batch
        azure_event("model_outputs", "c-1", [{"label": "billing", "score": 0.9}, {"label": "bug", "score": 0.7}],
                    time="2026-11-24T12:00:16Z"),
        azure_event("model_inputs", "c-1", [{"ticket": "charged twice"}, {"ticket": "app crashes"}],
                    time="2026-11-24T12:00:16Z"),
        # NER frame: one output row per entity, "row" names the input row
        azure_event("model_inputs", "c-2", [{"ticket": "Ana from Paris called"}], time="2026-11-24T12:00:17Z",
                    endpoint="tickets-ner"),
        azure_event("model_outputs", "c-2", [{"row": 0, "label": "PER", "start": 0, "end": 3, "score": 0.99},
                                              {"row": 0, "label": "LOC", "start": 9, "end": 14, "score": 0.98}],
                    time="2026-11-24T12:00:17Z", endpoint="tickets-ner"),
        # a large payload in a blob (dataref), readable, and one that is not
        azure_event("model_inputs", "c-3", dataref=blob, time="2026-11-24T12:00:18Z"),
        azure_event("model_outputs", "c-3", [{"label": "billing", "score": 0.8}], time="2026-11-24T12:00:18Z"),
        azure_event("model_inputs", "c-4", dataref=missing_blob, time="2026-11-24T12:00:19Z"),
        azure_event("model_outputs", "c-4", [{"label": "bug", "score": 0.8}], time="2026-11-24T12:00:19Z"),
        # scoring failed after the inputs were collected
        azure_event("model_inputs", "c-5", [{"ticket": "never scored"}], time="2026-11-24T12:00:20Z"),
        # payload logging: whole HTTP bodies
        azure_event("request", "c-6", {"inputs": "refund please"}, time="2026-11-24T12:00:21Z", path="/score", method="POST"),
        azure_event("response", "c-6", [{"label": "billing", "score": 0.95}], time="2026-11-24T12:00:21Z"),
        # two hours later: c-5 is past the window
        azure_event("model_inputs", "c-7", [{"ticket": "late one"}], time="2026-11-24T14:00:00Z"),
        azure_event("model_outputs", "c-7", [{"label": "bug", "score": 0.6}], time="2026-11-24T14:00:00Z"),
    ]  # fmt: skip


# --- BentoML monitor ------------------------------------------------------------------------

BENTOML_SCHEMA = {
    "meta_data": {"bento_name": "ticket_service", "bento_version": "abc123"},
    "columns": [
        {"name": "ticket", "role": "feature", "type": "text"},
        {"name": "sentiment", "role": "prediction", "type": "categorical"},
        {"name": "sentiment_score", "role": "prediction", "type": "numerical"},
        {"name": "entities", "role": "prediction", "type": "custom"},
        {"name": "reply", "role": "prediction", "type": "text"},
    ],
}


def bentoml_lines() -> list[dict[str, Any]]:
    def line(ts: str, rid: str, **cols: Any) -> dict[str, Any]:
        return {**cols, "timestamp": ts, "request_id": rid, "trace_id": "0"}

    return [
        line("2026-11-24T13:00:16.420961", "14642743634293743168", ticket="Charged twice", sentiment="negative",
             sentiment_score=0.93, entities=[], reply="Sorry, we will refund you."),
        line("2026-11-24T13:00:17.000001", "14642743634293743169", ticket="Ana loves Paris", sentiment="positive",
             sentiment_score="0.9974", entities=[{"label": "PER", "start": 0, "end": 3, "score": 0.99}],
             reply="Thanks Ana!"),
        # log_batch: two lines, one timestamp and request id
        line("2026-11-24T13:00:18.5", "777", ticket="one", sentiment="positive", sentiment_score=0.6, entities=[],
             reply="ok"),
        line("2026-11-24T13:00:18.5", "777", ticket="two", sentiment="negative", sentiment_score=0.7, entities=[],
             reply="ko"),
        # a branch that logged only the input
        line("2026-11-24T13:00:19", "778", ticket="only input"),
        # a column added later (not in the schema), outside a request
        line("2026-11-24T13:00:20", "None", ticket="caf\u00e9 \U0001f600", sentiment="positive", sentiment_score=0.8,
             entities=[], reply="merci", timestamp_="user value"),
    ]  # fmt: skip


def write_bentoml(root: Path) -> Path:
    monitor = root / "monitoring" / "ticket_triage"
    _dump(monitor / "schema" / "schema.1.log", [BENTOML_SCHEMA])
    return _dump(monitor / "data" / "data.1.log", bentoml_lines())


# --- FastAPI apps: structlog and loguru -----------------------------------------------------


def structlog_lines() -> list[dict[str, Any]]:
    def ev(event: str, ts: str, **kw: Any) -> dict[str, Any]:
        return {"event": event, "level": "info", "timestamp": ts, **kw}

    j = json.dumps
    return [
        ev("application_startup", "2026-11-24T12:00:00.000001Z"),
        ev("http_request", "2026-11-24T12:00:16.420961Z", method="POST", path="/generate", status_code=200,
           duration_ms=812.5, client="10.0.0.7", request_id="r1", request_body=j({"inputs": "Write a haiku"}),
           response_body=j([{"generated_text": "Autumn moonlight"}])),
        ev("http_request", "2026-11-24T12:00:17Z", method="POST", path="/classify", status_code="200",
           request_id="r2", request_body=j({"inputs": "I hate waiting"}),
           response_body=[{"label": "NEGATIVE", "score": 0.97}]),
        ev("http_request", "2026-11-24T12:00:18Z", method="POST", path="/generate", status_code=422,
           request_id="r3", request_body=j({"inputs": ""}), response_body=j({"error": "Input validation error"})),
        # start and finish of one request, finish logged first
        ev("request_finished", "2026-11-24T12:00:19.9Z", path="/generate", status_code=200, request_id="r4",
           response_body=j([{"generated_text": "Done"}])),
        ev("request_started", "2026-11-24T12:00:19Z", method="POST", path="/generate", request_id="r4",
           request_body=j({"inputs": "Say done"})),
        # a streamed answer and a truncated body
        ev("http_request", "2026-11-24T12:00:20Z", path="/generate", status_code=200, request_id="r5",
           request_body=j({"inputs": "stream"}), response_body='data: {"token": {"text": "a"}}\n\ndata: [DONE]\n\n'),
        ev("http_request", "2026-11-24T12:00:21Z", path="/generate", status_code=200, request_id="r6",
           request_body=j({"inputs": "long"})[:10] + "...[truncated]", response_body=j([{"generated_text": "x"}])),
    ]  # fmt: skip


def loguru_lines() -> list[dict[str, Any]]:
    def rec(message: str, ts: str, epoch: float, level: str, **extra: Any) -> dict[str, Any]:
        return {
            "text": f"{ts} | {level} | {message}\n",
            "record": {
                "elapsed": {"repr": "0:00:01.5", "seconds": 1.5},
                "exception": None,
                "extra": extra,
                "file": {"name": "main.py", "path": "/app/main.py"},
                "function": "log_body",
                "level": {"icon": "i", "name": level, "no": 20},
                "line": 42,
                "message": message,
                "module": "main",
                "name": "__main__",
                "process": {"id": 7, "name": "MainProcess"},
                "thread": {"id": 8, "name": "MainThread"},
                "time": {"repr": ts, "timestamp": epoch},
            },
        }

    return [
        rec("request", "2026-11-24 13:00:16.420961+01:00", 1795521616.420961, "INFO", path="/classify", status=200,
            request_id="l1", request={"inputs": "Great support"}, response=[{"label": "POSITIVE", "score": 0.99}]),
        rec("request", "2026-11-24 13:00:17+01:00", 1795521617.0, "INFO", path="/classify", status=200,
            request_id="l2", request={"inputs": ["ok", "meh"]},
            response=[{"label": "POSITIVE", "score": 0.6}, {"label": "NEGATIVE", "score": 0.55}]),
        rec("request", "2026-11-24 13:00:18+01:00", 1795521618.0, "WARNING", path="/generate", status=422,
            request_id="l3", request={"inputs": ""}, response={"error": "Input validation error", "error_type": "validation"}),
    ]  # fmt: skip
