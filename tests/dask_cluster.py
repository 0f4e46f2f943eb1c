"""Real processes for the backfill tests: a Dask scheduler, Dask workers, and moto's S3 server.

Each is started as a user would start it (``dask scheduler``, ``dask worker``,
``moto_server``), bound to 127.0.0.1 on free ports, waited for, and stopped at the end.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import ROOT, free_port


def _bin(name: str) -> str:
    """The console script next to this interpreter (the venv's), else the one on PATH."""
    local = Path(sys.executable).with_name(name)
    found = str(local) if local.exists() else shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} is not installed: pip install -e '.[dask,test]'")
    return found


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    # Workers import ingest (and a test's mappers) from the checkout, as the CLI does.
    env = {**os.environ, **(extra or {})}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.pop("DASK_SCHEDULER_ADDRESS", None)
    return env


class DaskCluster:
    """``dask scheduler`` and ``workers`` x ``dask worker --nthreads 1`` on 127.0.0.1."""

    def __init__(
        self, workdir: Path, workers: int = 2, memory_limit: str = "1GiB", env: dict[str, str] | None = None
    ):
        self.workdir = workdir
        self.env = env  # added to every process's environment (object-store credentials)
        self.n_workers = workers
        self.memory_limit = memory_limit
        self.port = free_port()
        self.dashboard_port = free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        self.scheduler: subprocess.Popen | None = None
        self.workers: list[subprocess.Popen] = []

    def _spawn(self, args: list[str], log: str) -> subprocess.Popen:
        with open(self.workdir / log, "ab") as out:
            return subprocess.Popen(
                args, cwd=self.workdir, env=_env(self.env), stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,  # so that stop() can signal the nanny and its worker together
            )  # fmt: skip

    def start(self, seconds: float = 90) -> DaskCluster:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.scheduler = self._spawn(
            [_bin("dask"), "scheduler", "--host", "127.0.0.1", "--port", str(self.port),
             "--dashboard-address", f"127.0.0.1:{self.dashboard_port}",
             # a safety net: if the test run is killed before stop(), the scheduler goes
             # after 10 idle minutes, and the workers a minute later (--death-timeout)
             "--idle-timeout", "600s"],
            "scheduler.log",
        )  # fmt: skip
        for i in range(self.n_workers):
            self.add_worker(f"w{i}")
        self.wait_for_workers(self.n_workers, seconds)
        return self

    def add_worker(self, name: str) -> subprocess.Popen:
        proc = self._spawn(
            [_bin("dask"), "worker", self.address, "--name", name, "--host", "127.0.0.1",
             "--nthreads", "1", "--memory-limit", self.memory_limit, "--no-dashboard",
             "--local-directory", str(self.workdir / f"dask-{name}"), "--death-timeout", "60"],
            f"worker-{name}.log",
        )  # fmt: skip
        self.workers.append(proc)
        return proc

    def wait_for_workers(self, n: int, seconds: float = 90) -> None:
        from distributed import Client

        deadline = time.monotonic() + seconds
        while True:
            if self.scheduler is not None and self.scheduler.poll() is not None:
                raise RuntimeError(f"dask scheduler exited: {self.logs()}")
            try:
                with Client(self.address, timeout=5) as client:
                    client.wait_for_workers(n, timeout=max(1, deadline - time.monotonic()))
                    return
            except (OSError, TimeoutError) as exc:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{n} dask workers did not come up: {exc}\n{self.logs()}") from None
                time.sleep(0.2)

    def worker_pids(self) -> dict[str, int]:
        """Worker name -> pid of the worker process (a nanny's child), as the scheduler knows it."""
        from distributed import Client

        with Client(self.address, timeout=10) as client:
            names = {a: w["name"] for a, w in client.scheduler_info(n_workers=-1)["workers"].items()}
            return {names[a]: pid for a, pid in client.run(os.getpid).items() if a in names}

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(self.workdir.glob("*.log")))

    def stop(self) -> None:
        for proc in [*self.workers, self.scheduler]:
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in [*self.workers, self.scheduler]:
            if proc is None:
                continue
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)


class MotoS3:
    """moto's S3 server (``moto_server``) on a free port of 127.0.0.1."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self, seconds: float = 30) -> MotoS3:
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.workdir / "moto.log", "ab") as out:
            self.proc = subprocess.Popen(
                [_bin("moto_server"), "-H", "127.0.0.1", "-p", str(self.port)],
                cwd=self.workdir, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"moto_server exited: {(self.workdir / 'moto.log').read_text()}")
            try:
                httpx.get(self.url, timeout=1)
                return self
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError(f"moto_server on {self.url} did not start")

    def env(self) -> dict[str, str]:
        """What s3fs/botocore read to talk to this server instead of AWS."""
        return {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": self.url,
            "AWS_ENDPOINT_URL_S3": self.url,
        }

    def reset(self) -> None:
        httpx.post(self.url + "/moto-api/reset").raise_for_status()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
