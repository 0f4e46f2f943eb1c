"""The Rubrix tutorial "Monitor predictions in HTTP API endpoints", writing access logs.

Same app, same endpoints, same request and response shapes as the tutorial; the only
change is the last lines: instead of ``RubrixLogHTTPMiddleware`` logging to Rubrix inside
each request, ``AccessLogMiddleware`` appends each exchange to a JSONL file that
``ingest`` later maps and bulk-logs. Run it with::

    ACCESS_LOG=logs/access.jsonl uvicorn examples.tutorial_service.main:app

and ingest what it wrote with ``ingest logs/access.jsonl``.
"""

from __future__ import annotations

import os

from fastapi import FastAPI

from examples.tutorial_service.models import load_spacy, load_transformers
from ingest.accesslog.middleware import AccessLogMiddleware

spacy_pipeline = load_spacy()
transformers_pipeline = load_transformers()

app_transformers = FastAPI()


@app_transformers.post("/")
def predict_transformers(batch: list[str]) -> list[dict]:
    predictions = transformers_pipeline(batch)
    return [
        {"labels": [p["label"] for p in prediction], "scores": [p["score"] for p in prediction]}
        for prediction in predictions
    ]


app_spacy = FastAPI()


@app_spacy.post("/")
def predict_spacy(batch: list[str]) -> list[dict]:
    predictions = []
    for text in batch:
        doc = spacy_pipeline(text)
        entities = [{"label": ent.label_, "start": ent.start_char, "end": ent.end_char} for ent in doc.ents]
        predictions.append({"text": text, "entities": entities})
    return predictions


app = FastAPI()


@app.get("/")
def root() -> dict:
    return {"message": "alive"}


app.mount("/transformers", app_transformers)
app.mount("/spacy", app_spacy)

# The tutorial's two RubrixLogHTTPMiddleware lines become one:
app.add_middleware(
    AccessLogMiddleware,
    path=os.environ.get("ACCESS_LOG", "logs/access.jsonl"),
    endpoints=["/transformers/", "/spacy/"],
)
