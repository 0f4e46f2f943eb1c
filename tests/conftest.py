"""Shared helpers: write real log files, run the real CLI in a subprocess, read the store."""

from __future__ import annotations

import itertools
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_LOGS = ROOT / "sample_logs"

if TYPE_CHECKING:
    from tests.argilla_v2_server import ArgillaV2Server


def entry(path: str = "/spacy/", request: Any = None, response: Any = None, **fields: Any) -> dict:
    base = {
        "ts": "2026-11-24T10:00:00Z",
        "path": path,
        "status": 200,
        "request": ["I live in Paris."] if request is None else request,
        "response": (
            [{"text": "I live in Paris.", "entities": [{"label": "GPE", "start": 10, "end": 15}]}]
            if response is None
            else response
        ),
    }
    base.update(fields)
    return base


def write_log(path: Path, entries: list[Any], trailing_newline: bool = True) -> Path:
    lines = [e if isinstance(e, str) else json.dumps(e, ensure_ascii=False) for e in entries]
    text = "\n".join(lines) + ("\n" if trailing_newline else "")
    path.write_text(text, encoding="utf-8")
    return path


class Ingest:
    """Runs ``python -m ingest`` in a working directory, as a user would from a shell."""

    def __init__(self, cwd: Path):
        self.cwd = cwd
        self.store = cwd / "rubrix-store"
        self.prefix: list[str] = []  # e.g. a command that drops privileges, for permission tests

    def __call__(
        self,
        *args: str,
        input: bytes | None = None,
        env: dict[str, str] | None = None,
        check: bool = True,
    ) -> subprocess.CompletedProcess:
        # The developer's own Rubrix settings must not leak into a test run.
        inherited = {k: v for k, v in os.environ.items() if not k.startswith(("RUBRIX_", "ARGILLA_"))}
        full_env = {**inherited, **(env or {})}
        proc = subprocess.run(
            [*self.prefix, sys.executable, "-m", "ingest", *args],
            cwd=self.cwd,
            input=input,
            capture_output=True,
            env=full_env,
            timeout=300,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"ingest {' '.join(args)} exited {proc.returncode}\n"
                f"stdout: {proc.stdout.decode()}\nstderr: {proc.stderr.decode()}"
            )
        return proc

    def json(self, *args: str, **kwargs: Any) -> dict:
        proc = self(*args, "--json", **kwargs)
        return json.loads(proc.stdout)

    def dataset(self, name: str) -> pd.DataFrame:
        return pd.read_parquet(self.store / name)

    def records(self, name: str) -> list[dict]:
        return [json.loads(r) for r in self.dataset(name)["record"]]

    def rejects(self) -> list[dict]:
        found = []
        for path in sorted((self.store / "_rejects").glob("*.jsonl")):
            # split on newlines only: splitlines() also cuts at U+2028 or U+0085 inside a raw line
            found.extend(json.loads(line) for line in path.read_text().split("\n")[:-1])
        return found


@pytest.fixture
def ingest(tmp_path: Path) -> Ingest:
    return Ingest(tmp_path)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RubrixServer:
    """The test server (tests/rubrix_server.py) in its own uvicorn process on 127.0.0.1."""

    def __init__(self, line: str = "argilla", api_key: str | None = None, port: int | None = None):
        self.line = line
        self.api_key = api_key or f"{line}.apikey"
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self, wait: bool = True) -> RubrixServer:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.rubrix_server", "--port", str(self.port), "--line", self.line,
             "--api-key", self.api_key],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, seconds: float = 20) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                httpx.get(self.url + "/api/_info", timeout=1)
                return
            except httpx.TransportError:
                time.sleep(0.05)
        raise RuntimeError(f"test server on {self.url} did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)

    def reset(self) -> None:
        httpx.post(self.url + "/_test/reset")

    def faults(self, **faults: Any) -> None:
        httpx.post(self.url + "/_test/faults", json=faults).raise_for_status()

    def records(self, dataset: str, workspace: str | None = None) -> list[dict]:
        workspace = workspace or self.line
        return httpx.get(f"{self.url}/_test/records/{workspace}/{dataset}").json()["records"]

    def dataset(self, dataset: str, workspace: str | None = None) -> dict | None:
        workspace = workspace or self.line
        return httpx.get(f"{self.url}/_test/records/{workspace}/{dataset}").json()["dataset"]

    def calls(self) -> list[dict]:
        return httpx.get(self.url + "/_test/calls").json()

    def env(self) -> dict[str, str]:
        return {"RUBRIX_API_URL": self.url, "RUBRIX_API_KEY": self.api_key}


@pytest.fixture(scope="session")
def rubrix_server() -> Iterator[RubrixServer]:
    server = RubrixServer(api_key="sk-test-0123456789abcdef").start()
    yield server
    server.stop()


@pytest.fixture
def server(rubrix_server: RubrixServer) -> RubrixServer:
    rubrix_server.reset()
    return rubrix_server


@pytest.fixture(scope="session")
def argilla_v2() -> Iterator[ArgillaV2Server]:
    """The real argilla-server 2.8 (tests/argilla_v2_server.py), one per session: it takes
    about 10 s to start, and the 2.x tests and the backfill's share it."""
    from tests.argilla_v2_server import ArgillaV2Server

    server = ArgillaV2Server().start()
    yield server
    server.stop()


_workspaces = itertools.count()


@pytest.fixture
def workspace(argilla_v2: ArgillaV2Server) -> str:
    """A fresh workspace per test on the 2.x server: datasets are found by name within one."""
    name = f"ws{next(_workspaces)}-{int(time.time() * 1000) % 100000}"
    argilla_v2.new_workspace(name)
    return name


class Service:
    """An ASGI app (``module:attr``) served by real uvicorn processes on 127.0.0.1."""

    def __init__(self, app: str, cwd: Path, env: dict[str, str] | None = None, workers: int = 1):
        self.app = app
        self.cwd = cwd
        self.env = {**os.environ, **(env or {})}
        self.workers = workers
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = cwd / f"uvicorn-{self.port}.log"
        self.proc: subprocess.Popen | None = None

    def start(self, ready_path: str = "/health", seconds: float = 120) -> Service:
        self.env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), self.env.get("PYTHONPATH")]))
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", self.app, "--host", "127.0.0.1", "--port", str(self.port),
                 "--workers", str(self.workers), "--log-level", "info", "--no-access-log"],
                cwd=self.cwd, env=self.env, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.app} exited: {self.log.read_text()}")
            try:
                if httpx.get(self.url + ready_path, timeout=1).status_code < 500:
                    return self
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError(f"{self.app} did not start: {self.log.read_text()}")

    def stop(self) -> str:
        """SIGTERM, as a process manager would; returns what the server printed."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(60)
        return self.log.read_text()
