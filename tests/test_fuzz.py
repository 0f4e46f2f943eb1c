"""Fuzz harness (hypothesis): valid lines, mutated lines and damaged files, through the real CLI.

The invariant, whatever the input: no traceback; exit 0, or 3 exactly when some file could
not be read (and then each such file is named with a reason); for every file read, lines
read = lines that gave records + lines skipped + lines rejected, each line counted once
(checked against an independent count of the file's lines), and the rejects file agrees.

CI runs a bounded number of examples; the long run is
``HYPOTHESIS_PROFILE=long pytest tests/test_fuzz.py`` (see the README's Development section).
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
from collections import defaultdict
from pathlib import Path
from typing import Any

import pandas as pd
from hypothesis import given
from hypothesis import strategies as st

from tests.logstrategies import (
    BOM,
    SECRET,
    dumps,
    examples,
    expected_lines,
    valid_entries,
    whole_test_timeout,
)

CHUNK_ENV = "RUBRIX_INGEST_CHUNK_BYTES"
EXIT_INPUT = 3
ODD_TEXT = ["\u202e", "\ufeff", "e\u0301", "\U0001f600", "\u2028", "\x85", "\x00", "\U0010ffff", "\ud800"]
WRONG = [None, True, [], {}, "", "x", -1, 1.5, 10**30, -(10**30), [[[]]], {"a": {"b": None}}]


@st.composite
def mutated_line(draw: Any, index: int) -> bytes:
    entry = draw(valid_entries(index))
    depth = 0
    kind = draw(
        st.sampled_from(
            ["none"] * 6
            + ["truncate", "flip", "wrong_type", "huge", "deep", "unicode", "nul", "utf8", "crlf", "blank"]
            + ["omitted", "extra", "string_body", "drop_field"]
        )
    )
    if kind == "wrong_type":
        entry[draw(st.sampled_from(list(entry)))] = draw(st.sampled_from(WRONG))
    elif kind == "huge":
        field = draw(st.sampled_from(["ts", "status", "latency_ms", "response"]))
        value = draw(st.sampled_from([10**18, -(10**18), 2**63, 1e308, -1e308, 10**100, 5e-324]))
        entry[field] = [{"labels": ["a", "b"], "scores": [value, value]}] if field == "response" else value
    elif kind == "deep":
        depth = draw(st.integers(10, 3000))
        entry[draw(st.sampled_from(["request", "response", "headers"]))] = "__DEEP__"
    elif kind == "unicode":
        odd = "".join(draw(st.lists(st.sampled_from(ODD_TEXT), min_size=1, max_size=4)))
        target = draw(st.sampled_from(["request", "path", "request_id", "ts"]))
        entry[target] = [odd] if target == "request" and isinstance(entry["request"], list) else odd
    elif kind == "omitted":
        entry[draw(st.sampled_from(["request_omitted", "response_omitted"]))] = draw(
            st.sampled_from(["too_large", "not_json", "empty", 5, None])
        )
    elif kind == "extra":
        entry[draw(st.sampled_from(["headers", "content_type", "url"]))] = draw(st.sampled_from(WRONG))
    elif kind == "string_body":
        entry["request"] = json.dumps(entry["request"])[: draw(st.integers(0, 50))]
    elif kind == "drop_field":
        del entry[draw(st.sampled_from(["ts", "path", "status", "request", "response"]))]
    raw = dumps(entry)
    if kind == "deep":  # written as bytes: json.dumps would recurse as deep
        raw = raw.replace(b'"__DEEP__"', b"[" * depth + b"{}" + b"]" * depth)
    if kind == "truncate":
        raw = raw[: draw(st.integers(0, len(raw)))]
    elif kind == "flip":
        data = bytearray(raw)
        for _ in range(draw(st.integers(1, 4))):
            data[draw(st.integers(0, len(data) - 1))] ^= 1 << draw(st.integers(0, 7))
        raw = bytes(data).replace(b"\n", b" ")  # one line stays one line
    elif kind == "nul":
        at = draw(st.integers(0, len(raw)))
        raw = raw[:at] + b"\0" * draw(st.integers(1, 100)) + raw[at:]
    elif kind == "utf8":
        at = draw(st.integers(0, len(raw)))
        raw = (
            raw[:at]
            + draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf4\x90\x80\x80"]))
            + raw[at:]
        )
    elif kind == "crlf":
        raw += b"\r"
    elif kind == "blank":
        raw = draw(st.sampled_from([b"", b" ", b"\t", b"\r"]))
    return raw


FILE_KINDS = ["plain"] * 4 + ["gzip", "gzip_damaged", "unterminated", "old_unterminated", "bom", "binary"]
EXTRA_KINDS = ["symlink", "dangling", "unreadable", "removed", "odd_name"]


@st.composite
def fuzz_case(draw: Any) -> dict:
    files = []
    index = 0
    for n in range(draw(st.integers(1, 4))):
        lines = []
        for _ in range(draw(st.integers(1, 25))):
            lines.append(draw(mutated_line(index)))
            index += 1
        kind = draw(st.sampled_from(FILE_KINDS))
        damage = (
            draw(st.sampled_from(["cut", "garbage", "flip", "zeros", "crc"]))
            if kind == "gzip_damaged"
            else None
        )
        files.append({"name": f"f{n}.jsonl" + (".1.gz" if kind.startswith("gzip") else ""), "kind": kind,
                      "lines": lines, "damage": damage, "seed": draw(st.integers(0, 2**16))})  # fmt: skip
    extras = draw(st.lists(st.sampled_from(EXTRA_KINDS), max_size=2, unique=True))
    return {
        "files": files,
        "extras": extras,
        "config": draw(st.booleans()),
        "jobs": draw(st.sampled_from(["1", "2"])),
        "chunk": draw(st.sampled_from(["4096", str(1 << 20)])),
        "again": draw(st.booleans()),
    }


def write_files(case: dict, logs: Path) -> dict[str, dict]:
    """Write the case's files; returns, per file name, what the harness expects of it."""
    expect: dict[str, dict] = {}
    for spec in case["files"]:
        path = logs / spec["name"]
        text = b"".join(line + b"\n" for line in spec["lines"])
        kind, final = spec["kind"], False
        if kind in ("unterminated", "old_unterminated"):
            text = text[:-1]
        if kind == "bom":
            text = BOM + text
        if kind == "binary":
            import random

            text = random.Random(spec["seed"]).randbytes(3000)
        data = text
        if kind.startswith("gzip"):
            data = gzip.compress(text, mtime=0)
            final = True
            damage = spec["damage"]
            if damage == "cut":
                data = data[: max(10, len(data) // 2)]
            elif damage == "garbage":
                data += b"trailing garbage"
            elif damage == "zeros":
                data += b"\0" * 64
            elif damage == "crc":
                data = data[:-8] + (zlib.crc32(text) ^ 1).to_bytes(4, "little") + data[-4:]
            elif damage == "flip":
                cut = bytearray(data)
                cut[10 + spec["seed"] % max(1, len(data) - 18)] ^= 0x10
                data = bytes(cut)
        path.write_bytes(data)
        if kind == "old_unterminated":
            os.utime(path, (time.time() - 7200, time.time() - 7200))
            final = True
        expect[str(path)] = {"text": text, "final": final, "kind": kind, "damage": spec.get("damage")}
    return expect


def unprivileged_prefix() -> list[str]:
    if os.geteuid() == 0 and shutil.which("setpriv"):
        return ["setpriv", "--bounding-set", "-dac_override,-dac_read_search"]
    return []


def run(cwd: Path, args: list[str], env: dict[str, str], stdin: bytes | None, remove: Path | None):
    command = [*unprivileged_prefix(), sys.executable, "-m", "ingest", *args]
    proc = subprocess.Popen(command, cwd=cwd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)  # fmt: skip
    if remove is not None:
        # the run has listed its inputs once it holds the lock; it then waits for stdin
        lock = cwd / "rubrix-store" / "_state.sqlite.lock"
        deadline = time.monotonic() + 60
        while not lock.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.01)
        remove.unlink()
    out, err = proc.communicate(stdin, timeout=240)
    return proc.returncode, out, err


def check_run(code: int, out: bytes, err: bytes, expect: dict[str, dict], must_fail: set[str]) -> dict:
    assert b"Traceback" not in err, err.decode(errors="replace")
    assert SECRET.encode() not in out + err
    assert code in (0, EXIT_INPUT), (code, err.decode(errors="replace"))
    summary = json.loads(out)
    failed = summary["files_failed"]
    assert (code == EXIT_INPUT) == bool(failed), (code, failed)
    assert must_fail <= set(failed), (must_fail, failed)
    for name, reason in failed.items():
        spec = expect.get(name, {})
        assert reason, name
        # a file fails only for what was done to it: never for the lines it holds
        assert name in must_fail or spec.get("damage") or spec.get("kind") == "binary", (name, reason)
    by_file = summary["by_file"]
    for name, counts in by_file.items():
        assert counts["lines"] == counts["gave_records"] + counts["skipped"] + counts["rejected"], (
            name,
            counts,
        )
    assert summary["lines_read"] == sum(c["lines"] for c in by_file.values())
    return summary


def check_lines(summary: dict, expect: dict[str, dict], rejects: list[dict]) -> None:
    """Each line of a file read whole counted once: the count the documented rules give."""
    line_rejects: dict[str, set] = defaultdict(set)
    any_rejects: dict[str, set] = defaultdict(set)
    for r in rejects:
        any_rejects[r["file"]].add((r["line"], r["offset"]))
        if r["record"] is None:
            line_rejects[r["file"]].add((r["line"], r["offset"]))
    for name, counts in summary["by_file"].items():
        assert len(line_rejects[name]) <= counts["rejected"] <= len(any_rejects[name]), (name, counts)
    for name, spec in expect.items():
        if name in summary["files_failed"] or name in summary["files_not_read"]:
            continue
        if spec["kind"] == "gzip_damaged":  # read as far as it goes: no exact count
            continue
        got = summary["by_file"].get(name, {"lines": 0})["lines"]
        assert got == expected_lines(spec["text"], spec["final"]), (name, got)


def read_rejects(store: Path) -> list[dict]:
    found = []
    for path in sorted((store / "_rejects").glob("*.jsonl")):
        found.extend(json.loads(line) for line in path.read_bytes().split(b"\n")[:-1])
    return found


@examples(ci=25, long=400)
@whole_test_timeout()
@given(case=fuzz_case())
def test_fuzz_no_traceback_documented_exit_every_line_counted_once(case: dict):
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        os.chmod(cwd, 0o755)
        logs = cwd / "logs"
        logs.mkdir()
        expect = write_files(case, logs)
        must_fail: set[str] = set()
        remove = None
        stdin = None
        args = [str(logs), "--json", "-j", case["jobs"]]
        for extra in case["extras"]:
            if extra == "symlink":  # another name for a file already given: read once
                (logs / "link.jsonl").symlink_to(sorted(expect)[0])
            elif extra == "dangling":
                (logs / "dangling.jsonl").symlink_to(logs / "nowhere.jsonl")
                must_fail.add(str(logs / "dangling.jsonl"))
            elif extra == "unreadable" and (unprivileged_prefix() or os.geteuid() != 0):
                locked = logs / "locked.jsonl"
                locked.write_bytes(b'{"ts": 1}\n')
                locked.chmod(0)
                must_fail.add(str(locked))
            elif extra == "odd_name":  # not UTF-8, and a newline: shown escaped, read as any other
                odd = os.fsencode(logs) + b"/odd\xff\nname.jsonl"
                good = {"ts": 1, "path": "/odd/", "status": 200, "request": "a", "response": "b"}
                with open(odd, "wb") as fh:
                    fh.write(dumps(good) + b"\n")
            elif extra == "removed":
                remove = logs / "removed.jsonl"
                remove.write_bytes(dumps({"ts": 1, "path": "/x/"}) + b"\n")
                must_fail.add(str(remove))
                args = ["-", *args]
                stdin = dumps({"ts": 1, "path": "/stdin/", "status": 200, "request": "a", "response": "b"})
        if case["config"]:  # routes that copy fields (deep, odd, secret) into metadata
            (cwd / "ingest.toml").write_text(
                '[endpoints."/spacy/"]\nmetadata = ["headers", "method", "url"]\n'
                '[endpoints."/transformers/"]\nmapper = "text_classification"\n'
                'metadata = ["request_omitted"]\n'
                '[endpoints."/translate/"]\n'
            )
            args += ["--config", "ingest.toml"]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RUBRIX_", "ARGILLA_"))}
        env[CHUNK_ENV] = case["chunk"]
        code, out, err = run(cwd, args, env, stdin, remove)
        summary = check_run(code, out, err, expect, must_fail)
        rejects = read_rejects(cwd / "rubrix-store")
        for reject in rejects:
            # a credential never reaches the rejects, however its line is damaged: the masks by
            # key and by shape (ingest/accesslog/redact.py) each survive damage to the other
            assert SECRET not in reject["raw"] and SECRET not in reject["reason"], reject
        for dataset in (cwd / "rubrix-store").glob("*/_dataset.json"):  # nor the store
            assert SECRET not in "".join(pd.read_parquet(dataset.parent, columns=["record"])["record"])
        check_lines(summary, expect, rejects)
        if case["again"]:  # from the checkpoints: what is left, with the same guarantees
            again = [str(logs), "--json", "-j", case["jobs"]]
            again += ["--config", "ingest.toml"] if case["config"] else []
            code, out, err = run(cwd, again, env, None, None)
            check_run(code, out, err, expect, must_fail - {str(remove)})
