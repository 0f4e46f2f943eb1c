"""Body decoders, chained until a JSON value comes out.

Platforms log bodies as the JSON value itself (KServe's ``data``), as JSON *text* in a
string (SageMaker's ``"encoding": "JSON"``, structlog middlewares), base64 (SageMaker's
``BASE64``, KServe's ``data_base64``, Go's ``[]byte``), CSV text (SageMaker's ``text/csv``)
or JSON Lines (``application/jsonlines``). ``decode`` tries the configured decoders in
order; base64 is only tried when the platform says so or the config lists it, because
short words (``"abcd"``) are valid base64 too.
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import re
from typing import Any

import orjson

DECODERS = ("json", "base64", "jsonl", "csv")
DEFAULT_DECODERS = ("json", "jsonl")

_BASE64 = re.compile(r"^[A-Za-z0-9+/\s]*={0,2}\s*$")


class NotDecodable(ValueError):
    """A body no decoder could turn into a JSON value; the message is the skip reason."""


class CsvRows(list):  # type: ignore[type-arg]
    """Rows of a CSV body (lists of cell strings): rules read them by position."""


class Lines(list):  # type: ignore[type-arg]
    """The documents of a JSON Lines body, one per input or output of a batch."""


def check_decoders(names: list[str] | tuple[str, ...], where: str) -> tuple[str, ...]:
    """The decoder names, validated; raises ValueError naming the unknown one."""
    for name in names:
        if name not in DECODERS:
            raise ValueError(f"{where}: unknown decoder {name!r} (known: {', '.join(DECODERS)})")
    return tuple(names)


def _json_text(text: str) -> Any:
    stripped = text.strip()
    if stripped[:1] in ("{", "[", '"') or stripped in ("true", "false", "null"):
        try:
            return orjson.loads(stripped)
        except orjson.JSONDecodeError:
            return _NO
    return _NO


def _json_lines(text: str) -> Any:
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) < 2:
        return _NO
    try:
        return Lines(orjson.loads(line) for line in lines)
    except orjson.JSONDecodeError:
        return _NO


def _csv(text: str) -> Any:
    rows = [row for row in csv.reader(io.StringIO(text)) if row]
    return CsvRows(rows) if rows else _NO


def _base64(text: str) -> Any:
    if not _BASE64.match(text):
        return _NO
    try:
        raw = base64.b64decode("".join(text.split()), validate=True)
        return raw.decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return _NO


_NO = object()


def decode(
    value: Any,
    decoders: tuple[str, ...] = DEFAULT_DECODERS,
    encoding: str | None = None,
    content_type: str | None = None,
) -> Any:
    """The JSON value a logged body holds.

    ``encoding`` is the platform's own statement (SageMaker: ``JSON``, ``CSV``, ``BASE64``)
    and ``content_type`` the body's type when logged; both win over guessing. A string no
    decoder accepts is a JSON string body (a single text input), as in the access-log
    format; text that looks like JSON or SSE but does not parse raises NotDecodable.
    """
    if value is None:
        raise NotDecodable("non_json_body")
    if isinstance(value, bytes | bytearray):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            raise NotDecodable("non_json_body") from None
    if not isinstance(value, str):
        return value
    kind = (content_type or "").split(";")[0].strip().lower()
    enc = (encoding or "").upper()
    if enc == "BASE64":
        text = _base64(value)
        if text is _NO:
            raise NotDecodable("non_json_body")
        value = text
        enc = ""
    if enc == "CSV" or (not enc and kind in ("text/csv", "application/csv")):
        rows = _csv(value)
        if rows is _NO:
            raise NotDecodable("non_json_body")
        return rows
    if "jsonlines" in kind or "x-ndjson" in kind or "jsonl" in kind:
        lines = [line for line in value.splitlines() if line.strip()]
        try:
            return Lines(orjson.loads(line) for line in lines)
        except orjson.JSONDecodeError:
            raise NotDecodable("non_json_body") from None
    if enc == "JSON":
        found = _json_text(value)
        if found is _NO:
            found = _json_lines(value)
        if found is _NO:
            raise NotDecodable("non_json_body")
        return found
    if value.lstrip().startswith("data:"):
        raise NotDecodable("streamed_response")  # SSE text: tokens, not one JSON body
    for name in decoders:
        if name == "json":
            found = _json_text(value)
        elif name == "jsonl":
            found = _json_lines(value)
        elif name == "base64":
            text = _base64(value)
            if text is _NO:
                continue
            try:
                return decode(text, tuple(d for d in decoders if d != "base64"))
            except NotDecodable:
                continue
        else:
            found = _csv(value) if ("," in value or "\n" in value.strip()) else _NO
        if found is not _NO:
            return found
    if value.lstrip()[:1] in ("{", "["):
        raise NotDecodable("non_json_body")  # JSON text cut short (a truncated body) or broken
    return value
