"""Regenerate the sample access logs: ``python sample_logs/make_samples.py``.

They imitate what the tutorial's service (transformers text classification at
/transformers/, spaCy NER at /spacy/) plus a translation endpoint at /translate/ write
through an access-log middleware over one day: batched requests, scores from a softmax,
entity offsets in code points found in the text, non-ASCII text, and the things real
logs contain (a 500, a malformed line, a batch size mismatch, a non-JSON body, an
entity next to punctuation). Seeded, so the files are the same on every run.
"""

from __future__ import annotations

import gzip
import json
import math
import random
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

HERE = Path(__file__).parent
HOST = "http://models.internal:8000"

SENTIMENT_TEXTS = [
    "I really like rubrix!",
    "The delivery was late and the box was damaged.",
    "Service was fine, nothing special.",
    "Absolutely fantastic support team, thank you!",
    "C'est vraiment décevant, je ne recommande pas.",
    "Das Essen in Zürich war hervorragend.",
    "Terrible experience, never again.",
    "Works as expected 👍",
    "東京のホテルはとても快適でした。",
    "Not bad at all, would buy again.",
]

NER_GAZETTEER = {
    "Paris": "GPE",
    "France": "GPE",
    "Berlin": "GPE",
    "Zürich": "GPE",
    "São Paulo": "GPE",
    "東京": "GPE",
    "Ada Lovelace": "PERSON",
    "Marie Curie": "PERSON",
    "Argilla": "ORG",
    "the United Nations": "ORG",
    "Monday": "DATE",
}
NER_TEXTS = [
    "Paris is in France",
    "I live in Paris.",
    "Ada Lovelace was born in London, not in Berlin.",
    "Marie Curie moved to Paris (France) in 1891.",
    "Meet me in Zürich on Monday!",
    "São Paulo is the largest city in Brazil.",
    "Argilla was renamed from Rubrix.",
    "東京 is the capital of Japan.",
    "The report reached the United Nations, Berlin and Paris.",
    "No entities in this sentence",
]

TRANSLATIONS = {
    "Hello, how are you?": "Bonjour, comment allez-vous ?",
    "The weather is nice today.": "Il fait beau aujourd'hui.",
    "Where is the train station?": "Où est la gare ?",
    "I would like a coffee, please.": "Je voudrais un café, s'il vous plaît.",
}


def softmax(logits: list[float]) -> list[float]:
    exps = [math.exp(x) for x in logits]
    return [e / sum(exps) for e in exps]


def classify(text: str, rng: random.Random) -> dict:
    negative = rng.gauss(0, 2.5)
    return {"labels": ["NEGATIVE", "POSITIVE"], "scores": softmax([negative, -negative])}


def ner(text: str) -> dict:
    entities = []
    for name, label in NER_GAZETTEER.items():
        start = text.find(name)
        if start >= 0:
            entities.append({"label": label, "start": start, "end": start + len(name)})
    return {"text": text, "entities": sorted(entities, key=lambda e: e["start"])}


def line(ts: datetime, path: str, request, response, status=200, rng=None, **extra) -> str:
    entry = {
        "ts": ts.isoformat().replace("+00:00", "Z"),
        "method": "POST",
        "path": path,
        "url": HOST + path,
        "status": status,
        "latency_ms": round(rng.uniform(4, 60) if rng else 12.5, 2),
        "request_id": str(uuid.UUID(int=rng.getrandbits(128))) if rng else None,
        "content_type": "application/json",
        "request": request,
        "response": response,
        **extra,
    }
    return json.dumps(entry, ensure_ascii=False)


def day_of_traffic(start: datetime, n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    lines = []
    ts = start
    for _ in range(n):
        ts += timedelta(seconds=rng.uniform(5, 90))
        kind = rng.random()
        if kind < 0.45:
            batch = rng.sample(SENTIMENT_TEXTS, rng.randint(1, 3))
            lines.append(line(ts, "/transformers/", batch, [classify(t, rng) for t in batch], rng=rng))
        elif kind < 0.9:
            batch = rng.sample(NER_TEXTS, rng.randint(1, 3))
            lines.append(line(ts, "/spacy/", batch, [ner(t) for t in batch], rng=rng))
        else:
            text = rng.choice(list(TRANSLATIONS))
            lines.append(
                line(
                    ts,
                    "/translate/",
                    {"text": text},
                    [{"translation_text": TRANSLATIONS[text]}],
                    rng=rng,
                )
            )
    return lines


def oddities(ts: datetime) -> list[str]:
    """One of each thing real logs contain, at known places."""
    rng = random.Random(7)
    texts = ["Is this working?", "Great product"]
    return [
        # a server error: skipped (error_status)
        line(ts, "/transformers/", texts, {"detail": "CUDA out of memory"}, status=500, rng=rng),
        # a write cut short by a crash, then the logger carried on: rejected (invalid JSON)
        '{"ts": "2026-11-24T13:00:01Z", "path": "/spacy/", "status": 200, "request": ["I live in',
        # three inputs, two outputs: rejected (batch size mismatch), not silently truncated
        line(ts, "/transformers/", [*texts, "third"], [classify(t, rng) for t in texts], rng=rng),
        # a health check with a plain-text body: skipped (non_json_body)
        line(ts, "/health", None, "OK", rng=rng, method="GET", content_type="text/plain"),
        # the raw transformers pipeline output, with the request logged as JSON text
        line(
            ts,
            "/transformers/",
            json.dumps(["Lovely weather"]),
            json.dumps([[{"label": "NEGATIVE", "score": 0.02}, {"label": "POSITIVE", "score": 0.98}]]),
            rng=rng,
        ),
        # epoch milliseconds instead of ISO-8601
        json.dumps(
            {
                "ts": int(ts.timestamp() * 1000),
                "path": "/spacy/",
                "status": 200,
                "url": HOST + "/spacy/",
                "request": ["I live in Paris."],
                "response": [ner("I live in Paris.")],
            }
        ),
    ]


def main() -> None:
    day = datetime(2026, 11, 24, tzinfo=UTC)
    current = day_of_traffic(day.replace(hour=12), 140, seed=1)
    current[40:40] = oddities(day.replace(hour=13))
    (HERE / "access.jsonl").write_text("\n".join(current) + "\n", encoding="utf-8")
    rotated = day_of_traffic(day.replace(hour=0), 120, seed=2)
    with gzip.GzipFile(HERE / "access.jsonl.1.gz", "wb", mtime=0) as fh:
        fh.write(("\n".join(rotated) + "\n").encode("utf-8"))


if __name__ == "__main__":
    main()
