"""Where everything in a local store lies: the one place that spells out its paths.

::

    <store>/
      <dataset>/_dataset.json                       name, task, tags, workspace
      <dataset>/date=YYYY-MM-DD/part-*.parquet      records, partitioned by the request's UTC date
      <dataset>/date=YYYY-MM-DD/.part-*.parquet.tmp a part file being written (readers skip it)
      _runs.jsonl                                   the run log (one line per finished run)
      _state.sqlite                                 checkpoints (default; --state moves it)
      _rejects/<time>.jsonl, push-<time>.jsonl      rejects of runs and pushes
      _backfill/<run>.jsonl                         a backfill's finished tasks (ingest/runners/dask.py)

Datasets are directories holding a ``_dataset.json``; names starting with ``_`` are the
store's own (dataset names cannot start with ``_``: the server's rule).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow.dataset as ds

DATASET_META = "_dataset.json"
RUNS_FILE = "_runs.jsonl"
STATE_FILE = "_state.sqlite"
REJECTS_DIR = "_rejects"
BACKFILL_DIR = "_backfill"


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write a file whole or not at all: a temporary file, fsynced, renamed into place."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


class StoreLayout:
    """The paths of one local store, its scans, and its datasets' ``_dataset.json``."""

    def __init__(self, root: Path):
        self.root = root

    # -- the store's own files ----------------------------------------------------------
    @property
    def runs_file(self) -> Path:
        return self.root / RUNS_FILE

    @property
    def state_file(self) -> Path:
        return self.root / STATE_FILE

    def rejects_file(self, stamp: str, prefix: str = "") -> Path:
        """``_rejects/<prefix><stamp>.jsonl``; ``stamp`` as ``rejects_stamp()`` makes it."""
        return self.root / REJECTS_DIR / f"{prefix}{stamp}.jsonl"

    @staticmethod
    def rejects_stamp() -> str:
        return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")

    # -- datasets -----------------------------------------------------------------------
    def datasets(self) -> list[str]:
        """The datasets in the store, by name."""
        return sorted(p.parent.name for p in self.root.glob(f"*/{DATASET_META}"))

    def dataset_dir(self, name: str) -> Path:
        return self.root / name

    def read_meta(self, name: str) -> dict[str, Any] | None:
        """A dataset's ``_dataset.json`` (name, task, tags, workspace, and multi_label once
        decided), None if it has none."""
        path = self.root / name / DATASET_META
        return json.loads(path.read_text()) if path.exists() else None

    def write_meta(
        self,
        name: str,
        task: str,
        tags: dict[str, str],
        workspace: str | None,
        multi_label: bool | None = None,
    ) -> None:
        """Write ``_dataset.json``; ``multi_label`` (text classification) once it is decided."""
        directory = self.root / name
        directory.mkdir(parents=True, exist_ok=True)
        meta: dict[str, Any] = {"name": name, "task": task, "tags": tags, "workspace": workspace}
        if multi_label is not None:
            meta["multi_label"] = multi_label  # decided once for the dataset, kept with it
        atomic_write_bytes(directory / DATASET_META, json.dumps(meta, indent=1).encode())

    def open_dataset(self, name: str) -> ds.Dataset:
        """The dataset's part files as one Arrow dataset, with the ``date`` partition column."""
        import pyarrow.dataset as ds

        return ds.dataset(self.root / name, format="parquet", partitioning="hive")

    # -- partitions and part files -------------------------------------------------------
    def partition_dir(self, name: str, day: date) -> Path:
        return self.root / name / f"date={day.isoformat()}"

    @staticmethod
    def parts(partition: Path) -> list[Path]:
        """The finished part files of a partition (a part being written is not one)."""
        return sorted(partition.glob("part-*.parquet")) if partition.exists() else []

    @staticmethod
    def new_part(partition: Path) -> tuple[Path, Path]:
        """(final, temporary) paths of a new part file: written as the second, renamed to the first."""
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        final = partition / f"part-{stamp}-{uuid.uuid4().hex[:12]}.parquet"
        return final, partition / f".{final.name}.tmp"

    # -- backfills: part files named after the run and the task, so a retry replaces them --
    def backfill_manifest(self, run: str) -> Path:
        return self.root / BACKFILL_DIR / f"{run}.jsonl"

    @staticmethod
    def task_prefix(run: str, task: str = "") -> str:
        """``part-bf-<run>-<task>``: the names of a backfill task's part files start so."""
        return f"part-bf-{run}-{task}"

    @staticmethod
    def task_part(partition: Path, prefix: str, n: int) -> tuple[Path, Path]:
        """(final, temporary) paths of a task's n-th part file; the temporary name is per
        attempt (an attempt the scheduler gave up on may still be writing)."""
        final = partition / f"{prefix}-{n:04d}.parquet"
        return final, partition / f".{final.stem}.{uuid.uuid4().hex[:8]}.parquet.tmp"

    def task_parts(self, prefix: str) -> Iterator[Path]:
        """The finished part files whose names start with ``prefix``, in every partition."""
        return self.root.glob(f"*/date=*/{prefix}*.parquet")

    def task_unfinished_parts(self, prefix: str) -> Iterator[Path]:
        """The temporary part files of the task whose names start with ``prefix``."""
        return self.root.glob(f"*/date=*/.{prefix}*.parquet.tmp")

    def unfinished_parts(self) -> Iterator[Path]:
        """Temporary part files: being written by a run, or left by a killed one."""
        return self.root.glob("*/date=*/.part-*.parquet.tmp")
