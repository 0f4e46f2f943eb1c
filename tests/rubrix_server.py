"""A local stand-in for a Rubrix / Argilla 1.x server, for tests and benchmarks.

It follows ../shared/reference/rubrix-wire-protocol.md: the calls the official client makes,
dataset creation, bulk upsert by id per (workspace, dataset), both header styles, an API
key check, and the server's record validation with whole-request 422s. The validation is
written here independently of ``ingest.validate`` (pydantic models, as the real server
uses) and checks alignment with Argilla's own ``SpanUtils``, so the two can disagree and a
test will notice. Control endpoints under ``/_test`` read back what was stored and make
the server misbehave: fail the next N requests with a status, delay, or drop connections.

Run: ``python -m tests.rubrix_server --port 6900 [--line rubrix|argilla] [--api-key KEY]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from argilla.utils.span_utils import SpanUtils
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

Score = Annotated[float, Field(ge=0.0, le=1.0)]
Label = Annotated[str, Field(min_length=1, max_length=128)] | int
Status = Literal["Default", "Edited", "Discarded", "Validated"]


class _Record(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str | int | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    event_timestamp: datetime | None = None
    status: Status | None = None
    annotation: Any = None
    vectors: Any = None
    metrics: Any = None
    search_keywords: Any = None


class ClassScore(BaseModel):
    class_: Label = Field(alias="class")
    score: Score


class TextClassificationPrediction(BaseModel):
    agent: str | None = None
    labels: list[ClassScore]


class TextClassificationRecord(_Record):
    inputs: dict[str, str | list[str]]
    prediction: TextClassificationPrediction | None = None
    multi_label: bool = False
    explanation: Any = None

    @field_validator("inputs")
    @classmethod
    def _not_empty(cls, inputs: dict) -> dict:
        if not inputs:
            raise ValueError("inputs must not be empty")
        return inputs

    @model_validator(mode="after")
    def _single_label_sum(self) -> TextClassificationRecord:
        if self.prediction and not self.multi_label:
            total = sum(label.score for label in self.prediction.labels)
            if total > 1.001:
                raise ValueError(f"Wrong score distributions: sum of scores is {total} (> 1.001)")
        return self


class Entity(BaseModel):
    start: int
    end: int
    label: Annotated[str, Field(min_length=1, max_length=128)]
    score: Score = 1.0

    @model_validator(mode="after")
    def _ordered(self) -> Entity:
        if not self.start < self.end:
            raise ValueError(f"entity start {self.start} must be smaller than end {self.end}")
        return self


class TokenClassificationPrediction(BaseModel):
    agent: str | None = None
    entities: list[Entity]
    score: Score | None = None


class TokenClassificationRecord(_Record):
    tokens: Annotated[list[str], Field(min_length=1)]
    text: str
    prediction: TokenClassificationPrediction | None = None

    @model_validator(mode="after")
    def _aligned(self) -> TokenClassificationRecord:
        utils = SpanUtils(self.text, self.tokens)  # raises when a token is not in the text
        if self.prediction:
            spans = [(e.label, e.start, e.end) for e in self.prediction.entities]
            try:
                utils.validate(spans)
            except ValueError:
                utils.validate(utils.correct(spans))
        return self


class Sentence(BaseModel):
    text: str
    score: Score = 1.0


class Text2TextPrediction(BaseModel):
    agent: str | None = None
    sentences: list[Sentence]


class Text2TextRecord(_Record):
    text: str
    prediction: Text2TextPrediction | None = None


RECORD_MODELS: dict[str, type[_Record]] = {
    "TextClassification": TextClassificationRecord,
    "TokenClassification": TokenClassificationRecord,
    "Text2Text": Text2TextRecord,
}
DATASET_NAME = r"^(?!-|_)[a-z0-9-_]+$"


class DatasetCreate(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str
    task: Literal["TextClassification", "TokenClassification", "Text2Text"]
    workspace: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _valid_name(cls, name: str) -> str:
        if not re.match(DATASET_NAME, name):
            raise ValueError(f"string does not match regex {DATASET_NAME!r}")
        return name


def _error(status: int, code: str, **params: Any) -> JSONResponse:
    return JSONResponse({"detail": {"code": f"argilla.api.errors::{code}", "params": params}}, status)


class Faults:
    """Misbehaviour the tests ask for, applied to the next requests under /api."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.pass_next = 0  # requests answered normally before the injected failures start
        self.fail_next = 0
        self.fail_status = 500
        self.drop_next = 0  # store the records, then cut the connection before answering
        self.delay = 0.0
        self.retry_after: str | None = None


def create_app(
    line: str = "argilla", api_key: str | None = None, workspaces: tuple[str, ...] = ()
) -> FastAPI:
    prefix = "Rubrix" if line == "rubrix" else "Argilla"
    key_header, ws_header = f"x-{prefix.lower()}-api-key", f"x-{prefix.lower()}-workspace"
    api_key = api_key or f"{prefix.lower()}.apikey"
    user_workspaces = list(workspaces) or [prefix.lower(), "team-a"]
    version = "0.18.0" if line == "rubrix" else "1.29.0"
    app = FastAPI()
    datasets: dict[tuple[str, str], dict[str, Any]] = {}
    stored: dict[tuple[str, str], dict[Any, dict[str, Any]]] = {}
    calls: list[dict[str, Any]] = []
    faults = Faults()
    app.state.stored, app.state.calls, app.state.faults = stored, calls, faults

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(422, "ValidationError", extra=_jsonable(exc.errors()))

    @app.middleware("http")
    async def _gate(request: Request, call_next: Any) -> Any:
        path = request.url.path
        if path.startswith("/_test"):
            return await call_next(request)
        calls.append({"method": request.method, "path": path, "headers": dict(request.headers)})
        if faults.delay:
            await asyncio.sleep(faults.delay)
        if faults.pass_next > 0:
            faults.pass_next -= 1
        elif faults.fail_next > 0:
            faults.fail_next -= 1
            headers = {"Retry-After": faults.retry_after} if faults.retry_after else None
            return JSONResponse({"detail": "injected failure"}, faults.fail_status, headers=headers)
        if path != "/api/_info" and request.headers.get(key_header) != api_key:
            return _error(401, "UnauthorizedError", detail="Could not validate credentials")
        workspace = request.headers.get(ws_header)
        if workspace is not None and workspace not in user_workspaces:
            return _error(403, "ForbiddenOperationError", detail=f"workspace {workspace} not allowed")
        return await call_next(request)

    load = {"inflight": 0, "peak": 0}  # bulk requests being answered, and their most at once

    @app.middleware("http")
    async def _count_bulk(request: Request, call_next: Any) -> Any:
        if not request.url.path.endswith(":bulk"):
            return await call_next(request)
        load["inflight"] += 1
        load["peak"] = max(load["peak"], load["inflight"])
        try:
            return await call_next(request)
        finally:
            load["inflight"] -= 1

    @app.get("/api/_info")
    async def info() -> dict:
        return {"version": version}

    @app.get("/api/me")
    async def me() -> dict:
        return {
            "id": str(uuid.UUID(int=1)),
            "first_name": prefix.lower(),
            "last_name": None,
            "full_name": prefix.lower(),
            "username": prefix.lower(),
            "role": "owner",
            "workspaces": user_workspaces,
            "api_key": api_key,
            "inserted_at": "2026-01-01T00:00:00",
            "updated_at": "2026-01-01T00:00:00",
        }

    @app.get("/api/v1/me/workspaces")
    async def my_workspaces() -> dict:
        return {
            "items": [
                {
                    "id": str(uuid.uuid5(uuid.NAMESPACE_DNS, w)),
                    "name": w,
                    "inserted_at": "2026-01-01T00:00:00",
                    "updated_at": "2026-01-01T00:00:00",
                }
                for w in user_workspaces
            ]
        }

    def _workspace(request: Request) -> str:
        return request.headers.get(ws_header) or user_workspaces[0]

    @app.post("/api/datasets")
    async def create_dataset(body: DatasetCreate, request: Request) -> Any:
        workspace = body.workspace or _workspace(request)
        key = (workspace, body.name)
        if key in datasets:
            return _error(409, "EntityAlreadyExistsError", name=body.name, type="Dataset")
        datasets[key] = {
            "id": str(uuid.uuid4()),
            "name": body.name,
            "task": body.task,
            "workspace": workspace,
            "tags": body.tags,
            "metadata": body.metadata,
            "owner": workspace,
            "created_at": datetime.now().isoformat(),
            "last_updated": datetime.now().isoformat(),
        }
        stored.setdefault(key, {})
        return datasets[key]

    @app.get("/api/datasets/{name}")
    async def get_dataset(name: str, request: Request) -> Any:
        found = datasets.get((_workspace(request), name))
        return found or _error(404, "EntityNotFoundError", name=name, type="Dataset")

    @app.post("/api/datasets/{name}/{task}:bulk")
    async def bulk(name: str, task: str, request: Request) -> Any:
        model = RECORD_MODELS.get(task)
        if model is None:
            return _error(404, "EntityNotFoundError", name=task, type="Task")
        body = await request.json()
        try:
            records = [model.model_validate(r) for r in body.get("records", [])]
        except ValidationError as exc:
            return _error(422, "ValidationError", extra=_jsonable(exc.errors()))
        key = (_workspace(request), name)
        dataset = datasets.get(key)
        if dataset is None:  # the real server creates the dataset on first bulk
            dataset = datasets[key] = {
                "name": name,
                "task": task,
                "workspace": key[0],
                "tags": body.get("tags") or {},
            }
        if dataset["task"] != task:
            return _error(400, "WrongTaskError", detail=f"Provided task {task} cannot be applied to dataset")
        target = stored.setdefault(key, {})
        if task == "TextClassification" and records:
            # Argilla 1.x: a bulk's records must agree (TextClassificationBulkRequest's
            # validator, 422), and agree with the dataset's existing records
            # (TextClassificationService._check_multi_label_integrity, 400).
            kinds = {bool(r.multi_label) for r in records}
            if len(kinds) > 1:
                return _error(422, "ValidationError", detail="All records must be single/multi labelled")
            existing = next(iter(target.values()), None)
            if existing is not None and bool(existing.get("multi_label")) != records[0].multi_label:

                def kind(multi: bool) -> str:
                    return "multi" if multi else "single"

                return _error(
                    400,
                    "BadRequestError",
                    detail=(
                        f"Can't mix multi-label and single-label records for dataset {name}. Dataset type is "
                        f"{kind(bool(existing.get('multi_label')))}-label and provided records are "
                        f"{kind(records[0].multi_label)}-label."
                    ),
                )
        for raw, record in zip(body["records"], records, strict=True):
            target[record.id if record.id is not None else str(uuid.uuid4())] = raw
        return {"dataset": name, "processed": len(records), "failed": 0}

    @app.post("/api/datasets/{name}/{task}:search")
    async def search(name: str, task: str, request: Request, limit: int = 50) -> Any:
        """The records of a dataset, newest last; no query support (none is needed here)."""
        key = (_workspace(request), name)
        dataset = datasets.get(key)
        if dataset is None:
            return _error(404, "EntityNotFoundError", name=name, type="Dataset")
        records = list(stored.get(key, {}).values())
        return {"total": len(records), "records": records[:limit], "aggregations": None}

    # -- control endpoints for tests ----------------------------------------------------
    @app.get("/_test/records/{workspace}/{name}")
    async def read_back(workspace: str, name: str) -> dict:
        return {
            "dataset": datasets.get((workspace, name)),
            "records": list(stored.get((workspace, name), {}).values()),
        }

    @app.get("/_test/calls")
    async def read_calls() -> list:
        return calls

    @app.get("/_test/load")
    async def read_load() -> dict:
        return load

    @app.post("/_test/faults")
    async def set_faults(request: Request) -> dict:
        body = await request.json()
        faults.reset()
        for key, value in body.items():
            setattr(faults, key, value)
        return {"ok": True}

    @app.post("/_test/reset")
    async def reset() -> dict:
        datasets.clear()
        stored.clear()
        calls.clear()
        faults.reset()
        load["peak"] = 0
        return {"ok": True}

    return DropConnections(app, faults)


class DropConnections:
    """Lets a bulk request do its work, then cuts the connection instead of answering.

    The worst case for a client: the records are stored but the answer never arrives, so
    it must retry, and only ids keep the retry from duplicating them.
    """

    def __init__(self, app: FastAPI, faults: Faults):
        self.app, self.faults, self.state = app, faults, app.state

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not self.faults.drop_next or not scope["path"].endswith(":bulk"):
            await self.app(scope, receive, send)
            return
        self.faults.drop_next -= 1

        async def swallow(message: dict) -> None:
            pass

        await self.app(scope, receive, swallow)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"100")]})
        raise RuntimeError("connection dropped on purpose")  # uvicorn closes the socket


def _jsonable(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"loc": list(e.get("loc", ())), "msg": str(e.get("msg")), "type": e.get("type")} for e in errors]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=6900)
    parser.add_argument("--line", choices=("argilla", "rubrix"), default="argilla")
    parser.add_argument("--api-key", default=os.environ.get("TEST_SERVER_API_KEY"))
    parser.add_argument(
        "--workspace", dest="workspaces", action="append", default=[], help="repeatable; default: two"
    )
    args = parser.parse_args()
    import uvicorn

    prefix = "rubrix" if args.line == "rubrix" else "argilla"
    api_key = args.api_key or f"{prefix}.apikey"
    workspaces = tuple(args.workspaces) or (prefix, "team-a")
    app = create_app(args.line, api_key, workspaces)
    # A test server has a well-known key: printing it is what lets someone try the tool.
    print(banner(args.line, f"http://127.0.0.1:{args.port}", api_key, workspaces), flush=True)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


def banner(line: str, url: str, api_key: str, workspaces: tuple[str, ...]) -> str:
    """What a user needs to point ``ingest`` at this server."""
    server = "Rubrix 0.18 (rubrix line)" if line == "rubrix" else "Argilla 1.29 (argilla line)"
    return (
        f"test server: {server} at {url}\n"
        f"  API key it accepts: {api_key}\n"
        f"  workspaces: {', '.join(workspaces)} (the first is the default)\n"
        f"  try: RUBRIX_API_URL={url} RUBRIX_API_KEY={api_key} ingest sample_logs/"
    )


if __name__ == "__main__":
    main()
