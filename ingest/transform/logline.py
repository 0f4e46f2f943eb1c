"""The access-log line format: the contract between endpoints and this tool.

One JSON object per line. Required: ``ts``, ``path``, ``status``, ``request``,
``response``. Optional: ``request_id``, ``method``, ``url``, ``latency_ms``,
``content_type``; anything else is ignored unless configured as metadata. See
docs/log-format.md for the full description.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from ingest.accesslog.fields import (  # the format's names, shared with the writer
    CONTENT_TYPE,
    PATH,
    REQUEST,
    REQUEST_OMITTED,
    REQUIRED,
    RESPONSE,
    RESPONSE_OMITTED,
    STATUS,
    TOO_LARGE,
    TS,
)
from ingest.accesslog.redact import redact_endpoint

# Epoch values at or above this are milliseconds: 1e11 seconds is the year 5138.
_EPOCH_MS_THRESHOLD = 1e11


class BadLine(ValueError):
    """A line that cannot be read as a log entry; the message is the reject reason."""


class NotJson(Exception):
    """A request or response body that is not JSON: skipped, as Rubrix's middleware does."""


@dataclass(slots=True)
class LogEntry:
    ts: datetime  # aware, UTC
    path: str
    status: int
    request: Any  # raw as logged: a JSON value or a string holding JSON
    response: Any
    fields: dict[str, Any]  # the whole line, for optional fields and metadata


def parse_ts(value: Any) -> datetime:
    """ISO-8601 (naive means UTC) or epoch seconds / milliseconds, as an aware UTC time."""
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            try:
                value = float(value)
            except ValueError:
                raise BadLine(f"ts is neither ISO-8601 nor epoch time: {value[:40]!r}") from None
        else:
            if parsed.tzinfo is None:
                return parsed.replace(tzinfo=UTC)
            try:  # year 1 or 9999 with an offset can fall outside datetime's range in UTC
                return parsed.astimezone(UTC)
            except OverflowError:
                raise BadLine(f"ts is out of range in UTC: {value[:40]!r}") from None
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            seconds = value / 1000 if abs(value) >= _EPOCH_MS_THRESHOLD else value
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):
            raise BadLine(f"ts {str(value)[:40]} is out of range") from None
    raise BadLine(f"ts has type {type(value).__name__}, expected a string or a number")


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_line(raw: bytes) -> LogEntry:
    """The line as a log entry; raises BadLine, whose message is the reject reason."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise BadLine("invalid UTF-8") from None
        if "surrogate" not in str(exc):
            raise BadLine(f"invalid JSON: {exc}") from None
        # A lone surrogate escape ("\ud800") is valid JSON text that no UTF-8 string can hold.
        # orjson refuses the whole line; the standard parser keeps it, so that only the
        # records whose texts hold one are rejected (when they are serialized).
        try:
            obj = json.loads(text, parse_constant=_no_constant)
        except (ValueError, RecursionError):
            raise BadLine(f"invalid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise BadLine(f"line is a JSON {type(obj).__name__}, expected an object")
    missing = [f for f in REQUIRED if f not in obj]
    if missing:
        raise BadLine("missing field " + ", ".join(repr(f) for f in missing))
    path, status = obj[PATH], obj[STATUS]
    if not isinstance(path, str):
        raise BadLine(f"path has type {type(path).__name__}, expected a string")
    if not isinstance(status, int) or isinstance(status, bool):
        raise BadLine(f"status has type {type(status).__name__}, expected an integer")
    if not 100 <= status <= 999:
        raise BadLine(f"status {str(status)[:20]} is not an HTTP status code")
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        raise BadLine("path holds a lone surrogate: not valid Unicode") from None
    path = redact_endpoint(path)  # a query string can hold a credential, and the path is copied far
    return LogEntry(parse_ts(obj[TS]), path, status, obj[REQUEST], obj[RESPONSE], obj)


def decode_body(body: Any) -> Any:
    """A body as the JSON value it holds.

    Producers log either the JSON value itself or, when they log raw bodies, its JSON text.
    A string that starts like an object or an array is that text and must parse; any other
    string is a JSON string body (a single text input). ``null`` means no body was logged.
    """
    if body is None:
        raise NotJson
    if isinstance(body, str) and body.lstrip()[:1] in ("{", "["):
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            raise NotJson from None
    return body


def is_json_content_type(entry: LogEntry) -> bool:
    content_type = entry.fields.get(CONTENT_TYPE)
    return content_type is None or (isinstance(content_type, str) and "json" in content_type)


def body_omitted(entry: LogEntry) -> str | None:
    """The skip reason for a line whose producer did not capture a body, if it did not.

    The middleware writes ``request_omitted``/``response_omitted`` as ``too_large``,
    ``not_json``, ``empty`` or ``incomplete`` instead of the body.
    """
    fields = entry.fields
    reasons = (fields.get(REQUEST_OMITTED), fields.get(RESPONSE_OMITTED))
    if reasons == (None, None):
        return None
    return "body_too_large" if TOO_LARGE in reasons else "non_json_body"
