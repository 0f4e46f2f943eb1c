"""Profiles: a field map plus what a map cannot say, turning one log line into items.

A profile's ``parse`` turns one line into items the transform stage handles:

- ``Entry``: a request with its response, bodies decoded and paired, ready to map;
- ``Skip``: a line counted under a reason (``input_only``, ``response_without_request``,
  ``blob_unreadable``, ``non_json_body``, ``error_status``, ...);
- ``Half``: one side of a pair logged as two events (KServe CloudEvents, Azure ML
  collections, an app's start and finish lines), joined later by ``Joiner``.

A line that cannot be read raises ``BadLine`` (the reject reason). Everything here is
picklable: profiles travel to worker processes inside the transform spec.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any

import orjson

from ingest.accesslog.redact import redact_endpoint
from ingest.sources.formats.decode import DEFAULT_DECODERS, NotDecodable, decode
from ingest.sources.formats.fieldmap import MISSING, FieldMap
from ingest.sources.formats.fieldmap import get as get_path
from ingest.sources.formats.rules import PairError, as_number, open_request, open_response, pair
from ingest.sources.formats.times import TimeError, parse_time
from ingest.transform.logline import BadLine
from mappers.pairs import status_skip_reason


@dataclass(slots=True)
class Entry:
    """A request and its response, paired: one record per pair."""

    ts: datetime
    endpoint: str
    status: int
    pairs: list[tuple[Any, Any]]
    fields: dict[str, Any]  # request_id, latency_ms, url, and the line's fields for metadata
    digest_bytes: bytes  # what the record ids hash: the line, or both lines of a joined pair
    dataset_suffix: str | None = None  # one line, several tasks: each to its own dataset
    mapper: str | None = None


@dataclass(slots=True)
class Skip:
    reason: str
    endpoint: str
    ts: datetime | None = None
    status: int | None = None


@dataclass(slots=True)
class Bad:
    """A line (or joined pair) of a known endpoint that cannot become records: rejected."""

    reason: str
    endpoint: str
    ts: datetime | None = None
    status: int | None = None


@dataclass(slots=True)
class Half:
    """One side of a pair logged as two events; ``key`` joins it with the other side."""

    key: str
    side: str  # "request" or "response"
    ts: datetime
    endpoint: str
    status: int
    body: Any  # as logged (decoded at the join)
    fields: dict[str, Any]
    raw: bytes = b""


Item = Entry | Skip | Bad | Half

SIDES = ("request", "response")


def load_object(raw: bytes) -> dict[str, Any]:
    """The line's JSON object; raises BadLine as the access-log reader does."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            raise BadLine("invalid UTF-8") from None
        raise BadLine(f"invalid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise BadLine(f"line is a JSON {type(obj).__name__}, expected an object")
    return obj


def as_status(value: Any, where: str) -> int:
    """An HTTP status written as a number or a string (``"200"``); raises BadLine."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    raise BadLine(f"status ({where}) is not an integer: {value!r}")


@dataclass
class Profile:
    """A named way of reading a log: a field map and options (see README, "Other log formats")."""

    name: str
    fields: FieldMap = field(default_factory=lambda: FieldMap({}))
    description: str = ""
    decoders: tuple[str, ...] = DEFAULT_DECODERS
    time_zone: tzinfo = UTC  # for times written without an offset
    time_unit: str | None = None  # epoch unit; None: told apart by magnitude
    endpoint: str | None = None  # when the line does not say (and the path does not either)
    endpoint_from_path: re.Pattern[str] | None = None  # a regex with a group named endpoint
    labels: tuple[str, ...] = ()  # class index -> name
    # start/finish logged as two lines: the field telling them apart, and its two values
    event_field: tuple[str | int, ...] | None = None  # a compiled field path
    request_event: str | None = None
    response_event: str | None = None
    join_window: float = 300.0  # seconds of event time an unjoined half waits for its pair
    native: bool = False  # this project's access-log format: the original fast path
    _path_info: dict[str, dict[str, str]] = field(default_factory=dict, repr=False, compare=False)

    @property
    def joins(self) -> bool:
        return self.event_field is not None

    def sniff(self, obj: dict[str, Any]) -> bool:
        """True when a line looks written in this format (used to detect the format)."""
        return False

    def path_info(self, source: str) -> dict[str, str]:
        """Named groups of ``endpoint_from_path`` in the source's name (cached per source)."""
        found = self._path_info.get(source)
        if found is None:
            found = {}
            if self.endpoint_from_path is not None:
                match = self.endpoint_from_path.search(source)
                if match:
                    found = {k: v for k, v in match.groupdict().items() if v is not None}
            self._path_info[source] = found
        return found

    def time_of(self, obj: dict[str, Any]) -> datetime:
        value = self.fields.get(obj, "time")
        if value is MISSING or value is None:
            raise BadLine(f"missing time ({self.fields.describe('time')})")
        try:
            return parse_time(value, self.time_zone, self.time_unit)
        except TimeError as exc:
            raise BadLine(str(exc)) from None

    def endpoint_of(self, obj: dict[str, Any], source: str) -> str:
        value = self.fields.get(obj, "endpoint")
        if value is not MISSING and value is not None and value != "":
            # a logged request target can hold a credential (?api_key=), and it is copied far
            return redact_endpoint(value if isinstance(value, str) else str(value))
        from_path = self.path_info(source).get("endpoint")
        if from_path:
            return from_path
        if self.endpoint:
            return self.endpoint
        raise BadLine(f"missing endpoint ({self.fields.describe('endpoint')}, or set endpoint in the config)")

    def common_fields(self, obj: dict[str, Any], source: str) -> dict[str, Any]:
        """The optional fields every record carries, by their access-log names."""
        fields: dict[str, Any] = dict(obj)
        for name, key in (("request_id", "request_id"), ("latency", "latency_ms"), ("url", "url")):
            value = self.fields.get(obj, name)
            if value is MISSING or value is None or value == "None":
                fields.pop(key, None)
                continue
            fields[key] = as_number(value) if name == "latency" else value
        for key, value in self.path_info(source).items():
            if key != "endpoint":
                fields.setdefault(key, value)
        return fields

    def parse(self, raw: bytes, source: str) -> list[Item]:
        """The items of one line; raises BadLine for a line that cannot be read."""
        obj = load_object(raw)
        return self.parse_object(obj, raw, source)

    def parse_object(self, obj: dict[str, Any], raw: bytes, source: str) -> list[Item]:
        fm = self.fields
        request, response = fm.get(obj, "request"), fm.get(obj, "response")
        event = get_path(obj, self.event_field) if self.event_field is not None else None
        halves = self.event_field is not None and event in (self.request_event, self.response_event)
        if not halves and request is MISSING and response is MISSING:
            # an app's other log lines; counted under their endpoint when they name one,
            # which is also how an endpoint with a format of its own gets its lines
            try:
                return [
                    Skip(
                        "not_a_request",
                        self.endpoint_of(obj, source) if self.fields.paths.get("endpoint") else "-",
                    )
                ]
            except BadLine:
                return [Skip("not_a_request", "-")]
        ts = self.time_of(obj)
        endpoint = self.endpoint_of(obj, source)
        status_value = fm.get(obj, "status")
        status = (
            200
            if status_value is MISSING or status_value is None
            else as_status(status_value, fm.describe("status"))
        )
        fields = self.common_fields(obj, source)
        if halves:
            side = "request" if event == self.request_event else "response"
            key = fields.get("request_id")
            if key is None:
                raise BadLine(f"{event} event without a request id to join it by")
            body = request if side == "request" else response
            return [Half(str(key), side, ts, endpoint, status, body, fields, raw)]
        return [self.entry(obj, ts, endpoint, status, request, response, fields, raw)]

    def entry(
        self,
        obj: dict[str, Any],
        ts: datetime,
        endpoint: str,
        status: int,
        request: Any,
        response: Any,
        fields: dict[str, Any],
        digest_bytes: bytes,
    ) -> Item:
        """Decode, open envelopes and pair: an Entry, or a Skip saying why not."""
        status_skip = status_skip_reason(status)
        if status_skip:
            return Skip(status_skip, endpoint, ts, status)
        if request is MISSING or request is None:
            if response is MISSING or response is None:
                return Skip("non_json_body", endpoint, ts, status)
            return Skip("response_without_request", endpoint, ts, status)
        if response is MISSING or response is None:
            return Skip("input_only", endpoint, ts, status)
        fm = self.fields
        try:
            req = decode(
                request,
                self.decoders,
                _str_or_none(fm.get(obj, "request_encoding")),
                _str_or_none(fm.get(obj, "content_type")),
            )
            resp = decode(
                response,
                self.decoders,
                _str_or_none(fm.get(obj, "response_encoding")),
                _str_or_none(fm.get(obj, "response_content_type")),
            )
        except NotDecodable as exc:
            return Skip(str(exc), endpoint, ts, status)
        try:
            pairs = pair(open_request(req), open_response(resp, self.labels), self.labels)
        except PairError as exc:
            return Bad(str(exc), endpoint, ts, status)
        return Entry(ts, endpoint, status, pairs, fields, digest_bytes)

    def join(self, request: Half, response: Half) -> list[Item]:
        """The items of a joined pair: its records hash both lines, request first."""
        fields = {**request.fields, **{k: v for k, v in response.fields.items() if k not in request.fields}}
        digest = request.raw + b"\n" + response.raw
        item = self.entry(
            {}, request.ts, request.endpoint, response.status, request.body, response.body, fields, digest
        )
        return [item]


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None
