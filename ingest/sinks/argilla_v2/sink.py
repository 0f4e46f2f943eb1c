"""The Argilla 2.x sink: datasets with settings, records upserted in bulk with suggestions.

Delivery works as in the v0 sink (ingest/sinks/rubrix/sink.py, whose request, retry and
harvest machinery this class inherits): bulk requests of at most 500 records (the
server's limit, ``api/schemas/v1/records_bulk.py``) with ``concurrency`` in flight,
transient failures retried with backoff within ``retry_for``, 401/403 stopping the run at
once, and a 422 answered by taking out the record the server names ("Record at position
i ..." or the validation error's ``loc``) and sending the rest again.

What is new in 2.x (argilla-server 2.8.0; shared/reference/argilla-v2-wire-protocol.md):

- A dataset must be created with fields, questions and metadata properties and published
  before it takes records, and its label options are frozen from then on. So a dataset the
  server does not have yet is created as late as possible: its batches are held until the
  next flush (every checkpoint, 32 MB of input) or ``PENDING_ROWS`` records, and the
  labels come from the config (``labels`` of the endpoint) or else from every record held
  by then. A later record whose label the published dataset lacks is rejected with a
  reason that says how to fix it, never stored without its suggestion.
- Records are upserted with ``PUT .../records/bulk`` and ``external_id`` = our record id,
  so sending twice updates; two items with one external id fail a whole request, so a
  batch keeps the last of each id.
- The API key goes in ``X-Argilla-Api-Key``; there is no workspace header: datasets are
  looked up and created by workspace id.
"""

from __future__ import annotations

import dataclasses
import re
import threading
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import pyarrow as pa

from ingest.errors import DeliveryError
from ingest.model import Batch, Delivery, rows_of
from ingest.settings import ServerSettings
from ingest.sinks.argilla_v2.schema import (
    Layout,
    RecordRefused,
    Seen,
    dataset_settings,
    layout_of,
    metadata_bodies,
)
from ingest.sinks.argilla_v2.schema import record_item as to_item
from ingest.sinks.rubrix.sink import RubrixSink, _detail, _json

MAX_BULK = 500  # items per bulk request: the server's limit
# Records held for a dataset not created yet before it is created anyway, with the labels
# seen so far. Held records wait for the dataset, and a slow server (about 40 records/s on
# a busy machine with SQLite) made 20,000 of them wait a quarter of an hour in the
# benchmark, and a SIGTERM wait for all of them: 2,000 bounds that to about a minute.
PENDING_ROWS = 2_000
# A 500-record upsert costs the server about 10 ms of CPU a record (argilla-server 2.8 on
# SQLite; 4.5 s measured on an idle machine), and requests in flight share its one event
# loop, so with 4 in flight on a busy machine an answer took over 60 s (the v0 default)
# and the retry only added load. Unless --timeout is given, 2.x requests get this long.
BULK_TIMEOUT = 300.0
DEFAULT_TIMEOUT = 60.0
DEFAULT_API_KEY = "argilla.apikey"  # the key of the server's default user and docker image
_POSITION = re.compile(r"Record at position (\d+) is not valid because\s*")


class OneWriterOnLock(httpx.BaseTransport):
    """Bulk writes go one at a time once the server said its database is locked.

    argilla-server on SQLite answers concurrent bulk upserts with 500 "(sqlite3.OperationalError)
    database is locked" (observed with four 500-record PUTs at once: one failed after 12 s),
    and every retry of a 500-record request costs seconds of its CPU. The server does not
    tell its database, so the first such answer switches this run to one bulk request at a
    time; the failed request is retried as any 500 is. A server on PostgreSQL never answers
    that and keeps ``--concurrency``.
    """

    def __init__(self, inner: httpx.BaseTransport):
        self.inner = inner
        self.serial = threading.Event()
        self._lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self.serial.is_set() and request.method == "PUT" and request.url.path.endswith("/records/bulk"):
            with self._lock:
                return self._send(request)
        return self._send(request)

    def _send(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if response.status_code == 500:
            response.read()
            if b"database is locked" in response.content:
                self.serial.set()
        return response

    def close(self) -> None:
        self.inner.close()


@dataclass
class _Target:
    """One dataset in one workspace, as this run knows it."""

    workspace_id: str
    name: str
    task: str
    labels: tuple[str, ...] = ()
    layout: Layout | None = None
    refused: str | None = None  # why no record can go there
    draft: dict[str, Any] | None = None  # a dataset left unpublished, to complete
    seen: Seen | None = None
    pending: list[Batch] = field(default_factory=list)
    pending_rows: int = 0


class ArgillaV2Sink(RubrixSink):
    """Sink for an Argilla 2.x server (API v1 only); same settings as the v0 sink."""

    # The v0 sink's dataset lookup (task, multi_label for issue 16's dataset-level decisions)
    # speaks the v0 API; an Argilla 2.x dataset keeps its kind in its questions instead, so
    # none is made here: decisions come from config, else from the run's first records.
    dataset_info = None

    def __init__(
        self, settings: ServerSettings, version: str = "", transport: httpx.BaseTransport | None = None
    ):
        """Connect (``GET /api/v1/version``, ``/api/v1/me``, ``/api/v1/me/workspaces``);
        DeliveryError when the key is refused or the workspace is not the user's."""
        self.server_version = version
        self._targets: dict[tuple[str, str], _Target] = {}
        self._workspace_ids: dict[str, str] = {}
        self._default_workspace: str | None = None
        changed = {"batch_size": min(settings.batch_size, MAX_BULK)}
        if settings.timeout == DEFAULT_TIMEOUT:
            changed["timeout"] = BULK_TIMEOUT
        inner = transport or httpx.HTTPTransport(
            limits=httpx.Limits(max_connections=settings.concurrency + 2)
        )
        self._writes = OneWriterOnLock(inner)
        super().__init__(dataclasses.replace(settings, **changed), transport=self._writes)
        self.server_version = self.server_version or version
        where = f", workspace {self._default_workspace}" if self._default_workspace else ""
        self.description = f"argilla {self.server_version or '2.x'} {self.url}{where}"

    # -- handshake --------------------------------------------------------------------
    def connect(self) -> None:
        if not self.server_version:
            version = self._request("GET", "/api/v1/version", headers={})
            self.server_version = str(_json(version).get("version") or "")
        self._key_header = "X-Argilla-Api-Key"
        self._api_key = self.settings.api_key or DEFAULT_API_KEY
        me = self._request("GET", "/api/v1/me", headers=self._headers(None))
        self._check_auth(me)
        self._expect(me, "read the user (GET /api/v1/me)")
        spaces = self._request("GET", "/api/v1/me/workspaces", headers=self._headers(None))
        self._check_auth(spaces)
        self._expect(spaces, "list workspaces")
        self._workspace_ids = {w["name"]: str(w["id"]) for w in _json(spaces).get("items") or []}
        if self.settings.workspace:
            self._workspace_id(self.settings.workspace)
            self._default_workspace = self.settings.workspace
        elif len(self._workspace_ids) == 1:
            self._default_workspace = next(iter(self._workspace_ids))

    def _workspace_id(self, name: str | None) -> str:
        name = name or self._default_workspace
        if name is None:
            known = ", ".join(sorted(self._workspace_ids)) or "none"
            raise DeliveryError(
                f"choose a workspace at {self.url} with --workspace or ARGILLA_WORKSPACE "
                f"(this user's workspaces: {known})"
            )
        if name not in self._workspace_ids:
            raise DeliveryError(f"workspace {name!r} is not one of this user's workspaces at {self.url}")
        return self._workspace_ids[name]

    def _expect(self, response: httpx.Response, doing: str) -> None:
        if response.status_code >= 300:
            raise DeliveryError(
                f"{self.url} refused to {doing} (HTTP {response.status_code}): {_detail(response)}"
            )

    def _call(self, method: str, path: str, body: Any = None) -> httpx.Response:
        content = orjson.dumps(body) if body is not None else None
        response = self._request(method, path, headers=self._headers(None), content=content)
        self._check_auth(response)
        return response

    # -- datasets -----------------------------------------------------------------------
    def _target(self, batch: Batch) -> _Target:
        workspace_id = self._workspace_id(batch.route.workspace or self.settings.workspace)
        key = (workspace_id, batch.route.dataset)
        target = self._targets.get(key)
        if target is not None:
            if target.task != batch.task and target.refused is None:
                # Another endpoint's records of another task go to the same dataset name.
                return _Target(workspace_id, target.name, batch.task, refused=self._task_clash(target, batch))
            return target
        target = _Target(workspace_id, batch.route.dataset, batch.task,
                         labels=batch.route.labels)  # fmt: skip
        self._targets[key] = target
        found = self._find(workspace_id, target.name)
        if found is None or found.get("status") == "draft":
            target.draft = found
            target.seen = Seen(batch.task)
        else:
            self._complete(target, found)
        return target

    @staticmethod
    def _task_clash(target: _Target, batch: Batch) -> str:
        return (
            f"dataset {target.name!r} already receives {target.task} records in this run, this record is "
            f"{batch.task}; route this endpoint to another dataset (dataset = ... in the config)"
        )

    def _find(self, workspace_id: str, name: str) -> dict[str, Any] | None:
        response = self._call(
            "GET", f"/api/v1/me/datasets?{httpx.QueryParams(name=name, workspace_id=workspace_id)}"
        )
        self._expect(response, "list datasets")
        for item in _json(response).get("items") or []:
            if item.get("name") == name and str(item.get("workspace_id")) == workspace_id:
                return item
        return None

    def _create(self, target: _Target) -> None:
        """Create (or complete) and publish the dataset with the labels known now."""
        assert target.seen is not None
        try:
            settings = dataset_settings(target.seen, target.labels or None)
        except ValueError as exc:
            target.refused = f"cannot create dataset {target.name!r}: {exc}"
            return
        dataset = target.draft
        if dataset is None:
            body = {"name": target.name, "workspace_id": target.workspace_id, "allow_extra_metadata": True}
            response = self._call("POST", "/api/v1/datasets", body)
            if response.status_code == 409:  # created meanwhile by another run
                dataset = self._find(target.workspace_id, target.name)
            else:
                self._expect(response, f"create dataset {target.name!r}")
                dataset = _json(response)
            if dataset is None:
                raise DeliveryError(f"{self.url}: dataset {target.name!r} exists but cannot be read")
        self._complete(target, dataset, settings)

    def _complete(
        self,
        target: _Target,
        dataset: dict[str, Any],
        settings: dict[str, list[dict[str, Any]]] | None = None,
    ) -> None:
        """Read the dataset's settings; add what is missing (all of it while a draft, metadata
        properties after), publish a draft, and keep the layout records are mapped to."""
        base = f"/api/v1/datasets/{dataset['id']}"
        paths = {
            "fields": f"{base}/fields",
            "questions": f"{base}/questions",
            "metadata-properties": f"/api/v1/me/datasets/{dataset['id']}/metadata-properties",
        }
        parts = {kind: self._items(path) for kind, path in paths.items()}
        if settings is None or dataset.get("status") != "draft":
            # Published: fields and questions are frozen, metadata properties can be added.
            settings = {"metadata-properties": metadata_bodies()}
        changed = False
        for kind, bodies in settings.items():
            have = {item["name"] for item in parts[kind]}
            post_to = f"{base}/{kind}"
            for body in bodies:
                if body["name"] in have:
                    continue
                response = self._call("POST", post_to, body)
                if response.status_code != 409:
                    self._expect(response, f"add {kind} {body['name']!r} to dataset {target.name!r}")
                changed = True
        if dataset.get("status") == "draft":
            response = self._call("PUT", f"{base}/publish")
            if not (response.status_code == 422 and "already been published" in response.text):
                self._expect(response, f"publish dataset {target.name!r}")
        if changed:
            parts = {kind: self._items(path) for kind, path in paths.items()}
        try:
            target.layout = layout_of(
                dataset, target.task, parts["fields"], parts["questions"], parts["metadata-properties"]
            )
        except RecordRefused as exc:
            target.refused = str(exc)

    def _items(self, path: str) -> list[dict[str, Any]]:
        response = self._call("GET", path)
        self._expect(response, f"read {path}")
        return list(_json(response).get("items") or [])

    # -- the sink protocol ----------------------------------------------------------------
    def add(self, batch: Batch) -> Delivery:
        delivery = Delivery()
        try:
            target = self._target(batch)
            if target.layout is None and target.refused is None:
                seen = target.seen
                assert seen is not None
                for record in batch.table["record"].to_pylist():
                    seen.add(orjson.loads(record))
                target.pending.append(batch)
                target.pending_rows += batch.table.num_rows
                if target.pending_rows >= PENDING_ROWS:
                    delivery.merge(self._release(target))
                return delivery
            delivery.merge(self._submit(target, batch))
        except DeliveryError as error:
            error.delivery.merge(delivery)
            self._drain_into(error.delivery)
            raise
        return delivery

    def flush(self) -> Delivery:
        delivery = Delivery()
        try:
            for target in list(self._targets.values()):
                if target.pending:
                    delivery.merge(self._release(target))
        except DeliveryError as error:
            error.delivery.merge(delivery)
            self._drain_into(error.delivery)
            raise
        delivery.merge(super().flush())
        return delivery

    def _release(self, target: _Target) -> Delivery:
        """Create the dataset from what its held records need, then send them."""
        self._create(target)
        held, target.pending, target.pending_rows, target.seen = target.pending, [], 0, None
        delivery = Delivery()
        for batch in held:
            delivery.merge(self._submit(target, batch))
        return delivery

    def _submit(self, target: _Target, batch: Batch) -> Delivery:
        delivery = Delivery()
        if target.refused is not None:
            delivery.refuse_batch(batch, target.refused)
            return delivery
        layout = target.layout
        assert layout is not None
        size = self.settings.batch_size
        try:
            for start in range(0, batch.table.num_rows, size):
                part = batch.table.slice(start, size)
                origins = None if batch.origins is None else batch.origins[start : start + size]
                self._inflight.append(
                    self._executor.submit(self._send_part, layout, batch.task, part, origins)
                )
                delivery.merge(self._harvest(block=len(self._inflight) >= 2 * self.settings.concurrency))
        except DeliveryError as error:
            error.delivery.merge(delivery)
            raise
        return delivery

    def _send_part(self, layout: Layout, task: str, part: pa.Table, origins: Any) -> Delivery:
        rows = rows_of(part, origins)
        delivery = Delivery()
        # external_id -> (the rows it stands for, the item): the same id twice in one
        # request fails all of it, and the later line is the one to keep.
        by_id: dict[str, tuple[list[dict[str, Any]], dict[str, Any]]] = {}
        for row in rows:
            try:
                item = to_item(task, orjson.loads(row["record"]), layout)
            except RecordRefused as exc:
                delivery.refuse(row, str(exc), "sink")
                continue
            earlier = by_id.pop(item["external_id"], None)
            by_id[item["external_id"]] = ((earlier[0] if earlier else []) + [row], item)
        if by_id:
            delivery.merge(self._send_items(layout, list(by_id.values())))
        return delivery

    def _send_items(
        self, layout: Layout, pairs: list[tuple[list[dict[str, Any]], dict[str, Any]]]
    ) -> Delivery:
        delivery = Delivery()
        path = f"/api/v1/datasets/{layout.id}/records/bulk"
        while pairs:
            response = self._call("PUT", path, {"items": [item for _, item in pairs]})
            status = response.status_code
            if status < 300:
                for rows, _ in pairs:
                    for row in rows:
                        delivery.written[row["endpoint"]] += 1
                return delivery
            if status == 422:
                named = _refused_positions(response, len(pairs))
                if named:
                    for index, reason in named.items():
                        message = f"server refused the record (HTTP 422): {reason}"
                        for row in pairs[index][0]:
                            delivery.refuse(row, message, "server")
                    pairs = [pair for i, pair in enumerate(pairs) if i not in named]
                    continue
            if status in (413, 422) and len(pairs) > 1:
                middle = len(pairs) // 2
                delivery.merge(self._send_items(layout, pairs[:middle]))
                delivery.merge(self._send_items(layout, pairs[middle:]))
                return delivery
            if status in (400, 413, 422):
                message = f"server refused the record (HTTP {status}): {_detail(response)}"
                for rows, _ in pairs:
                    for row in rows:
                        delivery.refuse(row, message, "server")
                return delivery
            if status == 404:
                raise DeliveryError(
                    f"dataset {layout.name!r} is gone from {self.url} (HTTP 404): {_detail(response)}; "
                    "run again to create it anew"
                )
            raise DeliveryError(f"{self.url} answered HTTP {status} to a bulk request: {_detail(response)}")
        return delivery


def _refused_positions(response: httpx.Response, count: int) -> dict[int, str]:
    """Which items of a refused bulk request the server named, with its reason for each.

    Domain errors say ``Record at position i is not valid because ...``; schema errors list
    ``loc: ["body", "items", i, ...]`` (argilla-server 2.8 ``errors/error_handler.py``).
    """
    detail = _json(response).get("detail")
    found: dict[int, str] = {}
    if isinstance(detail, str):
        match = _POSITION.match(detail)
        if match and int(match.group(1)) < count:
            found[int(match.group(1))] = " ".join(detail[match.end() :].split())[:500]
    elif isinstance(detail, dict):
        errors = (detail.get("params") or {}).get("errors") or []
        for error in errors:
            loc = error.get("loc") or []
            if len(loc) > 2 and loc[:2] == ["body", "items"] and isinstance(loc[2], int) and loc[2] < count:
                where = ".".join(str(part) for part in loc[3:])
                found.setdefault(loc[2], f"{where}: {error.get('msg')}"[:500])
    return found
