"""The Rubrix sink: bulk-log records to a Rubrix 0.x or Argilla 1.x server.

Both server lines share the bulk API (``POST /api/datasets/{name}/{Task}:bulk``) and differ
in header names, which we pick from ``GET /api/_info``. Batches go out from a few threads
at once so a fast server is never waiting on us; each batch is retried on transient
failures with exponential backoff and jitter, within a bounded total time. A 422 (one bad
record fails the whole request) is answered by splitting the batch until the bad records
are isolated, so they go to the rejects file with the server's message and the rest are
delivered. Records keep their deterministic ids: a retry after a lost answer replaces
records on the server instead of duplicating them. The API key is only ever put in a
request header; no message, log line or reject includes it.
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import orjson
import pyarrow as pa

from ingest.errors import DeliveryError
from ingest.model import Batch, Delivery, rows_of
from ingest.settings import ServerSettings
from ingest.transform.routing import Route

TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})
SPLIT_STATUS = frozenset({413, 422})  # the batch as a whole was refused: isolate the cause
BACKOFF_BASE = 0.2
BACKOFF_CAP = 10.0


class _Stopped(DeliveryError):
    """A send abandoned because another one failed for good: never the reason to report."""


def display_url(url: str) -> str:
    """The URL without any user:password part, for messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", "")).rstrip("/")


class RubrixSink:
    def __init__(self, settings: ServerSettings, transport: httpx.BaseTransport | None = None):
        """Connect (``GET /api/_info``, ``/api/me``); DeliveryError when that fails.

        ``transport`` replaces the network (tests give an ``httpx.MockTransport``).
        """
        self.settings = settings
        self.url = display_url(settings.url)
        where = f", workspace {settings.workspace}" if settings.workspace else ""
        self.description = f"rubrix {self.url}{where}"
        self._client = httpx.Client(
            base_url=settings.url.rstrip("/"),
            timeout=settings.timeout,
            limits=httpx.Limits(max_connections=settings.concurrency + 2),
            transport=transport,
        )
        self._executor = ThreadPoolExecutor(settings.concurrency, thread_name_prefix="rubrix-sink")
        self._inflight: deque[Future[Delivery]] = deque()
        self._stop = threading.Event()
        self._ready: dict[tuple[str | None, str], str | None] = {}  # (workspace, dataset) -> conflict
        self._workspaces: list[str] | None = None
        self._key_header = self._ws_header = ""
        self.server_version = ""
        self.connect()

    # -- handshake --------------------------------------------------------------------
    def connect(self) -> None:
        info = self._request("GET", "/api/_info", headers={})
        if info.status_code >= 400:
            raise DeliveryError(f"{self.url} does not answer like a Rubrix server (HTTP {info.status_code})")
        body = _json(info)
        if not body:
            # An Argilla 2.x server answers every unknown GET, /api/_info too, with its web page.
            raise DeliveryError(
                f"{self.url} does not answer like a Rubrix server (GET /api/_info gave no JSON); "
                'for an Argilla 2.x server leave api unset or set api = "v2" in [rubrix]'
            )
        self.server_version = str(body.get("version") or body.get("rubrix_version") or "")
        line = "rubrix" if self.server_version.startswith("0.") else "argilla"
        self._key_header, self._ws_header = f"X-{line.title()}-Api-Key", f"X-{line.title()}-Workspace"
        self._api_key = self.settings.api_key or f"{line}.apikey"
        me = self._request("GET", "/api/me", headers=self._headers(None))
        self._check_auth(me)
        workspaces = _json(me).get("workspaces")
        self._workspaces = [str(w) for w in workspaces] if isinstance(workspaces, list) else None
        self._check_workspace(self.settings.workspace)

    def _headers(self, workspace: str | None) -> dict[str, str]:
        headers = {self._key_header: self._api_key, "Content-Type": "application/json"}
        if workspace:
            headers[self._ws_header] = workspace
        return headers

    def _check_auth(self, response: httpx.Response) -> None:
        if response.status_code in (401, 403):
            self._stop.set()
            raise DeliveryError(
                f"{self.url} refused the request (HTTP {response.status_code}): "
                f"{_detail(response)}; check the API key and workspace"
            )

    def _check_workspace(self, workspace: str | None) -> None:
        if workspace and self._workspaces is not None and workspace not in self._workspaces:
            raise DeliveryError(f"workspace {workspace!r} is not one of this user's workspaces at {self.url}")

    # -- requests with retries -----------------------------------------------------------
    def _request(
        self, method: str, path: str, *, headers: dict[str, str], content: bytes | None = None
    ) -> httpx.Response:
        deadline = time.monotonic() + self.settings.retry_for
        attempt = 0
        while True:
            retry_after = None
            try:
                response = self._client.request(method, path, headers=headers, content=content)
                if response.status_code not in TRANSIENT_STATUS:
                    return response
                reason = f"HTTP {response.status_code}"
                retry_after = _retry_after(response)
            except httpx.TransportError as exc:
                reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            attempt += 1
            delay = min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt) * random.uniform(0.5, 1.0)
            if retry_after is not None:
                delay = max(delay, min(retry_after, BACKOFF_CAP))
            if self._stop.is_set():
                raise _Stopped(f"{self.url}: stopped after an earlier failure")
            if time.monotonic() + delay > deadline:
                self._stop.set()
                raise DeliveryError(
                    f"cannot reach {self.url}: {reason} (gave up after {attempt} attempts "
                    f"in {self.settings.retry_for:g}s)"
                )
            self._stop.wait(delay)

    # -- datasets -----------------------------------------------------------------------
    def dataset_info(self, route: Route) -> tuple[str | None, bool | None]:
        """(task, multi_label) of the dataset on the server, None for what it does not say.

        The task from ``GET /api/datasets/{name}``; multi_label from one of its records
        (``:search`` with ``limit=1``), since Argilla 1.x keeps it per record and refuses
        records that differ from the dataset's existing ones.
        """
        workspace = route.workspace or self.settings.workspace
        headers = self._headers(workspace)
        response = self._request("GET", f"/api/datasets/{route.dataset}", headers=headers)
        self._check_auth(response)
        if response.status_code >= 400:
            return None, None  # 404: a new dataset
        task = _json(response).get("task")
        if task != "TextClassification":
            return task, None
        found = self._request(
            "POST", f"/api/datasets/{route.dataset}/{task}:search?limit=1", headers=headers, content=b"{}"
        )
        self._check_auth(found)
        records = _json(found).get("records") if found.status_code < 300 else None
        if isinstance(records, list) and records and isinstance(records[0], dict):
            return task, bool(records[0].get("multi_label"))
        return task, None

    def _ensure_dataset(self, batch: Batch, workspace: str | None) -> str | None:
        """Create the dataset if missing; the reason its records cannot go there, if any."""
        key = (workspace, batch.route.dataset)
        if key in self._ready:
            return self._ready[key]
        self._check_workspace(workspace)
        body = {
            "id": None, "name": batch.route.dataset, "task": batch.task, "owner": None,
            "workspace": workspace, "created_at": None, "last_updated": None,
            "tags": batch.route.tags, "metadata": {},
        }  # fmt: skip
        response = self._request(
            "POST", "/api/datasets", headers=self._headers(workspace), content=orjson.dumps(body)
        )
        self._check_auth(response)
        conflict = None
        if response.status_code == 409:
            existing = self._request(
                "GET", f"/api/datasets/{batch.route.dataset}", headers=self._headers(workspace)
            )
            self._check_auth(existing)
            task = _json(existing).get("task")
            if task and task != batch.task:
                conflict = (
                    f"dataset {batch.route.dataset!r} on the server holds {task} records, this record is "
                    f"{batch.task}; configure a dataset or mapper for this endpoint"
                )
        elif response.status_code >= 400:
            raise DeliveryError(
                f"{self.url} refused to create dataset {batch.route.dataset!r} "
                f"(HTTP {response.status_code}): {_detail(response)}"
            )
        self._ready[key] = conflict
        return conflict

    # -- the sink protocol ----------------------------------------------------------------
    def add(self, batch: Batch) -> Delivery:
        workspace = batch.route.workspace or self.settings.workspace
        try:
            conflict = self._ensure_dataset(batch, workspace)
        except DeliveryError as error:
            self._drain_into(error.delivery)
            raise
        delivery = Delivery()
        if conflict:
            delivery.refuse_batch(batch, conflict)
            return delivery
        size = self.settings.batch_size
        try:
            for start in range(0, batch.table.num_rows, size):
                part = batch.table.slice(start, size)
                origins = None if batch.origins is None else batch.origins[start : start + size]
                self._inflight.append(self._executor.submit(self._send, batch, workspace, part, origins))
                delivery.merge(self._harvest(block=len(self._inflight) >= 2 * self.settings.concurrency))
        except DeliveryError as error:
            error.delivery.merge(delivery)  # acknowledged earlier in this call: still delivered
            raise
        return delivery

    def flush(self) -> Delivery:
        delivery = Delivery()
        try:
            while self._inflight:
                delivery.merge(self._harvest(block=True))
        except DeliveryError as error:
            error.delivery.merge(delivery)
            raise
        return delivery

    def close(self) -> None:
        self._stop.set()
        self._executor.shutdown(wait=True, cancel_futures=True)
        self._client.close()

    def _harvest(self, block: bool) -> Delivery:
        """Collect finished sends (waiting for one when ``block``); re-raise the first failure.

        On failure, the sends already under way are waited for, and everything the server
        acknowledged travels with the exception, so the summary counts exactly that.
        """
        if block and self._inflight:
            wait(list(self._inflight), return_when=FIRST_COMPLETED)
        delivery = Delivery()
        failures: list[BaseException] = []
        for future in [f for f in self._inflight if f.done()]:
            self._inflight.remove(future)
            failure = self._collect(future, delivery)
            if failure is not None:
                failures.append(failure)
        if failures:
            failures += self._drain_into(delivery)
            # The send that gave up says why; the others only say that they stopped.
            failure = next((f for f in failures if not isinstance(f, _Stopped)), failures[0])
            if isinstance(failure, DeliveryError):
                failure.delivery.merge(delivery)
            raise failure
        return delivery

    def _drain_into(self, delivery: Delivery) -> list[BaseException]:
        """Stop retrying, wait for the sends under way, keep what they delivered and
        return how the others failed."""
        self._stop.set()
        wait(list(self._inflight))
        failures = [f for f in (self._collect(future, delivery) for future in self._inflight) if f]
        self._inflight.clear()
        return failures

    @staticmethod
    def _collect(future: Future[Delivery], into: Delivery) -> BaseException | None:
        error = future.exception()
        if error is None:
            into.merge(future.result())
        return error

    def _send(self, batch: Batch, workspace: str | None, part: pa.Table, origins: Any) -> Delivery:
        return self._send_rows(batch, workspace, rows_of(part, origins))

    def _send_rows(self, batch: Batch, workspace: str | None, rows: list[dict[str, Any]]) -> Delivery:
        tags = orjson.dumps(batch.route.tags)
        content = (
            b'{"tags":'
            + tags
            + b',"metadata":{},"records":['
            + ",".join(r["record"] for r in rows).encode()
            + b"]}"
        )
        path = f"/api/datasets/{batch.route.dataset}/{batch.task}:bulk"
        response = self._request("POST", path, headers=self._headers(workspace), content=content)
        self._check_auth(response)
        delivery = Delivery()
        if response.status_code < 300:
            for row in rows:
                delivery.written[row["endpoint"]] += 1
            return delivery
        if response.status_code in SPLIT_STATUS and len(rows) > 1:
            middle = len(rows) // 2
            delivery.merge(self._send_rows(batch, workspace, rows[:middle]))
            delivery.merge(self._send_rows(batch, workspace, rows[middle:]))
            return delivery
        if response.status_code in SPLIT_STATUS or response.status_code == 400:
            reason = f"server refused the record (HTTP {response.status_code}): {_detail(response)}"
            for row in rows:
                delivery.refuse(row, reason, "server")
            return delivery
        raise DeliveryError(
            f"{self.url} answered HTTP {response.status_code} to a bulk request: {_detail(response)}"
        )


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _detail(response: httpx.Response) -> str:
    """The server's error message, on one line and capped."""
    detail: Any = _json(response).get("detail", response.text)
    text = detail if isinstance(detail, str) else orjson.dumps(detail).decode()
    return " ".join(text.split())[:500]


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
