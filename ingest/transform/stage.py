"""The per-chunk stages: parse -> select -> map -> validate, for one chunk of lines.

A chunk is processed on its own, with no shared state but the routing spec, so chunks can
go to worker processes and come back in order. Every line ends up counted: turned into
records, skipped for a counted reason, or rejected with its file, line and reason.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import orjson
import pyarrow as pa

import mappers
from ingest.accesslog.fields import LATENCY_MS, REQUEST_ID, URL
from ingest.accesslog.redact import redact_copied, redact_endpoint, redact_id, redact_raw, redact_text
from ingest.model import NO_ENDPOINT, RAW_CAP, SCHEMA, Batch, Counts, FileCounts, Reject
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
from ingest.transform.routing import Route, Router, bounded_name
from ingest.transform.validate import validate
from mappers import pairs as pairing
from mappers import text_classification as tc


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
    file_counts: FileCounts = field(default_factory=FileCounts)


@dataclass(frozen=True)
class TransformSpec:
    """Everything a worker needs: picklable, so it is sent to each worker process once."""

    routes: dict[str, Route]
    selected: frozenset[str] | None
    since: datetime | None = None
    until: datetime | None = None
    # source name -> first line whose traffic the run log has not counted yet: a re-read
    # (--from-start, a window, a new target or selection) counts each line once.
    counted: dict[str, int] = field(default_factory=dict)
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

    def __init__(self, route: Route, task: str, variant: tuple[bool, str | None, bool | None]):
        self.route, self.task = route, task
        self.candidate, self.evidence, self.multi_label = variant
        self.rows: list[tuple[Any, ...]] = []
        # per row: (its line's offset, its pair's index in the line, how many pairs of the line
        # gave rows, or 0 when unknown): what the parent needs to tell a line whose every
        # record a dataset decision refused (ingest/transform/datasets.py)
        self.origins: list[tuple[int, int, int]] = []

    def to_batch(self, chunk: Chunk) -> Batch:
        batch = self._batch()
        batch.candidate, batch.evidence, batch.multi_label = self.candidate, self.evidence, self.multi_label
        batch.first_offset, batch.first_line = chunk.offset, chunk.first_line
        return batch

    def _batch(self) -> Batch:
        columns = dict(zip(SCHEMA.names, zip(*self.rows, strict=True), strict=True))
        records = _string_array(columns["record"])
        arrays = [records if f.name == "record" else pa.array(columns[f.name], f.type) for f in SCHEMA]
        origins = np.array(self.origins, np.int64).reshape(-1, 3)
        return Batch(self.route, self.task, pa.Table.from_arrays(arrays, schema=SCHEMA), origins=origins)


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
        self._mappers: dict[tuple[str, str, str], tuple[mappers.Mapper, str | None]] = {}
        self.joiner = Joiner()
        self._sub_routes: dict[tuple[str, str], Route] = {}
        self.fast = fast.enabled()
        self.fast_lines = 0  # lines the fast path turned into records (the parity tests look)
        # per route (by identity; kept alive here so its id is not reused): see _fast_chooser
        self._choosers: dict[int, tuple[Route, Any]] = {}

    def _mapper(self, route: Route, name: str) -> tuple[mappers.Mapper, str | None]:
        key = (route.endpoint, route.dataset, name)
        found = self._mappers.get(key)
        if found is None:
            mapper, task = mappers.resolve(name)
            if name == "token_classification" and route.subword_spans:
                mapper = functools.partial(mapper, subword_spans=True)
            found = self._mappers[key] = (mapper, task)
        return found

    def _mappers_for(
        self, route: Route, outputs: Any
    ) -> tuple[list[tuple[mappers.Mapper, str | None]], bool]:
        """The mappers to try on one output, and whether they are candidates.

        Each output is read on its own shape: no response decides how later ones are read
        (a CORS preflight's "OK" once made a NER endpoint's dataset Text2Text). An output
        every task could give gets every built-in mapper, as candidates the parent keeps
        or drops once the dataset's task is known.
        """
        if route.mapper:
            return [self._mapper(route, route.mapper)], False
        task = route.configured_task
        if task is not None:
            return [self._mapper(route, mappers.MAPPER_OF_TASK[task])], False
        if mappers.is_ambiguous(outputs):
            return [self._mapper(route, name) for name in mappers.BUILTIN], True
        name = mappers.detect(outputs)
        if name is None:
            raise mappers.Rejected(
                "cannot tell the task from the response shape; set a mapper or task for this endpoint"
            )
        return [self._mapper(route, name)], False

    def _fast_chooser(self, route: Route) -> Any:
        """How the fast path picks its function for an output of this route, as
        ``_mappers_for`` picks the mapper: a route with a mapper or task in config has one
        (a tuple, or None: no fast path, such as a custom mapper or ``subword_spans``); any
        other route gets a dict from built-in mapper name to fast function (or None), to be
        looked up by ``mappers.detect`` of each output that is not ambiguous."""
        found = self._choosers.get(id(route))
        if found is not None:
            return found[1]
        if route.mapper:
            chooser: Any = fast.for_mapper(self._mapper(route, route.mapper)[0])
        elif route.configured_task is not None:
            chooser = fast.for_mapper(self._mapper(route, mappers.MAPPER_OF_TASK[route.configured_task])[0])
        else:
            chooser = {name: fast.for_mapper(self._mapper(route, name)[0]) for name in mappers.BUILTIN}
        self._choosers[id(route)] = (route, chooser)
        return chooser

    def _fast_line(self, route: Route, pairs: list[tuple[Any, Any]], shared: fast.Line, line: _Line) -> bool:
        """The line's records through the fast path (ingest/transform/fast.py), when every
        pair has a built-in mapper's usual shape; False leaves the whole line to the general
        path, so each record and reject reason comes from one place."""
        chooser = self._fast_chooser(route)
        if chooser is None:
            return False
        detected = type(chooser) is dict
        multi_label = route.multi_label
        made = []
        for index, (inputs, outputs) in enumerate(pairs):
            if detected:
                if mappers.is_ambiguous(outputs):  # candidates of every task: the parent decides
                    return False
                found = chooser.get(mappers.detect(outputs))
                if found is None:
                    return False
            else:
                found = chooser
            one = found[0](index, inputs, outputs, shared, multi_label)
            if one is None:
                return False
            made.append(one)
        self.fast_lines += 1
        # one row per pair, in order: the pair's index is its place
        line.rows.extend(
            (route, task, variant, row, index) for index, (task, variant, row) in enumerate(made)
        )
        return True

    def process(self, chunk: Chunk) -> ChunkResult:
        """Every line of the chunk parsed, routed, mapped and validated.

        The one rule of this stage: any exception while handling a line rejects that line
        (or, in the per-record steps, that record) with the exception's type and message;
        nothing a line holds can stop the chunk. Only exceptions that are not ``Exception``
        (``SystemExit`` from a mapper, say) get out.
        """
        name = self.spec.formats.get(chunk.source)
        profile = self.spec.profiles.get(name) if name is not None else None
        if profile is not None and not profile.native:
            return self._process_profile(chunk, profile)
        counts: dict[str, Counts] = {}
        rejects: list[Reject] = []
        columns: dict[tuple[Any, ...], _Columns] = {}
        files = FileCounts()
        for number, line_offset, raw in chunk_lines(chunk, files):
            line = _Line(chunk.source, number, line_offset, raw)
            try:
                self._line(line)
            except Exception as exc:
                line.fail(exc)
            files.lines += 1
            outcome = line.commit(counts, rejects, columns)
            if outcome == "records":
                files.gave_records += 1
            elif outcome == "rejected":
                files.rejected += 1
            else:
                files.skipped += 1
        return _chunk_result(chunk, columns, rejects, counts, files)

    def _line(self, line: _Line) -> None:
        raw = line.raw
        if not raw.strip():
            line.skipped = "blank_line"
            return
        entry = parse_line(raw)
        line.endpoint = entry.path
        if line.number >= self.spec.counted.get(line.source, 0):
            line.hour = (int(entry.ts.timestamp()) // 3600, entry.status)
        route = self.router.route(entry.path)
        skip = self._skip_reason(entry, route)
        if skip:
            line.skipped = skip
            return
        line.stage = "pair"
        try:
            request = decode_body(entry.request)
            skip = pairing.body_skip_reason(request)
            if skip:
                line.skipped = skip
                return
            pairs = pairing.pairs(request, decode_body(entry.response), mappers.detect)
        except NotJson:
            line.skipped = "non_json_body"
            return
        if not pairs:
            line.skipped = "empty_batch"
            return
        assert route is not None
        line.stage = "map"
        self._map_line(entry, route, pairs, line)

    def _process_profile(self, chunk: Chunk, profile: Profile) -> ChunkResult:
        """``process`` for a log read through a profile (another platform's format)."""
        counts: dict[str, Counts] = {}
        rejects: list[Reject] = []
        columns: dict[tuple[Any, ...], _Columns] = {}
        files = FileCounts()
        for number, line_offset, raw in chunk_lines(chunk, files):
            reject = _rejecter(rejects, chunk.source, number, line_offset, raw)
            files.lines += 1
            # the line's outcome, from what it added (a line's items may name several endpoints)
            before = (sum(len(c.rows) for c in columns.values()), len(rejects))
            if not raw.strip():
                _counts(counts, NO_ENDPOINT).skipped["blank_line"] += 1
                files.skipped += 1
                continue
            try:
                items = self._parse_with(profile, raw, chunk.source)
            except Exception as exc:  # the stage's rule: whatever a line does, it is that line's reject
                _counts(counts, NO_ENDPOINT).rejected += 1
                reject(_reason(exc), NO_ENDPOINT, "parse")
                files.rejected += 1
                continue
            for i, item in enumerate(items):
                try:
                    where = (chunk.source, number, line_offset, raw)
                    # a line of one item: its records are all the line gives (see _handle)
                    self._handle(item, profile, where, i == 0, counts, columns, reject, len(items) == 1)
                except Exception as exc:
                    _counts(counts, item.endpoint).rejected += 1
                    reject(_reason(exc), item.endpoint, "pair")
            if sum(len(c.rows) for c in columns.values()) > before[0]:
                files.gave_records += 1
            elif len(rejects) > before[1]:
                files.rejected += 1
            else:
                files.skipped += 1
        for half, reason in self.joiner.expired(self.spec.profiles):
            _counts(counts, half.endpoint).skipped[self.unjoined_reason(half, reason)] += 1
        return _chunk_result(chunk, columns, rejects, counts, files)

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
        where: tuple[str, int, int, bytes],  # the line's file, number, offset and bytes
        first: bool,
        counts: dict[str, Counts],
        columns: dict[tuple[Any, ...], _Columns],
        reject: Any,
        whole_line: bool = False,
    ) -> None:
        """Count, map and hand over one item of a profile line. ``whole_line``: the item is all
        its line holds, so its records are all the line gives and the parent may count the
        line rejected once it refused every one of them (``_Line.commit_rows``)."""
        source, number, offset, raw = where
        count = _counts(counts, item.endpoint)
        if item.endpoint == NO_ENDPOINT:  # a line that says nothing of a request
            count.lines += first
            count.skipped[item.reason if isinstance(item, Skip) else "not_a_request"] += 1
            return
        if first:
            count.lines += 1
            if item.ts is not None and number >= self.spec.counted.get(source, 0):
                count.by_hour[(int(item.ts.timestamp()) // 3600, item.status or 200)] += 1
        route = self.router.route(item.endpoint)
        if route is None:
            count.skipped["endpoint_not_selected"] += 1
            return
        # a half is judged with its pair, at its request's time (a pair can straddle an edge)
        if not isinstance(item, Half) and self._outside_window(item.ts):
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
            found = self.joiner.add(profile, item, source, number) or ()
            for joined in found:
                self._handle(
                    joined, profile, where, False, counts, columns, reject, whole_line and len(found) == 1
                )
            return
        status_skip = pairing.status_skip_reason(item.status)
        if status_skip:
            count.skipped[status_skip] += 1
            return
        if item.dataset_suffix:
            route = self._sub_route(route, item.dataset_suffix)
        entry = LogEntry(item.ts, item.endpoint, item.status, None, None, item.fields)
        # mapped as an access-log line's pairs are, then counted at once (a line may hold several)
        line = _Line(source, number, offset, raw, digest_raw=item.digest_bytes)
        line.endpoint = entry.path
        self._map_line(entry, route, item.pairs, line)
        count.skipped.update(line.record_skips)
        count.records += sum(1 for _, _, variant, _, _ in line.rows if not variant[0])
        line.commit_rows(columns, whole_line=whole_line)
        for one in line.rejects:
            count.rejected += 1
            reject(one["reason"], one["endpoint"], one["stage"], one["record"])

    def _outside_window(self, ts: datetime | None) -> bool:
        return ts is not None and (
            (self.spec.since is not None and ts < self.spec.since)
            or (self.spec.until is not None and ts >= self.spec.until)
        )

    def unjoined_reason(self, half: Half, reason: str) -> str:
        """The skip reason of a half that found no pair: outside the run's time window, its
        window's reason, else the joiner's (``missing_output``, ...)."""
        return "outside_time_window" if self._outside_window(half.ts) else reason

    def _sub_route(self, route: Route, suffix: str) -> Route:
        """One line, several tasks (BentoML prediction columns): each task to its own dataset."""
        key = (route.endpoint, suffix)
        found = self._sub_routes.get(key)
        if found is None:
            slug = re.sub(r"[^a-z0-9-]+", "_", suffix.lower()).strip("_") or "prediction"
            # a column's name is input: the dataset made from it stays a valid, bounded name
            dataset = bounded_name(f"{route.dataset}_{slug}", f"{route.dataset}\0{suffix}")
            found = self._sub_routes[key] = dataclasses.replace(
                route, dataset=dataset, mapper=None, task=None, multi_label=None
            )
        return found

    def _skip_reason(self, entry: LogEntry, route: Route | None) -> str | None:
        if route is None:
            return "endpoint_not_selected"
        if self.spec.since is not None and entry.ts < self.spec.since:
            return "outside_time_window"
        if self.spec.until is not None and entry.ts >= self.spec.until:
            return "outside_time_window"
        skip = pairing.status_skip_reason(entry.status)
        if skip:
            return skip
        skip = pairing.method_skip_reason(entry.fields.get("method"))
        if skip:
            return skip
        omitted = body_omitted(entry)
        if omitted:
            return omitted
        if not is_json_content_type(entry) and not _is_event_stream(entry):
            return "non_json_body"
        return None

    def _map_line(self, entry: LogEntry, route: Route, pairs: list[tuple[Any, Any]], line: _Line) -> None:
        fields = entry.fields
        digest = rec.line_digest(line.digest_raw)
        event_ts = entry.ts.replace(tzinfo=None).isoformat(timespec="microseconds")
        ts_micros = int(entry.ts.timestamp() * 1_000_000)
        url = fields.get(URL)
        # a URL can carry credentials (?api_key=, %3D, user:password@, a key in its path): masked
        # as the path is, cached (a log's URLs mostly repeat; the path is masked already)
        agent = redact_endpoint(url) if isinstance(url, str) and url else entry.path
        latency = _finite(fields.get(LATENCY_MS))
        request_id = fields.get(REQUEST_ID)
        request_id = redact_id(str(request_id)) if request_id is not None else None
        metadata: dict[str, Any] = {"endpoint": entry.path, "status": entry.status}
        if latency is not None:
            metadata["latency_ms"] = latency
        if request_id is not None:
            metadata["request_id"] = request_id
        for name in route.metadata_fields:
            if name in fields:
                # copied from the line, whose keys may be damaged: credentials by key and by shape
                metadata[name] = redact_copied(fields[name])
        if self.fast:
            try:
                shared = fast.Line(
                    digest,
                    event_ts,
                    ts_micros,
                    agent,
                    metadata,
                    entry.path,
                    entry.status,
                    latency,
                    request_id,
                    line.source,
                    line.number,
                )
                if self._fast_line(route, pairs, shared, line):
                    return
            except Exception:  # what the general path rejects record by record (orjson refusing a value)
                line.rows.clear()
        for index, (inputs, outputs) in enumerate(pairs):
            try:
                choices, candidate = self._mappers_for(route, outputs)
            except mappers.Rejected as exc:
                line.reject(str(exc), "map", index)
                continue
            made: list[tuple[str, tuple[bool, str | None, bool | None], tuple[Any, ...]]] = []
            failures: list[tuple[str, str]] = []  # (stage, reason) of each mapper that failed
            returned_none = False
            for mapper, task in choices:
                try:
                    result = mapper(inputs, outputs)
                    if result is None:
                        returned_none = True
                        continue
                    task, body = rec.normalize_mapper_output(result, task, agent)
                    variant: tuple[bool, str | None, bool | None] = (candidate, None, None)
                    if task == tc.TASK:
                        body, variant = _multi_label(route, body, candidate)
                except Exception as exc:  # a mapper is user code: any failure rejects the pair
                    reason = (
                        str(exc) if isinstance(exc, mappers.Rejected) else f"mapper failed: {_reason(exc)}"
                    )
                    failures.append(("map", reason))
                    continue
                try:
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
                        failures.append(("validate", error))
                        continue
                    text, label, score, n_entities, output_text = rec.flat_columns(task, record)
                    record_id = record["id"]
                    # orjson refuses what JSON cannot carry (a lone surrogate in a text, say):
                    # that record alone is rejected, the line's other records are fine.
                    row = (
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
                        line.source,
                        line.number,
                    )
                except Exception as exc:
                    failures.append(("record", f"record failed: {_reason(exc)}"))
                    continue
                made.append((task, variant, row))
            if made:
                # Candidates (an empty output, one reading per task) are counted by the
                # parent once it keeps one of them (ingest/transform/datasets.py).
                line.rows.extend((route, task, variant, row, index) for task, variant, row in made)
            elif returned_none and not failures:
                line.record_skips.append("mapper_returned_none")
            else:
                stage, reason = failures[0] if failures else ("map", "no task fits the output")
                line.reject(reason, stage, index)


def _multi_label(
    route: Route, body: dict[str, Any], candidate: bool
) -> tuple[dict[str, Any], tuple[bool, str | None, bool | None]]:
    """A text classification body with the multi_label flag its dataset needs, as far as
    this worker knows: config's, else what the scores allow (settled later by the parent)."""
    labels = (body.get("prediction") or {}).get("labels") or []
    scores = [item.get("score") for item in labels if isinstance(item, dict)]
    if route.multi_label is not None:
        body = tc.settle(body, route.multi_label)
        return body, (candidate, tc.MULTI if route.multi_label else tc.SINGLE, route.multi_label)
    evidence = tc.evidence(scores)
    numbers = [x for x in scores if isinstance(x, int | float) and not isinstance(x, bool)]
    # Valid as it is: multi-label when the scores are, or when rounding lifts their sum
    # past the server's 1.001 (the parent divides them by their sum if the dataset is single-label).
    flag = evidence == tc.MULTI or sum(numbers) > tc.SINGLE_LABEL_MAX_SUM
    body = {**body, "multi_label": flag}
    return body, (candidate, evidence, flag)


def _is_event_stream(entry: LogEntry) -> bool:
    content_type = entry.fields.get("content_type")
    return isinstance(content_type, str) and "event-stream" in content_type


REASON_CAP = 500  # characters of an exception's message kept in a reject's reason


def _reason(exc: BaseException) -> str:
    """An exception as a reject reason: its type and message, bounded, always valid UTF-8."""
    text = str(exc) if isinstance(exc, BadLine | mappers.Rejected) else f"{type(exc).__name__}: {exc}"
    if len(text) > REASON_CAP:
        text = text[:REASON_CAP] + "..."
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _finite(value: Any) -> float | None:
    """An optional number (latency) as a float, or None when it is not one a float can hold."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    try:
        return float(value)
    except OverflowError:
        return None


_NULS = re.compile(rb"\0+")


def chunk_lines(chunk: Chunk, files: FileCounts | None = None) -> Iterator[tuple[int, int, bytes]]:
    """The lines of a chunk as the transform reads them: ``(number, offset, raw)`` per line.

    ``number`` is the line's 1-based number in its source (``chunk.first_line`` onwards),
    ``offset`` the byte offset in the (decompressed) source where ``raw`` starts, and ``raw``
    the line's bytes without its newline. ``chunk.data`` is whole lines, each ending with
    ``b"\n"`` (what ``sources.read`` makes; bytes after a last newline would not be read).

    A run of NUL bytes (what a crash or copytruncate leaves: the writer goes on at its old
    offset in a file that was cut) ends a line and is not a line itself: the bytes after it
    are read as a line of their own, with the physical line's number and their own offset,
    and a piece that is blank beside NULs is no line at all. The NUL bytes passed over are
    added to ``files.nul_bytes`` when ``files`` is given. Raises nothing.

    Every runner reads a chunk's lines through this: the stage (``Transformer.process``, on
    one machine or in its worker processes) and the Dask runner, which finds a waiting
    half's offset with it (ingest/runners/dask.py).
    """
    offset = chunk.offset
    lines = chunk.data.split(b"\n")
    lines.pop()  # the chunk ends with a newline
    zeros = b"\0" in chunk.data
    for number, raw in enumerate(lines, chunk.first_line):
        if zeros and b"\0" in raw:
            start = 0
            for run in _NULS.finditer(raw):
                if raw[start : run.start()].strip():
                    yield number, offset + start, raw[start : run.start()]
                if files is not None:
                    files.nul_bytes += run.end() - run.start()
                start = run.end()
            if raw[start:].strip():
                yield number, offset + start, raw[start:]
        else:
            yield number, offset, raw
        offset += len(raw) + 1


class _Line:
    """One line's outcome, built up while it is handled and counted only once it is done."""

    __slots__ = (
        "digest_raw",
        "endpoint",
        "hour",
        "number",
        "offset",
        "raw",
        "record_skips",
        "rejects",
        "rows",
        "skipped",
        "source",
        "stage",
    )

    def __init__(self, source: str, number: int, offset: int, raw: bytes, digest_raw: bytes | None = None):
        self.source, self.number, self.offset, self.raw = source, number, offset, raw
        self.digest_raw = raw if digest_raw is None else digest_raw  # what record ids hash
        self.endpoint: str | None = None  # known once the line parsed
        self.hour: tuple[int, int] | None = None
        self.stage = "parse"
        self.skipped: str | None = None  # the line was skipped whole, for this reason
        self.record_skips: list[str] = []
        self.rejects: list[Reject] = []
        # (route, task, (candidate, evidence, multi_label), row, pair index): see _Columns, Batch
        self.rows: list[tuple[Route, str, tuple[bool, str | None, bool | None], tuple[Any, ...], int]] = []

    def reject(self, reason: str, stage: str, index: int | None = None) -> None:
        where = (self.source, self.number, self.offset, self.raw)
        self.rejects.append(_line_reject(where, reason, self.endpoint or NO_ENDPOINT, stage, index))

    def commit_rows(self, columns: dict[tuple[Any, ...], _Columns], whole_line: bool = True) -> None:
        """Hand the line's valid records to their datasets' columns.

        ``whole_line``: these rows are all the line gave (not one item's of several), so the
        parent may count the line rejected once it refused every one of its pairs.
        """
        pairs = len({index for *_, index in self.rows}) if whole_line else 0
        for route, task, variant, row, index in self.rows:
            # A dataset is a name in a workspace; routes to one agree on its tags (settings).
            key = (route.dataset, route.workspace, task, *variant)
            target = columns.get(key)
            if target is None:
                target = columns[key] = _Columns(route, task, variant)
            target.rows.append(row)
            target.origins.append((self.offset, index, pairs))

    def fail(self, exc: Exception) -> None:
        """The line as a whole is rejected: whatever it had produced so far is dropped."""
        self.skipped = None
        self.record_skips.clear()
        self.rejects.clear()
        self.rows.clear()
        self.reject(_reason(exc), self.stage)

    def commit(
        self,
        counts: dict[str, Counts],
        rejects: list[Reject],
        columns: dict[tuple[Any, ...], _Columns],
    ) -> str:
        """Count the line and hand on its rows and rejects; returns its outcome."""
        count = _counts(counts, self.endpoint or NO_ENDPOINT)
        if self.endpoint is not None:
            count.lines += 1
            if self.hour is not None:
                count.by_hour[self.hour] += 1
        if self.skipped:
            count.skipped[self.skipped] += 1
        count.skipped.update(self.record_skips)
        count.rejected += len(self.rejects)
        count.records += sum(1 for _, _, variant, _, _ in self.rows if not variant[0])
        rejects.extend(self.rejects)
        self.commit_rows(columns)
        if self.rows:
            return "records"
        return "rejected" if self.rejects else "skipped"


def _line_reject(
    where: tuple[str, int, int, bytes], reason: str, endpoint: str, stage: str, index: int | None
) -> Reject:
    """A reject of a line (``index`` None) or of its record ``index``: ``where`` is the line's
    file, number, offset and bytes; the reason and the raw line are redacted, the line cut."""
    source, number, offset, raw = where
    return {
        "file": source,
        "line": number,
        "offset": offset,
        "record": index,
        "endpoint": endpoint,
        "stage": stage,
        "reason": redact_text(reason),  # a message may quote the line
        "raw": redact_raw(raw, RAW_CAP).decode("utf-8", "replace"),
    }


def _rejecter(rejects: list[Reject], source: str, number: int, offset: int, raw: bytes) -> Any:
    """A function filing one reject of this line (file, line, offset, reason, redacted raw line)."""

    def reject(reason: str, endpoint: str, stage: str, index: int | None = None) -> None:
        rejects.append(_line_reject((source, number, offset, raw), reason, endpoint, stage, index))

    return reject


def _chunk_result(chunk: Chunk, columns: dict, rejects: list, counts: dict, files: Any) -> ChunkResult:
    """The outcome of one chunk, for either line path: its offsets, batches, rejects and counts."""
    size = len(chunk.data)
    return ChunkResult(
        source=chunk.source,
        first_line=chunk.first_line,
        lines=chunk.data.count(b"\n"),
        end_offset=chunk.offset + size - (1 if chunk.unterminated else 0),
        size=size,
        batches=[c.to_batch(chunk) for c in columns.values()],
        rejects=rejects,
        counts=counts,
        file_counts=files,
    )


def _counts(counts: dict[str, Counts], endpoint: str) -> Counts:
    found = counts.get(endpoint)
    if found is None:
        found = counts[endpoint] = Counts()
    return found
