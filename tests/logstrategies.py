"""Hypothesis strategies for access-log lines, and an oracle for how many lines a file holds.

Shared by the order-independence properties (tests/test_order.py) and the fuzz harness
(tests/test_fuzz.py). Profiles: ``ci`` (the default, bounded so that both files stay under
about a minute) and ``long``, picked with ``HYPOTHESIS_PROFILE=long``.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

_SLOW_OK = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture]
# CI runs a fixed sequence of examples, so a fault found by a random run is chased with the long
# profile (random, 400 examples), not met by chance in a submission's CI.
settings.register_profile(
    "ci", max_examples=12, deadline=None, suppress_health_check=_SLOW_OK, derandomize=True, database=None
)
settings.register_profile("long", max_examples=400, deadline=None, suppress_health_check=_SLOW_OK)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


LONG_RUN = settings.default.max_examples > 12


def examples(ci: int, long: int) -> settings:
    """Per-test example counts: each example runs the CLI in one or more processes."""
    return settings(max_examples=long if LONG_RUN else ci)


def whole_test_timeout(ci: int = 300) -> Any:
    """pytest-timeout's limit for a whole hypothesis test (all its examples): the project's
    300 s in CI; none in the long run, whose hundreds of examples take many minutes (each CLI
    run still has its own timeout). Without it the long run stopped after about 170 examples
    and hypothesis reported the timeout as a flaky failure of the example it interrupted."""
    return pytest.mark.timeout(0 if LONG_RUN else ci)


TEXT = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=30)
EPOCH = 1_764_000_000  # 2025-11-24
SECRET = "sk-fuzz"  # in Authorization headers: must never reach a rejects file or the output


@st.composite
def timestamps(draw: Any) -> Any:
    seconds = draw(st.integers(EPOCH - 90 * 86400, EPOCH + 90 * 86400))
    form = draw(st.sampled_from(["iso", "offset", "seconds", "ms", "float"]))
    if form == "iso":
        day, hour = draw(st.integers(1, 28)), draw(st.integers(0, 23))
        return f"2025-11-{day:02d}T{hour:02d}:00:00.{seconds % 10**6:06d}Z"
    if form == "offset":
        return f"2025-10-{draw(st.integers(1, 28)):02d} 12:30:00+0{draw(st.integers(0, 9))}:00"
    if form == "seconds":
        return seconds
    if form == "ms":
        return seconds * 1000 + draw(st.integers(0, 999))
    return seconds + draw(st.floats(0, 1, exclude_max=True))


@st.composite
def ner(draw: Any, text: str) -> dict:
    entities = []
    for _ in range(draw(st.integers(0, 2))):
        start = draw(st.integers(0, len(text) - 1))
        end = draw(st.integers(start + 1, len(text)))
        entities.append({"label": draw(st.sampled_from(["GPE", "PER", "ORG"])), "start": start, "end": end})
    return {"text": text, "entities": entities}


@st.composite
def valid_entries(draw: Any, index: int) -> dict:
    """One valid log entry; ``index`` makes it unique (request ids are distinct)."""
    kind = draw(st.sampled_from(["ner", "tc", "t2t"]))
    texts = draw(st.lists(TEXT, min_size=1, max_size=3))
    if kind == "ner":
        path, outputs = "/spacy/", [draw(ner(t)) for t in texts]
    elif kind == "tc":
        path, outputs = "/transformers/", []
        for _ in texts:
            p = draw(st.floats(0, 1))
            outputs.append({"labels": ["NEGATIVE", "POSITIVE"], "scores": [1 - p, p]})
    else:
        path, outputs = "/translate/", [{"translation_text": draw(TEXT)} for _ in texts]
    single = len(texts) == 1 and draw(st.booleans())
    extra = {}
    if draw(st.integers(0, 3)) == 0:  # a producer that logs credentials: never to be copied
        extra["headers"] = {"Authorization": f"Bearer {SECRET}-{index:06d}", "accept": "*/*"}
    return {
        **extra,
        "ts": draw(timestamps()),
        "method": "POST",
        "path": path,
        "status": draw(st.sampled_from([200, 200, 200, 201, 404, 500])),
        "latency_ms": draw(st.floats(0, 5000)),
        "request_id": f"req-{index}",
        "request": texts[0] if single else texts,
        "response": outputs,
    }


def dumps(obj: Any) -> bytes:
    try:
        return json.dumps(obj, ensure_ascii=draw_ascii(obj)).encode()
    except UnicodeEncodeError:  # a lone surrogate can only be written as an escape
        return json.dumps(obj).encode()


def draw_ascii(obj: Any) -> bool:
    # both spellings of non-ASCII text occur in real logs; pick one by content, reproducibly
    return len(str(obj)) % 2 == 0


VALID_WEIGHT = ["valid"] * 8


@st.composite
def property_lines(draw: Any, n_min: int = 40, n_max: int = 160) -> list[bytes]:
    """Distinct lines, mostly valid, with the line faults whose outcome is documented."""
    n = draw(st.integers(n_min, n_max))
    lines = []
    for i in range(n):
        entry = draw(valid_entries(i))
        kind = draw(st.sampled_from([*VALID_WEIGHT, "bad_json", "mismatch", "unknown", "nul", "blank", "ts"]))
        if kind == "bad_json":
            lines.append(dumps(entry)[: draw(st.integers(1, 40))] + f" #{i}".encode())
            continue
        if kind == "mismatch":
            entry["request"] = ["a", "b", f"{i}"]
        elif kind == "unknown":
            entry["response"] = {"detail": f"shape {i}"}
            entry["request"] = "x"
        elif kind == "ts":
            entry["ts"] = "0001-01-01T00:00:00+05:00"
        raw = dumps(entry)
        if kind == "nul":
            raw = b"\0" * draw(st.integers(1, 3000)) + raw
        elif kind == "blank":
            raw = b" " * (i + 1)  # distinct: a file's first line is its fingerprint
        lines.append(raw)
    return lines


_NULS = re.compile(rb"\0+")
BOM = b"\xef\xbb\xbf"


def expected_lines(data: bytes, final: bool) -> int:
    """How many lines the documented rules read from these (decompressed) bytes.

    Every newline-terminated line counts, blank ones included; an unterminated last line
    counts only when the source cannot grow; a leading BOM is not part of the first line;
    a run of NUL bytes ends a line and is not a line, so a line holding NULs counts as its
    non-blank pieces between them.
    """
    if data.startswith(BOM):
        data = data[len(BOM) :]
    parts = data.split(b"\n")
    tail = parts.pop()
    if final and tail.strip(b"\0 \t\r"):
        parts.append(tail)
    count = 0
    for part in parts:
        if b"\0" in part:
            count += sum(1 for piece in _NULS.split(part) if piece.strip())
        else:
            count += 1
    return count
