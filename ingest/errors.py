"""One exception hierarchy for every way a run can stop, each carrying its exit code.

The command line catches ``IngestError`` once, at the top (``ingest.cli.main``), prints
``ingest: error: <message>`` on stderr and exits with ``exit_code``; nothing below it
calls ``sys.exit``. The codes are the README's: 1 the run failed while delivering, 2 a
usage, input or configuration problem found before anything is written, 3 some input
file could not be read (the rest was read and delivered), 65 more rejects than
``--max-rejects`` allows (``EX_DATAERR`` of BSD's sysexits.h), 75 another run holds the
lock (``EX_TEMPFAIL``: try again later).
"""

from __future__ import annotations

from typing import Any

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INPUT = 3  # some input could not be read; everything else was read and delivered
EXIT_TOO_MANY_REJECTS = 65  # EX_DATAERR: the input was not what it should be
EXIT_LOCKED = 75  # EX_TEMPFAIL: another run holds the lock, try again later


class IngestError(Exception):
    """Base of every error the CLI reports in one line; ``exit_code`` is the process's."""

    exit_code: int = EXIT_FAILED
    # What the run did before it stopped, printed before the message (unless --quiet).
    summary_text: str | None = None


class UsageError(IngestError):
    """The command line contradicts itself (e.g. --dataset without exactly one --endpoint)."""

    exit_code = EXIT_USAGE


class ConfigError(IngestError, ValueError):
    """The config file, a flag or an environment variable has a wrong key, type or value."""

    exit_code = EXIT_USAGE


class InputError(IngestError):
    """Inputs given wrongly (no such path, a directory or glob with no log file): the run
    stops before anything is written."""

    exit_code = EXIT_USAGE


class FileFault(IngestError):
    """One file cannot be read to its end (damaged gzip data, not JSONL at all). Raised while
    reading it, caught by the run for that file alone: it never reaches the top."""

    exit_code = EXIT_INPUT


class TrailingGarbage(FileFault):
    """Bytes after the last gzip member that are not another member (nor zero padding).

    The members before them decompressed and passed their CRC and size checks, so every
    line is read and the checkpoint moves to their end; the file is reported by the run that
    read its lines, and not again by later runs that find nothing new in it (a .gz cannot
    grow). ``gzip -d`` too decompresses such a file, with a warning."""


class InputsUnreadable(IngestError):
    """The run is done, but some files could not be read: each is named in the summary."""

    exit_code = EXIT_INPUT

    def __init__(self, failed: dict[str, str]):
        first, reason = next(iter(failed.items()))
        more = f", and {len(failed) - 1} more (named in the summary, and in --json's files_failed)"
        more = more if len(failed) > 1 else ""
        super().__init__(f"could not read {first}: {reason}{more}")
        self.failed = failed


class LockHeld(IngestError):
    """Another run holds the lock on this state file."""

    exit_code = EXIT_LOCKED


class DeliveryError(IngestError):
    """The run cannot go on: the message is one line, names the URL and never the key.

    ``delivery`` holds what the target did acknowledge before the run had to stop, so the
    summary counts exactly that.
    """

    exit_code = EXIT_FAILED

    def __init__(self, message: str):
        super().__init__(message)
        from ingest.model import Delivery

        self.delivery: Any = Delivery()


class TargetFailed(DeliveryError):
    """The local target cannot be written (the store, its state or lock file, the rejects
    file): the OS's reason, in one line. The run stops; checkpoints stay where they were."""


class WorkerDied(IngestError):
    """A worker process ended without returning its chunk: the run cannot go on."""

    exit_code = EXIT_FAILED


class TransformFailed(IngestError):
    """The transform raised outside any one line's handling (a bug, or a mapper's SystemExit).

    Its message is the original exception's type and message, from whichever process it was.
    """

    exit_code = EXIT_FAILED


class MissingExtra(IngestError):
    """An optional dependency (an extra in pyproject.toml) is not installed."""

    exit_code = EXIT_FAILED


class TooManyRejects(IngestError):
    """More rejected lines and records than ``--max-rejects`` allows: the run stops before
    its next checkpoint, so the lines are read again once the cause is fixed."""

    exit_code = EXIT_TOO_MANY_REJECTS
