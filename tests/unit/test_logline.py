"""Line parsing (ingest/transform/logline.py): one line in, a LogEntry or a reject reason out."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ingest.transform.logline import BadLine, NotJson, decode_body, parse_line, parse_ts


def test_a_minimal_line_parses_with_every_field_kept():
    entry = parse_line(b'{"ts": "2026-11-24T12:00:16Z", "path": "/spacy/", "status": 200, '
                       b'"request": ["x"], "response": [], "method": "POST"}')  # fmt: skip
    assert entry.ts == datetime(2026, 11, 24, 12, 0, 16, tzinfo=UTC)
    assert (entry.path, entry.status, entry.request, entry.response) == ("/spacy/", 200, ["x"], [])
    assert entry.fields["method"] == "POST"


@pytest.mark.parametrize(
    "value, expected",
    [
        ("2026-11-24T12:00:00", datetime(2026, 11, 24, 12, tzinfo=UTC)),  # naive means UTC
        ("2026-11-24T13:00:00+01:00", datetime(2026, 11, 24, 12, tzinfo=UTC)),
        (1_795_521_600, datetime(2026, 11, 24, 12, tzinfo=UTC)),  # epoch seconds
        (1_795_521_600_000, datetime(2026, 11, 24, 12, tzinfo=UTC)),  # epoch milliseconds
        ("1795521600", datetime(2026, 11, 24, 12, tzinfo=UTC)),
    ],
)
def test_timestamps(value, expected):
    assert parse_ts(value) == expected


@pytest.mark.parametrize(
    "raw, reason",
    [
        (b'{"ts": "2026-11-24T12:00:00Z", "path": "/a/"', "invalid JSON"),
        (b"\xff\xfe", "invalid UTF-8"),
        (b"[1, 2]", "line is a JSON list"),
        (b'{"ts": "2026-11-24T12:00:00Z", "path": "/a/", "status": 200}', "missing field 'request'"),
        (b'{"ts": "x", "path": "/a/", "status": 200, "request": 1, "response": 1}', "neither ISO-8601"),
        (b'{"ts": 1, "path": 5, "status": 200, "request": 1, "response": 1}', "path has type int"),
        (b'{"ts": 1, "path": "/a/", "status": true, "request": 1, "response": 1}', "status has type bool"),
        (b'{"ts": true, "path": "/a/", "status": 200, "request": 1, "response": 1}', "ts has type bool"),
    ],
)
def test_bad_lines_say_why(raw, reason):
    with pytest.raises(BadLine, match=reason):
        parse_line(raw)


def test_bodies_logged_as_json_text_are_decoded_and_plain_strings_are_kept():
    assert decode_body('{"a": 1}') == {"a": 1}
    assert decode_body("  [1]") == [1]
    assert decode_body("just text") == "just text"
    with pytest.raises(NotJson):
        decode_body("{not json")
    with pytest.raises(NotJson):
        decode_body(None)
