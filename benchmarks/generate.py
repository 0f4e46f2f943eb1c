"""Generate a realistic access log of N lines: ``python benchmarks/generate.py N out.jsonl``.

The tutorial's endpoints mixed (transformers sentiment 45%, spaCy NER 45%, translation
10%), batch sizes 1 to 8, sentences of realistic length built from a vocabulary with
non-ASCII words, entities at their code-point offsets (some next to punctuation), and a
sprinkling of errors (1% status 500). Seeded: the same N gives the same file.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

WORDS = [
    "the",
    "a",
    "service",
    "was",
    "really",
    "good",
    "bad",
    "slow",
    "fast",
    "delivery",
    "product",
    "support",
    "team",
    "quality",
    "price",
    "experience",
    "order",
    "again",
    "never",
    "always",
    "would",
    "recommend",
    "café",
    "naïve",
    "déjà",
    "über",
    "straße",
    "東京",
    "ciudad",
    "über",
    "müde",
    "très",
    "bien",
    "sehr",
    "gut",
    "nothing",
    "special",
    "expected",
    "works",
    "broken",
    "update",
    "app",
    "screen",
]
ENTITIES = [("Paris", "GPE"), ("France", "GPE"), ("Berlin", "GPE"), ("Zürich", "GPE"), ("São Paulo", "GPE"),
            ("東京", "GPE"), ("Ada Lovelace", "PERSON"), ("Marie Curie", "PERSON"), ("Argilla", "ORG"),
            ("Monday", "DATE")]  # fmt: skip
PUNCT = ["", "", "", ".", ",", "!", "?"]


def sentence(rng: random.Random, with_entities: bool) -> tuple[str, list[dict]]:
    text, entities = "", []
    for i in range(rng.randint(6, 28)):
        if i:
            text += " "
        if with_entities and rng.random() < 0.12:
            name, label = rng.choice(ENTITIES)
            entities.append({"label": label, "start": len(text), "end": len(text) + len(name)})
            text += name
        else:
            text += rng.choice(WORDS)
        text += rng.choice(PUNCT) if rng.random() < 0.2 else ""
    return text[0].upper() + text[1:], entities


def line(rng: random.Random, ts: datetime) -> str:
    kind = rng.random()
    n = rng.randint(1, 8)
    status = 500 if rng.random() < 0.01 else 200
    if kind < 0.45:
        path, texts = "/transformers/", [sentence(rng, False)[0] for _ in range(n)]
        response = []
        for _ in texts:
            neg = rng.gauss(0, 2.5)
            exps = [math.exp(neg), math.exp(-neg)]
            response.append({"labels": ["NEGATIVE", "POSITIVE"], "scores": [e / sum(exps) for e in exps]})
        request: object = texts
    elif kind < 0.9:
        path, pairs = "/spacy/", [sentence(rng, True) for _ in range(n)]
        request = [t for t, _ in pairs]
        response = [{"text": t, "entities": e} for t, e in pairs]
    else:
        path, text = "/translate/", sentence(rng, False)[0]
        request, response = {"text": text}, [{"translation_text": text[::-1]}]
    if status == 500:
        response = {"detail": "internal error"}
    return json.dumps({
        "ts": ts.isoformat().replace("+00:00", "Z"), "method": "POST", "path": path,
        "url": "http://models.internal:8000" + path, "status": status,
        "latency_ms": round(rng.uniform(3, 120), 2), "request_id": str(uuid.UUID(int=rng.getrandbits(128))),
        "content_type": "application/json", "request": request, "response": response,
    }, ensure_ascii=False)  # fmt: skip


def generate(n: int, out: Path, seed: int = 0, days: float = 90) -> Path:
    rng = random.Random(seed)
    ts = datetime(2026, 6, 1, tzinfo=UTC)
    step = timedelta(days=days) / max(n, 1)  # by default a quarter, like a backfill
    with open(out, "w", encoding="utf-8") as fh:
        for i in range(n):
            fh.write(line(rng, ts + step * i) + "\n")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lines", type=int)
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--days", type=float, default=90, help="the time the lines span (default 90)")
    args = parser.parse_args()
    generate(args.lines, args.out, args.seed, args.days)


if __name__ == "__main__":
    main()
