"""Access logs full of edge cases, for comparing the fast path with the general path.

``mutated_lines(n, seed)`` gives lines built like the benchmark log's (the tutorial's three
endpoints, batches, non-ASCII text, entities next to punctuation), with one or more
mutations each from a long list: values of the wrong type (booleans as offsets, strings as
scores, floats where ints go), huge and negative numbers, whitespace of every kind at
text edges and inside entity spans, labels too long or empty, score sums over 1, tokens
given by the response, request/response shapes every mapper refuses, unparseable lines,
skipped lines, and plain correct lines in between. Seeded: the same arguments give the
same lines.
"""

from __future__ import annotations

import copy
import json
import random
from typing import Any

WORDS = ["the", "service", "was", "good", "café", "naïve", "déjà", "straße", "東京", "müde", "très", "bien",
         "app", "works", "😀", "Ω", "x"]  # fmt: skip
ENTITIES = [("Paris", "GPE"), ("Zürich", "GPE"), ("São Paulo", "GPE"), ("東京", "GPE"),
            ("Ada Lovelace", "PERSON"), ("Argilla", "ORG"), ("Monday", "DATE")]  # fmt: skip
PUNCT = ["", "", ".", ",", "!", "'s", ")", "-"]
# Whitespace str.split() cuts at, beyond the plain space.
ODD_SPACES = ["  ", "\t", "\n", "\u00a0", "\u2003", "\u3000", "\x1c", "\r\n", "\u200b"]
ODD_VALUES: list[Any] = [True, False, None, 0, 1, -1, 5.0, 0.5, "3", "", [], {}, 10**30, -(10**30), 1e308,
                         -0.0, 2**63, 1.0000001, "Paris"]  # fmt: skip


def _sentence(rng: random.Random) -> tuple[str, list[dict[str, Any]]]:
    text, entities = "", []
    for i in range(rng.randint(1, 12)):
        if i:
            text += " " if rng.random() < 0.9 else rng.choice(ODD_SPACES)
        if rng.random() < 0.25:
            name, label = rng.choice(ENTITIES)
            entities.append({"label": label, "start": len(text), "end": len(text) + len(name)})
            text += name
        else:
            text += rng.choice(WORDS)
        text += rng.choice(PUNCT) if rng.random() < 0.3 else ""
    return text, entities


def _scores(rng: random.Random, n: int) -> list[float]:
    raw = [rng.random() for _ in range(n)]
    return [x / sum(raw) for x in raw]


def base_line(rng: random.Random, i: int) -> dict[str, Any]:
    """An ordinary line of one of the three endpoints."""
    n = rng.randint(1, 4)
    kind = rng.random()
    if kind < 0.4:
        pairs = [_sentence(rng) for _ in range(n)]
        path, request = "/spacy/", [t for t, _ in pairs]
        response: Any = [{"text": t, "entities": e} for t, e in pairs]
    elif kind < 0.8:
        path, request = "/transformers/", [_sentence(rng)[0] for _ in range(n)]
        labels = rng.choice([["NEGATIVE", "POSITIVE"], ["a", "b", "c"], ["ÉTIQUETTE", "标签"]])
        response = [{"labels": labels, "scores": _scores(rng, len(labels))} for _ in range(n)]
    else:
        text = _sentence(rng)[0]
        path, request = "/translate/", {"text": text}
        response = [{"translation_text": text[::-1]}]
    return {
        "ts": f"2026-06-{1 + i % 3:02d}T{i % 24:02d}:{i % 60:02d}:00.{i:06d}Z",
        "method": "POST",
        "path": path,
        "url": "http://models.internal:8000" + path,
        "status": 200,
        "latency_ms": round(rng.uniform(1, 100), 3),
        "request_id": f"req-{i}",
        "client": {"name": "web", "api_key": "sk-secret"},
        "content_type": "application/json",
        "request": request,
        "response": response,
    }


def _some_entity(line: dict[str, Any], rng: random.Random) -> dict[str, Any] | None:
    found = [e for out in line["response"] if isinstance(out, dict) for e in out.get("entities", [])]
    return rng.choice(found) if found else None


def _some_output(line: dict[str, Any], rng: random.Random) -> Any:
    response = line["response"]
    return rng.choice(response) if isinstance(response, list) and response else response


def mutate(line: dict[str, Any], rng: random.Random) -> dict[str, Any] | str | bytes:
    """One mutation of a line (a dict, or the raw text of a line that is not one)."""
    line = copy.deepcopy(line)
    path = line["path"]
    choice = rng.randrange(41)
    entity = _some_entity(line, rng) if path == "/spacy/" else None
    output = _some_output(line, rng)
    if choice == 0 and entity:
        entity[rng.choice(["start", "end"])] = rng.choice(ODD_VALUES)
    elif choice == 1 and entity:
        entity["start"], entity["end"] = bool(entity["start"]), bool(entity["end"])
    elif choice == 2 and entity:
        entity["label"] = rng.choice(["", "x" * 128, "y" * 129, 7, None, True, "ÉTIQUETTE", "标签"])
    elif choice == 3 and entity:
        entity["score"] = rng.choice([*ODD_VALUES, 0.25, 1.0, 0.0])
    elif choice == 4 and entity:
        entity["start"] = max(0, entity["start"] - rng.randint(1, 3))  # a span with a space or a cut word
    elif choice == 5 and entity:
        entity["end"] += rng.randint(1, 3)
    elif choice == 6 and path == "/spacy/":
        i = rng.randrange(len(line["request"]))
        text = rng.choice(ODD_SPACES) + line["request"][i] + rng.choice(["", *ODD_SPACES])
        line["request"][i] = text
        line["response"][i]["text"] = text
    elif choice == 7 and path == "/spacy/":
        i = rng.randrange(len(line["request"]))
        line["request"][i] = rng.choice(["", " ", "\t\n", "\u3000"])
    elif choice == 8 and isinstance(output, dict) and path == "/spacy/":
        output["tokens"] = output["text"].split() or ["?"]
    elif choice == 9 and isinstance(output, dict) and path == "/spacy/":
        output["entities"] = rng.choice([None, "none", [1, 2], {}, [{"label": "X"}]])
    elif choice == 10 and path == "/spacy/":
        line["request"] = [{"text": t} for t in line["request"]]
    elif choice == 11 and isinstance(output, dict) and path == "/transformers/":
        output["scores"] = [rng.choice(ODD_VALUES) for _ in output["scores"]]
    elif choice == 12 and isinstance(output, dict) and path == "/transformers/":
        output["scores"] = [rng.uniform(0.5, 1) for _ in output["scores"]]  # multi-label sums
    elif choice == 13 and isinstance(output, dict) and path == "/transformers/":
        output["labels"] = [rng.choice([*ODD_VALUES, "z" * 129, "ok"]) for _ in output["labels"]]
    elif choice == 14 and isinstance(output, dict) and path == "/transformers/":
        output["scores"] = output["scores"][:-1]
    elif choice == 15 and isinstance(output, dict) and path == "/transformers/":
        output["labels"], output["scores"] = [], []
    elif choice == 16 and path == "/transformers/":
        line["request"] = [rng.choice([{"text": "a", "b": ["c"]}, {"text": 1}, 3, None, {}, ["x"]])
                           for _ in line["request"]]  # fmt: skip
    elif choice == 17 and isinstance(output, dict) and path == "/transformers/":
        n = len(output["scores"])
        output["scores"] = rng.choice(
            [[1.0, 0.0, 0.0][:n] + [0.0] * (n - 3), [1 / max(n, 1)] * n, [0.0] * n]
        )  # ties
    elif choice == 18 and path == "/transformers/":
        line["response"] = [[{"label": "POSITIVE", "score": 0.9}] for _ in line["response"]]
    elif choice == 19 and path == "/translate/":
        line["response"] = rng.choice(
            [
                "une phrase",
                ["a", "b"],
                [{"generated_text": "g", "score": 0.5}],
                [{"summary_text": "s", "score": rng.choice(ODD_VALUES)}],
                [{"translation_text": 5}],
                [{"nothing": "x"}],
                [],
                {"translation_text": "t"},
                [{"text": "t", "generated_text": "g"}],
            ]
        )
    elif choice == 20 and path == "/translate/":
        line["request"] = rng.choice(["plain", {"text": 5}, {"other": "x"}, ["a"], 7])
    elif choice == 21:
        line["request"] = line["request"][:-1] if isinstance(line["request"], list) else line["request"]
    elif choice == 22:
        line["response"] = {"detail": "x"}
    elif choice == 23:
        line["status"] = rng.choice([500, 404, True, "200", 200.0])
    elif choice == 24:
        line["url"] = rng.choice([None, "", 5, "http://other/ü"])
    elif choice == 25:
        line["latency_ms"] = rng.choice(ODD_VALUES)
    elif choice == 26:
        line["request_id"] = rng.choice(ODD_VALUES)
    elif choice == 27:
        del line[rng.choice(["ts", "path", "status", "request", "response"])]
    elif choice == 28:
        line["ts"] = rng.choice(
            [1764000000, 1764000000123, "2026-06-01", "2026-06-01T10:00:00+05:30", "x", True]
        )
    elif choice == 29:
        line["content_type"] = rng.choice(["text/plain", None, "application/json; charset=utf-8"])
    elif choice == 30:
        line[rng.choice(["request_omitted", "response_omitted"])] = rng.choice(["too_large", "not_json"])
    elif choice == 31:
        line["request"] = json.dumps(line["request"], ensure_ascii=False)  # bodies logged as JSON text
        line["response"] = json.dumps(line["response"], ensure_ascii=False)
    elif choice == 32:
        return json.dumps(line, ensure_ascii=False)[: rng.randint(1, 80)]  # cut short
    elif choice == 33:
        return rng.choice(["", "   ", "[1, 2]", "null", "plain text", '{"ts": 1}'])
    elif choice == 34:
        return json.dumps(line, ensure_ascii=False).encode()[:-3] + b"\xff\xfe}"
    elif choice == 35:
        line["path"] = rng.choice(["/spacy/", "/transformers/", "/translate/", "/other/"])  # shapes cross
    elif choice == 36:
        line["request"], line["response"] = None, None
    elif choice == 37 and path == "/spacy/":
        i = rng.randrange(len(line["request"]))
        text = line["request"][i]
        line["response"][i]["entities"].append({"label": "ALL", "start": 0, "end": len(text), "score": 0.5})
    elif choice == 38 and path == "/spacy/":
        line["response"][0]["entities"].insert(0, {"label": "DUP", "start": 0, "end": 1})
    elif choice == 39 and path == "/spacy/":
        # Booleans equal to the offsets they replace (0 and 1): Python takes False for 0, JSON does not.
        for out in line["response"]:
            for one in out["entities"]:
                if one["start"] == 0:
                    one["start"] = False
                    one["end"] = True if one["end"] == 1 else one["end"]
    else:
        line["method"] = rng.choice(["GET", "PUT", None])
    return line


def mutated_lines(n: int, seed: int = 0, share: float = 0.6) -> list[bytes]:
    """``n`` lines, about ``share`` of them mutated once or more, the rest ordinary."""
    rng = random.Random(seed)
    lines: list[bytes] = []
    for i in range(n):
        line: dict[str, Any] | str | bytes = base_line(rng, i)
        if rng.random() < share:
            for _ in range(rng.choice([1, 1, 1, 2, 3])):
                if not isinstance(line, dict):
                    break
                try:
                    line = mutate(line, rng)
                except (TypeError, KeyError, IndexError, AttributeError, ValueError):
                    break  # an earlier mutation left nothing for this one to change
        if isinstance(line, dict):
            line = json.dumps(line, ensure_ascii=rng.random() < 0.2)
        lines.append(line if isinstance(line, bytes) else line.encode("utf-8", "surrogatepass"))
    return [raw.replace(b"\n", b"\\n") if raw.count(b"\n") else raw for raw in lines]
