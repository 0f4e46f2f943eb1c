"""Append access-log lines from a background thread, for serving processes.

The request path only hands a finished exchange to a bounded queue; this thread turns it
into a line and appends it. Why each choice:

- ``O_APPEND`` and one ``write`` of whole lines: several worker processes can share one
  file and the kernel never interleaves their lines (regular files on a local disk).
- A full queue drops and counts instead of blocking: a slow disk must not slow requests.
- The path is re-checked before each write: after logrotate renames the file, the next
  write goes to a new file at the path (copytruncate needs nothing: appends follow the end).
- Optional size rotation takes a lock file so that only one process renames at a time.

Importing this module pulls in only the standard library and orjson.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import queue
import threading
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("ingest.accesslog")

# One write() per batch of at most this many bytes of whole lines.
_WRITE_CHUNK = 1 << 20


class LineWriter:
    """A thread that formats queued items with ``format_line`` and appends them to ``path``."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        format_line: Callable[[Any], bytes],
        *,
        queue_size: int = 10_000,
        flush_interval: float = 0.05,
        max_bytes: int | None = None,
        backup_count: int = 5,
    ) -> None:
        self.path = os.fspath(path)
        self.format_line = format_line
        self.flush_interval = flush_interval
        self.max_bytes = max_bytes
        self.backup_count = backup_count
        self.written = 0
        self.dropped = 0
        self.failed = 0
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self._fd: int | None = None
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._start_lock = threading.Lock()
        self._closed = False
        self._closing = threading.Event()

    # -- the request side: never blocks -------------------------------------------------
    def submit(self, item: Any) -> bool:
        """Queue ``item``; False (and counted as dropped) when the queue is full or closed."""
        if self._pid != os.getpid():
            self._start()
        if self._closed:
            self.dropped += 1
            return False
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 10_000 == 0:
                logger.warning("access log queue is full: %d lines dropped so far", self.dropped)
            return False
        return True

    def close(self, timeout: float = 10.0) -> None:
        """Write everything queued, then stop the thread. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._closing.set()
        thread = self._thread
        if thread is not None and thread.is_alive() and self._pid == os.getpid():
            thread.join(timeout)
        if self.written or self.dropped or self.failed:
            level = logging.WARNING if self.dropped or self.failed else logging.INFO
            logger.log(
                level,
                "access log %s: %d lines written, %d dropped, %d failed",
                self.path,
                self.written,
                self.dropped,
                self.failed,
            )

    def _start(self) -> None:
        # Started lazily, and again in a forked child, whose copy of the thread is gone.
        with self._start_lock:
            if self._pid == os.getpid():
                return
            if self._pid:  # a fork: the parent's queue and fd are not ours
                self._queue = queue.Queue(maxsize=self._queue.maxsize)
                self._fd = None
                self.written = self.dropped = self.failed = 0
            self._thread = threading.Thread(target=self._run, name="access-log-writer", daemon=True)
            self._thread.start()
            self._pid = os.getpid()

    # -- the writer thread --------------------------------------------------------------
    def _run(self) -> None:
        # The thread sleeps between flushes instead of waking per line: a wake-up per
        # request costs the serving thread a GIL hand-off, measurable in its throughput.
        while True:
            stopping = self._closing.wait(self.flush_interval)
            items = []
            while True:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            self._write_items(items)
            if stopping:
                return

    def _write_items(self, items: list[Any]) -> None:
        buffer: list[bytes] = []
        size = 0
        for item in items:
            try:
                line = self.format_line(item)
            except Exception:
                self.failed += 1
                logger.exception("access log: could not format a line")
                continue
            buffer.append(line)
            size += len(line)
            if size >= _WRITE_CHUNK:
                self._append(buffer)
                buffer, size = [], 0
        if buffer:
            self._append(buffer)

    def _append(self, lines: list[bytes]) -> None:
        data = b"".join(lines)
        try:
            fd = self._current_fd()
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            self.written += len(lines)
            if self.max_bytes is not None and os.fstat(fd).st_size >= self.max_bytes:
                self._rotate()
        except OSError as exc:
            # A full disk or a vanished directory: count the loss, and open afresh next time.
            self.failed += len(lines)
            logger.error("access log %s: %d lines lost: %s", self.path, len(lines), exc)
            if self._fd is not None:
                with contextlib.suppress(OSError):
                    os.close(self._fd)
                self._fd = None

    def _current_fd(self) -> int:
        """Our fd, reopened when the path now names another file (logrotate) or none."""
        if self._fd is not None:
            try:
                at_path = os.stat(self.path)
                ours = os.fstat(self._fd)
                if (at_path.st_ino, at_path.st_dev) == (ours.st_ino, ours.st_dev):
                    return self._fd
            except FileNotFoundError:
                pass
        return self._reopen()

    def _reopen(self) -> int:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        directory = os.path.dirname(self.path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        return self._fd

    def _rotate(self) -> None:
        """``path`` -> ``path.1`` -> ... ``path.<backup_count>``, one process at a time."""
        lock_fd = os.open(self.path + ".lock", os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
            ours = os.fstat(self._current_fd())
            at_path = os.stat(self.path)
            if at_path.st_ino != ours.st_ino or at_path.st_size < (self.max_bytes or 0):
                return  # another process rotated it already
            for i in range(self.backup_count - 1, 0, -1):
                if os.path.exists(f"{self.path}.{i}"):
                    os.replace(f"{self.path}.{i}", f"{self.path}.{i + 1}")
            os.replace(self.path, f"{self.path}.1")
            self._reopen()
        finally:
            fcntl.flock(lock_fd, fcntl.LOCK_UN)
            os.close(lock_fd)
