"""Faults the fuzz harness (tests/test_fuzz.py) found, each replayed deterministically: real
files, the real CLI in a subprocess, the store and the rejects file read back as written."""

from __future__ import annotations

import codecs
import gzip
import json
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import Ingest, entry

SECRET = "sk-fuzz"
HEADERS_CONFIG = '[endpoints."/spacy/"]\nmetadata = ["headers", "url"]\n'


def _header_line(n: int, **fields: object) -> bytes:
    """A valid line whose producer logged its Authorization header (secret numbered ``n``)."""
    line = entry(
        request=[f"text {n}"],
        response=[{"text": f"text {n}", "entities": []}],
        headers={"Authorization": f"Bearer {SECRET}-{n:06d}", "accept": "*/*"},
        request_id=f"req-{n}",
        **fields,
    )
    return json.dumps(line).encode()


def _damaged(n: int, old: bytes, new: bytes, cut: int | None = None) -> bytes:
    line = _header_line(n)
    assert old in line, (old, line)
    line = line.replace(old, new, 1)
    return line if cut is None else line[:cut]


def _unescaped(text: str) -> str:
    # a reader of the rejects file who decodes JSON escapes in the raw text sees this
    return codecs.decode(text.encode("utf-8", "backslashreplace"), "unicode_escape", "replace")


def test_damaged_authorization_headers_never_reach_rejects_store_or_output(tmp_path: Path, ingest: Ingest):
    """Fault 1: a damaged Authorization header in a rotated .gz reached the rejects file.

    The key rule used to mask only the first word of a value whose opening quote was damaged,
    and then the scheme rule no longer saw "Bearer" in front of the token; a line still valid
    JSON with a damaged key copied the header into the record's metadata; a reason quoted a
    credential it was given as a timestamp. Each shape below leaked before the fix.
    """
    lines = [
        _damaged(1, b'": "Bearer', b'":  Bearer'),  # the opening quote flipped to a space
        _damaged(2, b'": "Bearer', b'": #Bearer'),  # ... to another character
        _damaged(3, b"Bearer sk", b'Bearer"sk'),  # the space after the scheme flipped to a quote
        _damaged(4, b'"Authorization": "', b'"Authorization":!"'),  # the colon's space flipped
        _damaged(5, b"Authorization", b"Authori\\u007aation", cut=150),  # an escape in the key, cut
        _damaged(6, b"Authorization", b"Autho\xffrization", cut=60),  # invalid UTF-8, value cut short
        _damaged(7, b"Authorization", b"Authorizatimn"),  # valid JSON, damaged key: a record
        _damaged(8, b"Authorization", b"Authorizatimn").replace(b"Bearer", b"Bearfr"),  # key and scheme
        _damaged(9, b"Bearer sk", b"Bearer \\u0073k"),  # an escape inside the token
        _damaged(10, b"-000010", b"\x00" * 8 + b"-000010"),  # NULs split the value: two lines
        _damaged(11, b'"/spacy/"', b'"/spacy/", "url": "https://u:pw@h/p?api_key=k123&x=1"'),
        json.dumps(entry(ts=f"Bearer {SECRET}-000012")).encode(),  # a reason quotes the value
        _header_line(13),
    ]
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "f1.jsonl.1.gz").write_bytes(gzip.compress(b"".join(x + b"\n" for x in lines), mtime=0))
    (tmp_path / "ingest.toml").write_text(HEADERS_CONFIG)
    proc = ingest(str(logs), "--json", "--config", "ingest.toml", "-j", "1")
    assert SECRET.encode() not in proc.stdout + proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["records_written"] >= 3  # lines 7, 8, 11, 13 (and 9, decoded) are records
    rejects = ingest.rejects()
    assert len(rejects) >= 8
    for reject in rejects:
        for field in ("raw", "reason"):
            assert SECRET not in reject[field] and SECRET not in _unescaped(reject[field]), reject
    assert b"k123" not in b"".join(p.read_bytes() for p in (ingest.store / "_rejects").iterdir())
    stored = pd.read_parquet(ingest.store / "monitoring_spacy")
    for record in stored["record"]:
        assert SECRET not in record and SECRET not in _unescaped(record), record
        assert "pw@" not in record and "k123" not in record, record
    # and what is left stays useful for debugging: the damaged key, the other header
    joined = " ".join(r["raw"] for r in rejects)
    assert "Authorization" in joined and '"accept": "*/*"' in joined
    metadata = [json.loads(r)["metadata"] for r in stored["record"]]
    assert {"Authorizatimn": "[redacted]", "accept": "*/*"} in [m.get("headers") for m in metadata]


def _ner(text: str) -> dict:
    return {"text": text, "entities": [{"label": "GPE", "start": 0, "end": len(text.split()[0])}]}


def _tc() -> dict:
    return {"labels": ["NEGATIVE", "POSITIVE"], "scores": [0.2, 0.8]}


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_records_refused_by_a_dataset_decision_count_their_line_once(
    tmp_path: Path, ingest: Ingest, jobs: str
):
    """Fault 2: a damaged .gz counted fewer rejected lines than the rejects file held.

    Not the gzip: records refused after the transform, by a dataset-level decision (an empty
    output whose task nothing tells, a record of another task than its dataset's), were filed
    as rejects of their whole line while ``by_file`` kept the line among those that gave
    records, and a line of two such records counted two rejected lines (the table's
    ``mapped`` went below zero). They are rejects of their records now (pair index, line
    offset), and a line whose every record was refused counts once, as rejected.
    """
    lines = [
        entry("/ner/", request=["Paris"], response=[_ner("Paris")]),  # decides /ner/: NER
        entry("/ner/", request=["good"], response=[_tc()]),  # another task: refused
        entry("/ner/", request=["Rome", "fine"], response=[_ner("Rome"), _tc()]),  # one of two refused
        entry("/empty/", request="x", response=[]),  # nothing tells the task of /empty/
        entry("/empty/", request=["a", "b"], response=[[], []]),  # two records, both refused
        entry("/ner/", status=500),  # skipped: an error status
        "not json",
        *[entry("/ner/", request=[f"Oslo {i}"], response=[_ner(f"Oslo {i}")]) for i in range(13)],
    ]
    assert len(lines) == 20
    logs = tmp_path / "logs"
    logs.mkdir()
    text = "".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines)
    (logs / "f2.jsonl.1.gz").write_bytes(gzip.compress(text.encode(), mtime=0))
    summary = ingest.json(str(logs), "-j", jobs)
    (counts,) = summary["by_file"].values()
    assert counts["lines"] == 20
    assert counts["lines"] == counts["gave_records"] + counts["skipped"] + counts["rejected"]
    # refused whole: lines 2, 4 and 5; invalid JSON: line 7; line 3 keeps its NER record
    assert counts["rejected"] == 4, counts
    assert (counts["gave_records"], counts["skipped"]) == (15, 1), counts
    rejects = ingest.rejects()
    dataset = [r for r in rejects if r["stage"] == "dataset"]
    assert sorted((r["line"], r["record"]) for r in dataset) == [(2, 0), (3, 1), (4, 0), (5, 0), (5, 1)]
    assert all(isinstance(r["offset"], int) for r in dataset)
    # the invariant of tests/test_fuzz.py: whole-line rejects <= rejected lines <= lines with a reject
    whole = {(r["line"], r["offset"]) for r in rejects if r["record"] is None}
    anyr = {(r["line"], r["offset"]) for r in rejects}
    assert len(whole) <= counts["rejected"] <= len(anyr)
    # and the per-endpoint table still adds up: no negative "mapped", every record accounted
    for name, endpoint in summary["endpoints"].items():
        assert endpoint["lines_mapped"] >= 0, (name, endpoint)
        accounted = (
            endpoint["records_written"]
            + endpoint["records_already_stored"]
            + sum(endpoint["records_skipped"].values())
            + sum(endpoint["records_rejected"].values())
        )
        assert endpoint["records_mapped"] == accounted, (name, endpoint)
    # read again, the datasets' tasks now come from the store: the same lines are refused
    again = ingest.json("--from-start", str(logs), "-j", jobs)
    assert again["by_file"] == summary["by_file"]


def test_a_rejected_line_with_an_escaped_slash_is_a_reject_not_a_failed_run(tmp_path: Path, ingest: Ingest):
    """JSON's ``\\/`` in a line that is rejected (its raw text is redacted) made the redaction
    raise IndexError: the transform failed and the run exited 1 with nothing written (found by
    the long fuzz run of 2026-11-29)."""
    good = json.dumps(entry()).encode()
    rejected = json.dumps(entry(request=["a", "b"])).replace("/spacy/", "\\/spacy\\/").encode()
    (tmp_path / "a.jsonl").write_bytes(good + b"\n" + rejected + b"\n")
    summary = ingest.json(str(tmp_path / "a.jsonl"))
    assert summary["exit_code"] == 0 and summary["records_written"] == 1 and summary["rejected"] == 1
    (reject,) = ingest.rejects()
    assert reject["line"] == 2 and "batch size" in reject["reason"] and "\\/spacy\\/" in reject["raw"]
