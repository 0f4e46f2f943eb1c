"""A small FastAPI service logging with AccessLogMiddleware, for tests run under uvicorn.

Configured from the environment so that real ``uvicorn --workers N`` processes can load it:
ACCESS_LOG (the log path) and ACCESS_LOG_OPTIONS (JSON keyword arguments).
"""

from __future__ import annotations

import asyncio
import json
import os

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, StreamingResponse

from ingest.accesslog.middleware import AccessLogMiddleware

LABELS = ("NEGATIVE", "POSITIVE")


def classify(text: str) -> dict:
    """A deterministic stand-in model: the score grows with the text's length."""
    positive = round((len(text) % 97) / 96, 6)
    return {"labels": list(LABELS), "scores": [round(1 - positive, 6), positive]}


def find_entities(text: str) -> dict:
    entities = []
    start = 0
    for word in text.split(" "):
        if word[:1].isupper():
            stripped = word.rstrip(".,!?")
            entities.append({"label": "CAP", "start": start, "end": start + len(stripped)})
        start += len(word) + 1
    return {"text": text, "entities": entities}


app = FastAPI()


@app.post("/classify/")
async def classify_endpoint(batch: list[str]) -> list[dict]:
    return [classify(text) for text in batch]


@app.post("/ner/")
async def ner_endpoint(batch: list[str]) -> list[dict]:
    return [find_entities(text) for text in batch]


@app.post("/slow/")
async def slow_endpoint(batch: list[str]) -> list[dict]:
    await asyncio.sleep(0.05)
    return [classify(text) for text in batch]


@app.post("/stream/")
async def stream_endpoint(batch: list[str]) -> StreamingResponse:
    async def parts():
        yield b"["
        for i, text in enumerate(batch):
            yield (b"," if i else b"") + json.dumps(classify(text)).encode()
        yield b"]"

    return StreamingResponse(parts(), media_type="application/json")


@app.post("/fail/")
async def fail_endpoint(batch: list[str]) -> list[dict]:
    raise RuntimeError("the model fell over")


@app.post("/text/")
async def text_endpoint(request: Request) -> PlainTextResponse:
    body = await request.body()
    return PlainTextResponse(f"got {len(body)} bytes")


@app.get("/health")
async def health() -> dict:
    return {"status": "ok"}


app.add_middleware(
    AccessLogMiddleware,
    path=os.environ.get("ACCESS_LOG", "logs/access.jsonl"),
    **json.loads(os.environ.get("ACCESS_LOG_OPTIONS", "{}")),
)
