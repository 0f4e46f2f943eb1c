"""Reading (ingest/sources/read.py): inputs to sources, sources to chunks of whole lines."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from ingest.errors import InputError
from ingest.sources import expand
from ingest.sources.read import LineChunks, Source


def _lines(n: int) -> bytes:
    return b"".join(b'{"n": %d}\n' % i for i in range(n))


def test_chunks_are_whole_lines_with_their_offsets_and_line_numbers(tmp_path: Path):
    path = tmp_path / "a.jsonl"
    path.write_bytes(_lines(100))
    reader = LineChunks(Source("a.jsonl", path), chunk_bytes=64)
    chunks = list(reader)
    assert len(chunks) > 5
    assert b"".join(c.data for c in chunks) == path.read_bytes()
    assert all(c.data.endswith(b"\n") for c in chunks)
    offset, line = 0, 1
    for chunk in chunks:
        assert (chunk.offset, chunk.first_line) == (offset, line)
        offset += len(chunk.data)
        line += chunk.data.count(b"\n")
    assert reader.end_offset == path.stat().st_size and reader.incomplete_tail == b""


def test_a_last_line_without_newline_is_left_for_the_next_run(tmp_path: Path):
    path = tmp_path / "a.jsonl"
    path.write_bytes(_lines(3) + b'{"n": 3')
    reader = LineChunks(Source("a.jsonl", path))
    assert b"".join(c.data for c in reader) == _lines(3)
    assert reader.incomplete_tail == b'{"n": 3'


def test_reading_resumes_at_an_offset_in_plain_and_gzip_files(tmp_path: Path):
    data = _lines(10)
    cut = data.index(b'{"n": 4}')
    (tmp_path / "a.jsonl").write_bytes(data)
    (tmp_path / "a.jsonl.1.gz").write_bytes(gzip.compress(data))
    for name in ("a.jsonl", "a.jsonl.1.gz"):
        (chunk,) = LineChunks(Source(name, tmp_path / name), start_offset=cut, start_line=5)
        assert (chunk.first_line, chunk.offset, chunk.data) == (5, cut, data[cut:])


def test_directories_take_log_names_only_and_inputs_are_deduplicated(tmp_path: Path):
    (tmp_path / "access.jsonl").write_bytes(b"")
    (tmp_path / "access.jsonl.2.gz").write_bytes(gzip.compress(b""))
    (tmp_path / "notes.txt").write_bytes(b"")
    (tmp_path / ".hidden.jsonl").write_bytes(b"")
    names = [s.name for s in expand([str(tmp_path), str(tmp_path / "access.jsonl"), "-"])]
    assert names == [str(tmp_path / "access.jsonl"), str(tmp_path / "access.jsonl.2.gz"), "<stdin>"]


@pytest.mark.parametrize(
    "given, message", [("missing.jsonl", "no such file"), ("nope/*.jsonl", "no file matches")]
)
def test_inputs_that_name_nothing_are_input_errors_exit_2(given, message):
    with pytest.raises(InputError, match=message) as caught:
        expand([given])
    assert caught.value.exit_code == 2
