"""The per-chunk stages: parse -> select -> map -> validate, for one chunk of lines.

A chunk is processed on its own, with no shared state but the routing spec, so chunks can
go to worker processes and come back in order. Every line ends up counted: turned into
records, skipped for a counted reason, or rejected with its file, line and reason.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import orjson
import pyarrow as pa

import mappers
from ingest.accesslog.fields import LATENCY_MS, REQUEST_ID, URL
from ingest.accesslog.redact import redact_raw, redact_value
from ingest.model import NO_ENDPOINT, RAW_CAP, SCHEMA, Batch, Counts, Reject
from ingest.sources.formats.join import Joiner
from ingest.sources.formats.profile import Bad, Half, Item, Profile, Skip
from ingest.sources.read import Chunk
from ingest.transform import fast
from ingest.transform import records as rec
from ingest.transform.logline import (
    BadLine,
    LogEntry,
    NotJson,
    body_omitted,
    decode_body,
    is_json_content_type,
    parse_line,
)
from ingest.transform.routing import Route, Router
from ingest.transform.validate import validate


@dataclass
class ChunkResult:
    source: str
    first_line: int
    lines: int
    end_offset: int  # just past the chunk in its source
    size: int  # bytes of the chunk
    batches: list[Batch]
    rejects: list[Reject]
    counts: dict[str, Counts]


@dataclass(frozen=True)
class TransformSpec:
    """Everything a worker needs: picklable, so it is sent to each worker process once."""

    routes: dict[str, Route]
    selected: frozenset[str] | None
    since: datetime | None = None
    until: datetime | None = None
    # Log formats other than the access log: profiles by name, and each source's format
    # (sources not listed are access logs, read by the original fast path).
    profiles: dict[str, Profile] = field(default_factory=dict)
    formats: dict[str, str] = field(default_factory=dict)

    @property
    def joins(self) -> bool:
        """True when a format in use joins two events into a pair (state across chunks)."""
        return any(self.profiles[name].joins for name in set(self.formats.values()) if name in self.profiles)


class _Columns:
    """Rows for one dataset, kept as tuples in SCHEMA's order and turned into columns once."""

    def __init__(self, route: Route, task: str):
        self.route, self.task = route, task
        self.rows: list[tuple[Any, ...]] = []

    def to_batch(self) -> Batch:
        columns = dict(zip(SCHEMA.names, zip(*self.rows, strict=True), strict=True))
        records = _string_array(columns["record"])
        arrays = [records if f.name == "record" else pa.array(columns[f.name], f.type) for f in SCHEMA]
        return Batch(self.route, self.task, pa.Table.from_arrays(arrays, schema=SCHEMA))


def _string_array(texts: tuple[bytes, ...]) -> pa.Array:
    """A string column from orjson's output, which is valid UTF-8 by construction: its bytes
    joined as the data buffer, their lengths summed into the offsets (half the CPU of
    converting each object, then checking the column's UTF-8 in a cast)."""
    n = len(texts)
    offsets = np.zeros(n + 1, np.int64)
    np.cumsum(np.fromiter(map(len, texts), np.int64, n), out=offsets[1:])
    if offsets[-1] >= 1 << 31:  # past 32-bit offsets (never for a 1 MB chunk): Arrow's own way
        return pa.array(texts, pa.binary()).cast(pa.string())
    data = pa.py_buffer(b"".join(texts))
    return pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets.astype(np.int32)), data])


class Transformer:
    def __init__(self, spec: TransformSpec):
        self.spec = spec
        self.router = Router(spec.routes, spec.selected)
        self._mappers: dict[tuple[str, str], tuple[mappers.Mapper, str | None]] = {}
        self.joiner = Joiner()
        self._sub_routes: dict[tuple[str, str], Route] = {}
        self.fast = fast.enabled()
        self.fast_lines = 0  # lines the fast path turned into records (the parity tests look)

    def _mapper_for(self, route: Route, outputs: Any) -> tuple[mappers.Mapper, str | None]:
        """The route's mapper; for auto routes the first recognizable response fixes it."""
        found = self._mappers.get((route.endpoint, route.dataset))
        if found is None:
            name = route.mapper or mappers.detect(outputs)
            if name is None:
                raise ValueError(
                    "cannot tell the task from the response shape; set a mapper for this endpoint"
                )
            found = self._mappers[(route.endpoint, route.dataset)] = mappers.resolve(name)
        return found

    def process(self, chunk: Chunk) -> ChunkResult:
        name = self.spec.formats.get(chunk.source)
        profile = self.spec.profiles.get(name) if name is not None else None
        if profile is not None and not profile.native:
            return self._process_profile(chunk, profile)
        counts: dict[str, Counts] = {}
        rejects: list[Reject] = []
        columns: dict[tuple[str, str | None, str], _Columns] = {}
        offset = chunk.offset
        lines = chunk.data.split(b"\n")
        lines.pop()  # the chunk ends with a newline
        for number, raw in enumerate(lines, chunk.first_line):
            line_offset = offset
            offset += len(raw) + 1

            def reject(reason: str, endpoint: str, stage: str, index: int | None = None) -> None:
                rejects.append(
                    {
                        "file": chunk.source,
                        "line": number,  # noqa: B023 (called within this iteration only)
                        "offset": line_offset,  # noqa: B023
                        "record": index,
                        "endpoint": endpoint,
                        "stage": stage,
                        "reason": reason,
                        "raw": redact_raw(raw[:RAW_CAP]).decode("utf-8", "replace"),  # noqa: B023
                    }
                )

            if not raw.strip():
                _counts(counts, NO_ENDPOINT).skipped["blank_line"] += 1
                continue
            try:
                entry = parse_line(raw)
            except BadLine as exc:
                _counts(counts, NO_ENDPOINT).rejected += 1
                reject(str(exc), NO_ENDPOINT, "parse")
                continue
            count = _counts(counts, entry.path)
            count.lines += 1
            count.by_hour[(int(entry.ts.timestamp()) // 3600, entry.status)] += 1
            route = self.router.route(entry.path)
            skip = self._skip_reason(entry, route)
            if skip:
                count.skipped[skip] += 1
                continue
            try:
                pairs = _pairs(decode_body(entry.request), decode_body(entry.response))
            except NotJson:
                count.skipped["non_json_body"] += 1
                continue
            except BadLine as exc:
                count.rejected += 1
                reject(str(exc), entry.path, "pair")
                continue
            assert route is not None
            self._map_line(entry, route, pairs, raw, chunk.source, number, count, columns, reject)
        return ChunkResult(
            source=chunk.source,
            first_line=chunk.first_line,
            lines=len(lines),
            end_offset=offset,
            size=len(chunk.data),
            batches=[c.to_batch() for c in columns.values()],
            rejects=rejects,
            counts=counts,
        )

    def _process_profile(self, chunk: Chunk, profile: Profile) -> ChunkResult:
        """``process`` for a log read through a profile (another platform's format)."""
        counts: dict[str, Counts] = {}
        rejects: list[Reject] = []
        columns: dict[tuple[str, str | None, str], _Columns] = {}
        offset = chunk.offset
        lines = chunk.data.split(b"\n")
        lines.pop()  # the chunk ends with a newline
        for number, raw in enumerate(lines, chunk.first_line):
            line_offset = offset
            offset += len(raw) + 1
            reject = _rejecter(rejects, chunk.source, number, line_offset, raw)
            if not raw.strip():
                _counts(counts, NO_ENDPOINT).skipped["blank_line"] += 1
                continue
            try:
                items = self._parse_with(profile, raw, chunk.source)
            except BadLine as exc:
                _counts(counts, NO_ENDPOINT).rejected += 1
                reject(str(exc), NO_ENDPOINT, "parse")
                continue
            for i, item in enumerate(items):
                try:
                    self._handle(item, profile, chunk.source, number, i == 0, counts, columns, reject)
                except BadLine as exc:
                    _counts(counts, item.endpoint).rejected += 1
                    reject(str(exc), item.endpoint, "pair")
        for half, reason in self.joiner.expired(self.spec.profiles):
            _counts(counts, half.endpoint).skipped[reason] += 1
        return ChunkResult(
            source=chunk.source,
            first_line=chunk.first_line,
            lines=len(lines),
            end_offset=offset,
            size=len(chunk.data),
            batches=[c.to_batch() for c in columns.values()],
            rejects=rejects,
            counts=counts,
        )

    def _parse_with(self, profile: Profile, raw: bytes, source: str) -> list[Item]:
        """The line's items; an endpoint whose route names another format is read with that one."""
        items = profile.parse(raw, source)
        if items and items[0].endpoint != NO_ENDPOINT:
            route = self.router.route(items[0].endpoint)
            other = route.format if route is not None else None
            if other and other != profile.name and other in self.spec.profiles:
                return self.spec.profiles[other].parse(raw, source)
        return items

    def _handle(
        self,
        item: Item,
        profile: Profile,
        source: str,
        number: int,
        first: bool,
        counts: dict[str, Counts],
        columns: dict[tuple[str, str | None, str], _Columns],
        reject: Any,
    ) -> None:
        count = _counts(counts, item.endpoint)
        if item.endpoint == NO_ENDPOINT:  # a line that says nothing of a request
            count.lines += first
            count.skipped[item.reason if isinstance(item, Skip) else "not_a_request"] += 1
            return
        if first:
            count.lines += 1
            if item.ts is not None:
                count.by_hour[(int(item.ts.timestamp()) // 3600, item.status or 200)] += 1
        route = self.router.route(item.endpoint)
        if route is None:
            count.skipped["endpoint_not_selected"] += 1
            return
        if item.ts is not None and (
            (self.spec.since is not None and item.ts < self.spec.since)
            or (self.spec.until is not None and item.ts >= self.spec.until)
        ):
            count.skipped["outside_time_window"] += 1
            return
        if isinstance(item, Skip):
            count.skipped[item.reason] += 1
            return
        if isinstance(item, Bad):
            count.rejected += 1
            reject(item.reason, item.endpoint, "pair")
            return
        if isinstance(item, Half):
            for joined in self.joiner.add(profile, item, source, number) or ():
                self._handle(joined, profile, source, number, False, counts, columns, reject)
            return
        if item.status >= 400:
            count.skipped["error_status"] += 1
            return
        if item.dataset_suffix:
            route = self._sub_route(route, item.dataset_suffix)
        entry = LogEntry(item.ts, item.endpoint, item.status, None, None, item.fields)
        self._map_line(entry, route, item.pairs, item.digest_bytes, source, number, count, columns, reject)

    def _sub_route(self, route: Route, suffix: str) -> Route:
        """One line, several tasks (BentoML prediction columns): each task to its own dataset."""
        key = (route.endpoint, suffix)
        found = self._sub_routes.get(key)
        if found is None:
            slug = re.sub(r"[^a-z0-9-]+", "_", suffix.lower()).strip("_") or "prediction"
            found = self._sub_routes[key] = dataclasses.replace(
                route, dataset=f"{route.dataset}_{slug}", mapper=None
            )
        return found

    def _skip_reason(self, entry: LogEntry, route: Route | None) -> str | None:
        if route is None:
            return "endpoint_not_selected"
        if self.spec.since is not None and entry.ts < self.spec.since:
            return "outside_time_window"
        if self.spec.until is not None and entry.ts >= self.spec.until:
            return "outside_time_window"
        if entry.status >= 400:
            return "error_status"
        omitted = body_omitted(entry)
        if omitted:
            return omitted
        if not is_json_content_type(entry):
            return "non_json_body"
        return None

    def _fast_line(
        self,
        route: Route,
        pairs: list[tuple[Any, Any]],
        line: fast.Line,
        count: Counts,
        columns: dict[tuple[str, str | None, str], _Columns],
    ) -> bool:
        """The line's records through the fast path (ingest/transform/fast.py), when its
        route's mapper is a built-in one and every pair has the shape it handles exactly;
        False leaves the whole line to the general path."""
        try:
            mapper, _ = self._mapper_for(route, pairs[0][1])
        except Exception:  # no task told by the shape: the general path rejects the pair
            return False
        chosen = fast.for_mapper(mapper)
        if chosen is None:
            return False
        fast_map, task = chosen
        rows = fast_map(pairs, line)
        if rows is None:
            return False
        count.records += len(rows)
        self.fast_lines += 1
        key = (route.dataset, route.workspace, task)
        target = columns.get(key)
        if target is None:
            target = columns[key] = _Columns(route, task)
        target.rows.extend(rows)
        return True

    def _map_line(
        self,
        entry: LogEntry,
        route: Route,
        pairs: list[tuple[Any, Any]],
        raw: bytes,
        source: str,
        number: int,
        count: Counts,
        columns: dict[tuple[str, str | None, str], _Columns],
        reject: Any,
    ) -> None:
        fields = entry.fields
        digest = rec.line_digest(raw)
        event_ts = entry.ts.replace(tzinfo=None).isoformat(timespec="microseconds")
        ts_micros = int(entry.ts.timestamp() * 1_000_000)
        url = fields.get(URL)
        agent = url if isinstance(url, str) and url else entry.path
        latency = fields.get(LATENCY_MS)
        latency = (
            float(latency) if isinstance(latency, int | float) and not isinstance(latency, bool) else None
        )
        request_id = fields.get(REQUEST_ID)
        request_id = str(request_id) if request_id is not None else None
        metadata: dict[str, Any] = {"endpoint": entry.path, "status": entry.status}
        if latency is not None:
            metadata["latency_ms"] = latency
        if request_id is not None:
            metadata["request_id"] = request_id
        for name in route.metadata_fields:
            if name in fields:
                metadata[name] = redact_value(fields[name])
        if (
            self.fast
            and pairs
            and self._fast_line(
                route,
                pairs,
                fast.Line(
                    digest,
                    event_ts,
                    ts_micros,
                    agent,
                    metadata,
                    entry.path,
                    entry.status,
                    latency,
                    request_id,
                    source,
                    number,
                ),
                count,
                columns,
            )
        ):
            return
        for index, (inputs, outputs) in enumerate(pairs):
            try:
                mapper, task = self._mapper_for(route, outputs)
                result = mapper(inputs, outputs)
                if result is None:
                    count.skipped["mapper_returned_none"] += 1
                    continue
                task, body = rec.normalize_mapper_output(result, task, agent)
            except Exception as exc:  # a mapper is user code: any failure rejects the pair
                count.rejected += 1
                reject(f"mapper failed: {type(exc).__name__}: {exc}", entry.path, "map", index)
                continue
            record = rec.complete(
                task,
                body,
                id=rec.record_id(digest, index),
                event_timestamp=event_ts,
                agent=agent,
                metadata=metadata,  # shared by the line's records, never changed
            )
            error = validate(task, record)
            if error:
                count.rejected += 1
                reject(error, entry.path, "validate", index)
                continue
            count.records += 1
            # A dataset is a name in a workspace; routes to one agree on its tags (settings).
            key = (route.dataset, route.workspace, task)
            target = columns.get(key)
            if target is None:
                target = columns[key] = _Columns(route, task)
            text, label, score, n_entities, output_text = rec.flat_columns(task, record)
            record_id = record["id"]
            target.rows.append(
                (
                    record_id if isinstance(record_id, str) else str(record_id),
                    ts_micros,
                    task,
                    orjson.dumps(record),
                    entry.path,
                    entry.status,
                    latency,
                    request_id,
                    text,
                    label,
                    float(score) if score is not None else None,
                    n_entities,
                    output_text,
                    source,
                    number,
                )
            )


def _rejecter(rejects: list[Reject], source: str, number: int, offset: int, raw: bytes) -> Any:
    """A function filing one reject of this line (file, line, offset, reason, redacted raw line)."""

    def reject(reason: str, endpoint: str, stage: str, index: int | None = None) -> None:
        rejects.append(
            {
                "file": source,
                "line": number,
                "offset": offset,
                "record": index,
                "endpoint": endpoint,
                "stage": stage,
                "reason": reason,
                "raw": redact_raw(raw[:RAW_CAP]).decode("utf-8", "replace"),
            }
        )

    return reject


def _counts(counts: dict[str, Counts], endpoint: str) -> Counts:
    found = counts.get(endpoint)
    if found is None:
        found = counts[endpoint] = Counts()
    return found


def _pairs(inputs: Any, outputs: Any) -> list[tuple[Any, Any]]:
    """Pair a request's inputs with a response's outputs, one to one, never truncating."""
    if isinstance(inputs, list):
        if not isinstance(outputs, list):
            raise BadLine(f"batch size mismatch: request has {len(inputs)} inputs, response is not a list")
        if len(inputs) != len(outputs):
            raise BadLine(
                f"batch size mismatch: request has {len(inputs)} inputs, response {len(outputs)} outputs"
            )
        return list(zip(inputs, outputs, strict=True))
    if (
        isinstance(outputs, list)
        and len(outputs) == 1
        and isinstance(outputs[0], dict | list)
        and mappers.detect(outputs) is None
    ):
        # a single input answered by a one-item batch, as list-typed endpoints do
        return [(inputs, outputs[0])]
    return [(inputs, outputs)]
