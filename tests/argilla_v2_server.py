"""The real argilla-server 2.8 on 127.0.0.1, for tests and benchmarks.

argilla-server 2.8.0 and the official SDK (``argilla`` 2.8.0) conflict with the Argilla 1.x
client in the project's venv, so they live in a venv of their own, made on first use and
kept: ``.cache/argilla-server-venv`` (or ``$ARGILLA_SERVER_VENV``). A server here is the
real one, with SQLite in a temporary directory, its own ``redis-server`` (Debian's
package; the server pings Redis at start) on a free port with no persistence, and the
no-op search engine of tests/argilla_v2_launch.py, since Elasticsearch cannot be installed
here. Starting takes about 10 s (migrations, user creation, app start), so tests share one
per session.

By hand: ``python -m tests.argilla_v2_server --port 6900`` runs one until Ctrl-C and
prints its URL and API key.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
# A venv given in $ARGILLA_SERVER_VENV is used as it is; the default one is made and kept here.
GIVEN_VENV = os.environ.get("ARGILLA_SERVER_VENV")
VENV = Path(GIVEN_VENV or ROOT / ".cache" / "argilla-server-venv")
# click<8.2: the server's typer CLI breaks with newer click; the SDK imports requests
# without declaring it (shared/reference/argilla-v2-wire-protocol.md, "Sources").
REQUIREMENTS = ("argilla-server==2.8.0", "argilla==2.8.0", "click<8.2", "requests")
LAUNCHER = ROOT / "tests" / "argilla_v2_launch.py"
API_KEY = "owner.apikey.0123456789"
WORKSPACE = "argilla"


def server_python() -> Path:
    """The server venv's python, installing the venv first if it is missing or outdated."""
    python = VENV / "bin" / "python"
    if GIVEN_VENV:
        return python
    marker = VENV / ".requirements"
    wanted = "\n".join(REQUIREMENTS)
    if marker.exists() and marker.read_text() == wanted and python.exists():
        return python
    VENV.parent.mkdir(parents=True, exist_ok=True)
    with open(VENV.parent / ".argilla-server-venv.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two sessions at once install once
        if marker.exists() and marker.read_text() == wanted and python.exists():
            return python
        shutil.rmtree(VENV, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *REQUIREMENTS], check=True)
        marker.write_text(wanted)
    return python


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ArgillaV2Server:
    """One argilla-server process, its Redis and its SQLite file; ``start()`` then ``stop()``."""

    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.api_key = API_KEY
        self.home = Path(tempfile.mkdtemp(prefix="argilla-v2-"))
        self.log = self.home / "server.log"
        self.redis: subprocess.Popen | None = None
        self.proc: subprocess.Popen | None = None
        self.python = server_python()
        self.startup_seconds = 0.0

    def _env(self, redis_port: int) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ARGILLA_", "RUBRIX_"))}
        env.update(
            ARGILLA_HOME_PATH=str(self.home),
            ARGILLA_DATABASE_URL=f"sqlite+aiosqlite:///{self.home}/argilla.db",
            ARGILLA_REDIS_URL=f"redis://127.0.0.1:{redis_port}/0",
            ARGILLA_SEARCH_ENGINE="noop",
            HF_HUB_OFFLINE="1",  # the server reports telemetry to the Hugging Face hub unless told not to
            HF_HUB_DISABLE_TELEMETRY="1",
        )
        return env

    def start(self, seconds: float = 120) -> ArgillaV2Server:
        try:
            return self._start(seconds)
        except subprocess.CalledProcessError as exc:
            log = self.log.read_text()[-3000:]
            self.stop()
            raise RuntimeError(f"argilla-server setup failed: {exc}\n{log}") from exc
        except BaseException:
            self.stop()
            raise

    def _start(self, seconds: float) -> ArgillaV2Server:
        started = time.monotonic()
        redis_server = shutil.which("redis-server")
        if redis_server is None:
            raise RuntimeError("redis-server is not installed (Debian: apt-get install redis-server)")
        redis_port = free_port()
        self.redis = subprocess.Popen(
            [redis_server, "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.home)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        env = self._env(redis_port)
        server = [str(self.python), "-m", "argilla_server"]
        with self.log.open("ab") as out:
            subprocess.run([*server, "database", "migrate"], env=env, stdout=out, stderr=out, check=True)
            subprocess.run(
                [*server, "database", "users", "create", "--username", "owner", "--first-name", "Owner",
                 "--role", "owner", "--password", "owner-password", "--api-key", self.api_key,
                 "--workspace", WORKSPACE],
                env=env, stdout=out, stderr=out, check=True,
            )  # fmt: skip
            self.proc = subprocess.Popen(
                [str(self.python), str(LAUNCHER), "--host", "127.0.0.1", "--port", str(self.port)],
                env=env, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"argilla-server exited: {self.log.read_text()[-3000:]}")
            try:
                if httpx.get(self.url + "/api/v1/version", timeout=1).status_code == 200:
                    self.startup_seconds = time.monotonic() - started
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"argilla-server did not start in {seconds}s: {self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        for proc in (self.proc, self.redis):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        shutil.rmtree(self.home, ignore_errors=True)

    # -- reading and writing through the API, as the owner ---------------------------------
    @property
    def headers(self) -> dict[str, str]:
        return {"X-Argilla-Api-Key": self.api_key}

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.request(method, self.url + path, headers=self.headers, timeout=60, **kwargs)

    def ok(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.call(method, path, **kwargs)
        if response.status_code >= 300:
            raise AssertionError(f"{method} {path}: HTTP {response.status_code} {response.text}")
        return response.json()

    def new_workspace(self, name: str) -> str:
        return str(self.ok("POST", "/api/v1/workspaces", json={"name": name})["id"])

    def dataset(self, name: str, workspace: str) -> dict[str, Any] | None:
        """The dataset with its fields, questions and metadata properties, or None."""
        spaces = {w["name"]: w["id"] for w in self.ok("GET", "/api/v1/me/workspaces")["items"]}
        for item in self.ok("GET", "/api/v1/me/datasets")["items"]:
            if item["name"] == name and item["workspace_id"] == spaces.get(workspace):
                base = f"/api/v1/datasets/{item['id']}"
                item["fields"] = self.ok("GET", f"{base}/fields")["items"]
                item["questions"] = self.ok("GET", f"{base}/questions")["items"]
                item["metadata_properties"] = self.ok(
                    "GET", f"/api/v1/me/datasets/{item['id']}/metadata-properties"
                )["items"]
                return item
        return None

    def records(self, name: str, workspace: str) -> list[dict[str, Any]]:
        """Every record of the dataset with its suggestions, read from the server's database."""
        dataset = self.dataset(name, workspace)
        if dataset is None:
            return []
        found: list[dict[str, Any]] = []
        while True:
            page = self.ok(
                "GET",
                f"/api/v1/datasets/{dataset['id']}/records",
                params={"offset": len(found), "limit": 1000, "include": "suggestions"},
            )["items"]
            found.extend(page)
            if len(page) < 1000:
                return found

    def env(self, workspace: str | None = None) -> dict[str, str]:
        env = {"ARGILLA_API_URL": self.url, "ARGILLA_API_KEY": self.api_key}
        if workspace:
            env["ARGILLA_WORKSPACE"] = workspace
        return env


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Run the real argilla-server 2.8 on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=6900)
    args = parser.parse_args()
    server = ArgillaV2Server(port=args.port).start()
    print(
        f"argilla-server 2.8.0 at {server.url}, API key {server.api_key}, workspace {WORKSPACE!r}", flush=True
    )
    try:
        while server.proc is not None and server.proc.poll() is None:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
