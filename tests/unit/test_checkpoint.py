"""Checkpoint planning (ingest/sources/checkpoint.py): where each file is read from."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from ingest.errors import LockHeld
from ingest.sources.checkpoint import RunLock, State, fingerprint
from ingest.sources.read import Source

FIRST = b'{"line": 1}\n'
REST = b'{"line": 2}\n{"line": 3}\n'


def _source(path: Path) -> Source:
    return Source(path.name, path)


def _plan(state: State, *paths: Path, from_start: bool = False):
    return [(p.offset, p.line, p.skip) for p in state.plan([_source(x) for x in paths], from_start)]


def test_a_new_file_is_read_from_its_start_and_a_read_one_is_skipped(tmp_path: Path):
    log = tmp_path / "access.jsonl"
    log.write_bytes(FIRST + REST)
    state = State(tmp_path / "state.sqlite")
    assert _plan(state, log) == [(0, 1, None)]
    state.save({fingerprint(_source(log)): (len(FIRST + REST), 4, "access.jsonl")})
    assert _plan(state, log) == [(len(FIRST + REST), 4, "already read")]
    assert _plan(state, log, from_start=True) == [(0, 1, None)]


def test_appended_lines_are_read_from_the_checkpoint_even_after_rotation_and_compression(tmp_path: Path):
    log = tmp_path / "access.jsonl"
    log.write_bytes(FIRST)
    state = State(tmp_path / "state.sqlite")
    state.save({fingerprint(_source(log)): (len(FIRST), 2, "access.jsonl")})
    rotated = tmp_path / "access.jsonl.1.gz"
    rotated.write_bytes(gzip.compress(FIRST + REST))  # appended to, then rotated and compressed
    log.unlink()
    assert _plan(state, rotated) == [(len(FIRST), 2, None)]


def test_a_copy_of_an_input_is_read_once_and_a_file_without_a_whole_line_waits(tmp_path: Path):
    (tmp_path / "a.jsonl").write_bytes(FIRST + REST)
    (tmp_path / "b.jsonl").write_bytes(FIRST + REST)
    (tmp_path / "c.jsonl").write_bytes(b'{"still being written')
    state = State(tmp_path / "state.sqlite")
    plans = _plan(state, tmp_path / "a.jsonl", tmp_path / "b.jsonl", tmp_path / "c.jsonl")
    assert plans == [(0, 1, None), (0, 1, "same content as another input"), (0, 1, "no complete line yet")]


def test_a_file_shorter_than_its_checkpoint_was_rewritten_and_starts_over(tmp_path: Path):
    log = tmp_path / "access.jsonl"
    log.write_bytes(FIRST + REST)
    state = State(tmp_path / "state.sqlite")
    state.save({fingerprint(_source(log)): (len(FIRST + REST), 4, "access.jsonl")})
    log.write_bytes(FIRST)
    assert _plan(state, log) == [(0, 1, None)]


def test_a_second_lock_holder_gets_lock_held_exit_75(tmp_path: Path):
    with (
        RunLock(tmp_path / "state.sqlite", wait=False),
        pytest.raises(LockHeld, match="another run holds the lock") as caught,
    ):
        RunLock(tmp_path / "state.sqlite", wait=False).__enter__()
    assert caught.value.exit_code == 75


def test_waiting_halves_are_kept_per_scope_and_an_unscoped_table_is_adopted(tmp_path: Path):
    import sqlite3

    path = tmp_path / "state.sqlite"
    with sqlite3.connect(path) as db:  # a state file from before waiting halves had scopes
        db.execute(
            "CREATE TABLE pending_halves (profile TEXT NOT NULL, key TEXT NOT NULL, side TEXT NOT NULL,"
            " ts REAL, source TEXT, line INTEGER, raw BLOB NOT NULL, PRIMARY KEY (profile, key, side))"
        )
        db.execute(
            "INSERT INTO pending_halves VALUES ('kserve', 'k1', 'request', 1.0, 'e.jsonl', 1, x'7b7d')"
        )
    db.close()
    first = State(path, "local store /a\n*")
    assert first.pending() == [("kserve", "k1", "request", 1.0, "e.jsonl", 1, b"{}")]
    other = State(path, "local store /b\n*")
    assert other.pending() == []
    other.save({}, (["kserve"], [("kserve", "k2", "response", 2.0, "e.jsonl", 2, b"{}")]))
    assert [row[1] for row in first.pending()] == ["k1"]  # the other scope's save left it alone
    assert [row[1] for row in other.pending()] == ["k2"]
