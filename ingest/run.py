"""Running: the orchestration of a run (lock, state, the --every loop, sink choice, run
log) and one pass over the sources (read, transform, deliver, count).

``run_ingest`` and ``run_push`` are what the command line calls, and what tests call in
process; they raise ``ingest.errors.IngestError`` s and print nothing. Results come back
in input order (ingest/transform/workers.py), which keeps rejects files and checkpoints
in file order.
"""

from __future__ import annotations

import contextlib
import dataclasses
import signal
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from ingest.errors import (
    IngestError,
    InputsUnreadable,
    TargetFailed,
    TooManyRejects,
    TrailingGarbage,
    UsageError,
)
from ingest.model import NO_ENDPOINT, Batch, Delivery, Reject
from ingest.report.runlog import append_run, counted_lines
from ingest.report.summary import Summary
from ingest.runners import Runner, get_runner
from ingest.settings import ServerSettings
from ingest.sinks import Sink, Target, choose, open_sink
from ingest.sinks.local.layout import StoreLayout
from ingest.sinks.rejects import RejectsFile, RejectsPreview
from ingest.sources import expand
from ingest.sources.checkpoint import Plan, RunLock, State, fingerprint, scope
from ingest.sources.formats.choose import Choice
from ingest.sources.formats.choose import choose as choose_formats
from ingest.sources.read import Chunk, LineChunks, Source, chunk_bytes, describe, known_bytes
from ingest.transform.datasets import Admitted, Decisions
from ingest.transform.routing import named_datasets
from ingest.transform.stage import Transformer, TransformSpec

CHECKPOINT_BYTES = 32 << 20  # input read between two flush-and-checkpoint points

# Given the bytes a run will read, a context giving the function to call with each
# chunk's bytes (a progress bar), or None.
Progress = Callable[[int], AbstractContextManager[Callable[[int], None] | None]]


@dataclass
class RunRequest:
    """Everything one ``ingest run`` needs, resolved and type-checked (ingest.settings)."""

    paths: list[str]
    spec: TransformSpec
    store: Path
    state_path: Path
    rejects_path: Path | None = None  # None: <store>/_rejects/<time>.jsonl per run
    server: ServerSettings | None = None
    dry_run: bool = False
    show: int = 3  # dry run: records kept per dataset
    jobs: int | None = None  # None: the runner chooses
    from_start: bool = False
    wait: bool = False  # queue behind a run holding the lock instead of raising LockHeld
    every: float | None = None  # seconds between runs, until stopped
    runner: str = "local"
    quiet: bool = False  # a delivery failure carries no summary table to print
    log_format: str | None = None  # every input's format (--format, config); None: detected per input
    input_formats: dict[str, str] = field(default_factory=dict)  # input prefix or glob -> format
    max_rejects: tuple[float, bool] | None = None  # (N, N is a percentage of the lines read)


@dataclass
class RunResult:
    """One pass: its summary, and for dry runs the records and rejects kept to show."""

    summary: Summary
    samples: dict[str, list[Any]] = field(default_factory=dict)
    preview_rejects: list[Reject] = field(default_factory=list)


@dataclass
class RunOptions:
    sources: list[Source]
    spec: TransformSpec
    jobs: int = 1
    progress: Callable[[int], None] | None = None  # called with the bytes of each chunk
    plans: list[Plan] | None = None  # where to start each source (checkpointed runs)
    state: State | None = None  # where to save how far each source was read
    checkpoint_bytes: int = CHECKPOINT_BYTES
    stop: threading.Event | None = None  # set by SIGTERM/SIGINT: finish the chunk, checkpoint, return
    rereads: bool = False  # --from-start or a time window: these lines may have been read before
    runner: Runner | None = None  # None: the local runner
    formats_used: dict[str, str] = field(default_factory=dict)  # format -> how it was chosen
    not_logs: dict[str, str] = field(default_factory=dict)  # inputs that are not logs (schema files)
    max_rejects: tuple[float, bool] | None = None  # (N, N is a percentage of the lines read)
    fingerprints: dict[str, str] = field(default_factory=dict)  # file name -> fingerprint


# id(stop event) -> the signals that set it, for the exit code of a one-shot run (130, 143)
STOPPED_BY: dict[int, list[int]] = {}


def stopped_by(stop: threading.Event) -> int | None:
    """The signal that stopped a run (SIGINT, SIGTERM), if one did."""
    found = STOPPED_BY.get(id(stop))
    return found[0] if found else None


@contextlib.contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGTERM and SIGINT set ``stop``: the chunk in flight finishes and is checkpointed.
    The previous handlers are back afterwards (the CLI may run inside a test process)."""

    def on_signal(signum: int, _frame: Any) -> None:
        stopped_by.append(signum)
        stop.set()

    stopped_by = STOPPED_BY.setdefault(id(stop), [])
    previous = {signum: signal.signal(signum, on_signal) for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def run_ingest(
    request: RunRequest,
    *,
    stop: threading.Event | None = None,
    on_result: Callable[[RunResult], None] | None = None,
    progress: Progress | None = None,
) -> RunResult | None:
    """Ingest the request's paths, once or every ``request.every`` seconds until ``stop``.

    Each pass's result goes to ``on_result`` as soon as it is done; the last one is
    returned. Raises InputError (an input names nothing to read), LockHeld (another run
    holds the lock and ``wait`` is false), DeliveryError, WorkerDied or TransformFailed (the
    run failed; what was acknowledged is checkpointed and counted), and, once a single run
    (no ``every``) is done and reported, InputsUnreadable when some file could not be read.
    """
    stop = stop or threading.Event()
    sources, spec, choice = _inputs(request)
    windowed = spec.since is not None or spec.until is not None
    checkpointed = not windowed and not all(s.path is None and s.url is None for s in sources)
    runner = get_runner(request.runner)
    from_start = request.from_start
    result = None
    with (
        _target_failures(request.state_path),
        RunLock(request.state_path, request.wait) if not request.dry_run else contextlib.nullcontext(),
    ):
        # a dry run reads from the checkpoints, if any, and never creates or moves them
        state = (
            State(request.state_path, scope(target_key(request.store, request.server), selection_key(spec)))
            if checkpointed and (not request.dry_run or request.state_path.exists())
            else None
        )
        while True:
            options = RunOptions(
                sources=sources,
                spec=spec,
                jobs=runner.jobs_for(request.jobs, sources),
                stop=stop,
                state=None if request.dry_run else state,
                rereads=from_start or windowed,
                runner=runner,
                formats_used=choice.how,
                not_logs=choice.not_read,
                max_rejects=request.max_rejects,
            )
            if state is not None:
                options.plans = state.plan(sources, from_start or windowed)
            options.fingerprints = _fingerprints(options)
            if not request.dry_run:
                # the run log counts each line's traffic once: from where no run counted yet
                counted = counted_lines(request.store)
                options.spec = dataclasses.replace(
                    spec, counted={name: counted.get(fp, 1) for name, fp in options.fingerprints.items()}
                )
            result = _run_once(request, options, progress)
            if result.summary.failed_files and request.every is None:
                unreadable = InputsUnreadable(result.summary.failed_files)
                result.summary.exit_code, result.summary.error = unreadable.exit_code, str(unreadable)
            if on_result is not None:
                on_result(result)
            if request.every is None or stop.is_set():
                break
            stop.wait(request.every)
            if stop.is_set():
                break
            from_start = False
            sources, spec, choice = _inputs(request)
    if result is not None and result.summary.failed_files and request.every is None:
        # the summary names each file and why (it was reported, --json included, with this
        # error and exit code); the exit code says some input was not read
        unreadable = InputsUnreadable(result.summary.failed_files)
        unreadable.reported = True
        raise unreadable
    return result


def _inputs(request: RunRequest) -> tuple[list[Source], TransformSpec, Choice]:
    """The sources the paths name, each with its log format (ingest/sources/formats)."""
    sources = expand(request.paths)
    choice = choose_formats(sources, request.spec.profiles, request.log_format, request.input_formats)
    return choice.sources, dataclasses.replace(request.spec, formats=choice.formats), choice


def target_key(store: Path, server: ServerSettings | None) -> str:
    """Where records go, as checkpoints know it: the store's absolute path, or URL + workspace."""
    if server is None:
        return f"local store {store.resolve()}"
    from ingest.sinks.rubrix.sink import display_url

    workspace = server.workspace
    return f"rubrix {display_url(server.url)}" + (f", workspace {workspace}" if workspace else "")


def selection_key(spec: TransformSpec) -> str:
    """Which endpoints a run reads, and where configured ones go: part of its checkpoints' key."""
    selected = spec.selected or frozenset(spec.routes)
    if not selected:
        return "*"
    return " ".join(f"{e}>{spec.routes[e].dataset}" if e in spec.routes else e for e in sorted(selected))


def _fingerprints(options: RunOptions) -> dict[str, str]:
    """File name -> fingerprint of every input with a complete first line (not stdin)."""
    if options.plans is not None:
        return {p.source.name: p.fingerprint for p in options.plans if p.fingerprint}
    found = {}
    for source in options.sources:
        if source.path is not None:
            fp = fingerprint(source)
            if fp is not None:
                found[source.name] = fp
    return found


def _run_once(request: RunRequest, options: RunOptions, progress: Progress | None) -> RunResult:
    layout = StoreLayout(request.store)
    stamp = layout.rejects_stamp()
    target = Target(store=request.store, server=request.server, show=request.show if request.dry_run else 0)
    sink = open_sink(choose(target, request.dry_run), target)
    rejects: RejectsFile | RejectsPreview
    if request.dry_run:
        rejects = RejectsPreview()
    else:
        rejects = RejectsFile(request.rejects_path or layout.rejects_file(stamp))
    summary = Summary(target=sink.description, dry_run=request.dry_run)
    started = datetime.now(UTC)
    total = known_bytes(options.sources)
    bar = progress(total) if progress is not None else contextlib.nullcontext()
    with _summary_on_failure(summary, request.quiet), bar as update, _target_failures(request.state_path):
        options.progress = update
        run(options, sink, rejects, summary)
    if not request.dry_run:
        append_run(request.store, summary, started, _run_flags(options), options.fingerprints)
    result = RunResult(summary)
    if isinstance(rejects, RejectsPreview):
        result.samples = getattr(sink, "samples", {})
        result.preview_rejects = rejects.kept
    return result


@contextlib.contextmanager
def _target_failures(state_path: Path | None = None) -> Iterator[None]:
    """What cannot be written (the store, the state file, the lock, the rejects file) stops
    the run as a TargetFailed, with the OS's reason. Files that cannot be read never get
    here: each stops alone (``run``). SQLite's errors are the state file's (a damaged one
    says "file is not a database"): named, so the user is not sent to look at the target."""
    try:
        yield
    except sqlite3.Error as exc:
        where = f"the state file {state_path}" if state_path is not None else "the target"
        raise TargetFailed(f"{where} cannot be used: {type(exc).__name__}: {exc}") from exc
    except OSError as exc:
        raise TargetFailed(f"the target cannot be written: {type(exc).__name__}: {exc}") from exc


@contextlib.contextmanager
def _summary_on_failure(summary: Summary, quiet: bool) -> Iterator[None]:
    """A delivery failure (or a dead worker) carries the table of what was done, to be
    printed before its message."""
    try:
        yield
    except IngestError as exc:
        exc.summary_text = None if quiet else summary.render()
        exc.summary = summary  # for --json: what was done before the failure
        raise


def _run_flags(options: RunOptions) -> dict[str, Any]:
    """What the report needs to know: forced re-reads count their lines again."""
    return {
        "rereads": options.rereads,
        "since": options.spec.since.isoformat() if options.spec.since else None,
        "until": options.spec.until.isoformat() if options.spec.until else None,
    }


def run_push(
    store: Path,
    datasets: list[str],
    server: ServerSettings | None,
    rejects_path: Path | None = None,
    quiet: bool = False,
    state_path: Path | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    from_start: bool = False,
    wait: bool = False,
) -> Summary:
    """Send the records of a local store's datasets (all when none given) to a server:
    the part files not pushed to that server and workspace yet (checkpoints in the state
    file, ``<store>/_state.sqlite`` by default), or a time window of all of them.

    Raises UsageError (no server, no such dataset) before connecting, LockHeld, and
    DeliveryError when the server cannot be reached or refuses the key.
    """
    from ingest.push import push
    from ingest.suggest import check_datasets

    if server is None:
        raise UsageError("push needs a server: give --rubrix-url or set RUBRIX_API_URL")
    if not store.is_dir():
        # The same words as show and report: a mistyped --store is the usual cause.
        raise UsageError(f"no local store at {store}")
    layout = StoreLayout(store)
    available = layout.datasets()
    check_datasets(store, datasets, available)
    if not available:
        raise UsageError(f"no datasets in {store}")
    state_path = state_path or layout.state_file
    with RunLock(state_path, wait):
        target = Target(store=store, server=server)
        sink = open_sink(choose(target), target)
        rejects = RejectsFile(rejects_path or layout.rejects_file(layout.rejects_stamp(), prefix="push-"))
        summary = Summary(target=sink.description)
        state = State(state_path)
        try:
            with _summary_on_failure(summary, quiet):
                push(store, datasets or available, sink, rejects, summary, state, target_key(store, server),
                     since, until, from_start)  # fmt: skip
        finally:
            state.close()
    return summary


def run(
    options: RunOptions,
    sink: Sink,
    rejects: RejectsFile | RejectsPreview,
    summary: Summary,
) -> Summary:
    """One pass: ingest every source into the sink, filling in the summary."""
    started = time.perf_counter()
    # Arrow's default allocators (jemalloc, mimalloc) keep freed pages for reuse: with a
    # stream of short-lived batches that costs a third more memory in every process.
    pa.set_memory_pool(pa.system_memory_pool())
    plans = options.plans or [Plan(source, None) for source in options.sources]
    size = chunk_bytes()
    readers = [LineChunks(p.source, p.offset, p.line, size) for p in plans if p.skip is None]
    fingerprints = {p.source.name: p.fingerprint for p in plans if p.fingerprint}
    summary.skipped_files = {
        **options.not_logs,
        **{p.source.name: p.skip for p in plans if p.skip and not p.error},
    }
    summary.failed_files = {p.source.name: p.error for p in plans if p.error}
    summary.formats = dict(options.formats_used)
    progress: dict[str, tuple[int, int, str]] = {}  # fingerprint -> (offset, next line, name)
    unsaved_bytes = 0

    def chunks() -> Iterator[Chunk]:
        # The one rule of the read stage: whatever goes wrong opening or reading a file stops
        # that file alone. It is reported, its checkpoint stays, and the next file is read.
        for reader in readers:
            fresh = False
            try:
                for chunk in reader:
                    fresh = True
                    yield chunk
            except TrailingGarbage as exc:
                # Its lines are all read and its checkpoint moves past them. Reported by the run
                # that read them (or one from the start); a later run finds nothing new in a
                # file that cannot grow and has nothing to say of it (see TrailingGarbage).
                if fresh or reader.start_offset == 0:
                    summary.failed_files[reader.source.name] = describe(exc, reader.source)
            except Exception as exc:
                name = reader.source.name
                summary.failed_files[name] = describe(exc, reader.source)
                fp = fingerprints.pop(name, None)
                if fp is not None:
                    progress.pop(fp, None)

    def deliver(delivery: Delivery) -> None:
        record_delivery(delivery, summary, rejects)

    # A format that joins two events into a pair keeps the waiting halves in this process,
    # across chunks, and in the state file across runs (ingest/sources/formats/join.py).
    transformer = Transformer(options.spec) if options.spec.joins else None
    joining = sorted({n for n in options.spec.formats.values() if options.spec.profiles[n].joins})
    if transformer is not None and options.state is not None:
        transformer.joiner.load(options.state.pending(), options.spec.profiles)

    def checkpoint() -> None:
        """Flush the sink, make rejects durable, then move the checkpoints: in that order."""
        deliver(sink.flush())
        rejects.sync()
        check_rejects(options, summary, True, rejects.path)
        if options.state is not None and progress:
            pending = (joining, transformer.joiner.rows()) if transformer is not None else None
            options.state.save(_before_waiting(progress, decisions.floors()), pending)

    # Task and multi-label kind per dataset, decided once (ingest/transform/datasets.py).
    decisions = Decisions(lookup=getattr(sink, "dataset_info", None))

    def admitted(batches: Admitted) -> list[Batch]:
        for endpoint, n in batches.records.items():
            summary.counts_for(endpoint).records += n
        for endpoint, n in batches.rejected.items():
            summary.counts_for(endpoint).rejected += n
        rejects.write(batches.rejects)
        summary.count_rejects(batches.rejects)
        summary.count_refused(batches.refused)
        return batches.batches

    def deliver_batch(batch: Batch) -> None:
        # one endpoint, several tasks (a line with several prediction columns): several datasets
        summary.add_dataset(batch.route.endpoint, batch.route.dataset)
        for endpoint in set(batch.table["endpoint"].to_pylist()):
            summary.datasets.setdefault(endpoint, batch.route.dataset)
        deliver(sink.add(batch))

    try:
        if transformer is not None:
            results: Iterator[Any] = (transformer.process(chunk) for chunk in chunks())
        else:
            runner = options.runner or get_runner()
            results = runner.results(chunks(), options.spec, options.jobs)
        for result in results:
            for endpoint, counts in result.counts.items():
                summary.counts_for(endpoint).add(counts)
            summary.file_counts(result.source).add(result.file_counts)
            rejects.write(result.rejects)
            summary.count_rejects(result.rejects)
            for batch in admitted(decisions.admit(result.batches)):
                deliver_batch(batch)
            check_rejects(options, summary, False, rejects.path)
            if options.progress is not None:
                options.progress(result.size)
            read = summary.read_lines.setdefault(result.source, [result.first_line, result.first_line])
            read[1] = result.first_line + result.lines
            fp = fingerprints.get(result.source)
            if fp is not None:
                progress[fp] = (result.end_offset, result.first_line + result.lines, result.source)
            unsaved_bytes += result.size
            if unsaved_bytes >= options.checkpoint_bytes:
                checkpoint()
                unsaved_bytes = 0
            if options.stop is not None and options.stop.is_set():
                summary.interrupted = True
                break
        else:  # the whole input was read: what still waits for a decision gets it now
            for batch in admitted(decisions.finish()):
                deliver_batch(batch)
        if transformer is not None:
            _settle_halves(transformer, options, summary)
        checkpoint()
        _check_format(options, summary)
        summary.check_shared_datasets(named_datasets(options.spec.routes))
    except Exception as exc:
        record_acknowledged(exc, summary, rejects)
        raise
    finally:
        sink.close()
        rejects.close()
        summary.files = [s.name for s in options.sources]
        summary.incomplete = {
            r.source.name: len(r.incomplete_tail)
            for r in readers
            if r.incomplete_tail and r.source.name not in summary.failed_files
        }
        if rejects.path is not None and rejects.count:
            summary.rejects_file = str(rejects.path)
        summary.seconds = time.perf_counter() - started
    return summary


def _settle_halves(transformer: Transformer, options: RunOptions, summary: Summary) -> None:
    """At the end of a pass, halves past their window are counted; the others wait in the
    state file for the next run or, with no state to keep them in, are counted now."""
    keep = options.state is not None
    for half, reason in transformer.joiner.expired(options.spec.profiles, flush=not keep, end=True):
        summary.counts_for(half.endpoint).skipped[transformer.unjoined_reason(half, reason)] += 1
    earlier = transformer.joiner.earlier_expired
    if earlier:
        reasons = ", ".join(f"{reason} {n}" for reason, n in sorted(earlier.items()))
        summary.notes.append(f"events read by an earlier run that never got their other half: {reasons}")
    if transformer.joiner.pending:
        summary.notes.append(f"unjoined events kept for the next run: {len(transformer.joiner.pending)}")


def _check_format(options: RunOptions, summary: Summary) -> None:
    """A run whose lines were mostly not requests in the format read says so (issue 13): a
    wrong --format otherwise exits 0 with nothing ingested and the checkpoints moved."""
    from ingest.sources.formats.choose import wrong_format_warning

    found = summary.counts.get(NO_ENDPOINT)
    not_requests = found.skipped.get("not_a_request", 0) if found is not None else 0
    requests = sum(c.lines for endpoint, c in summary.counts.items() if endpoint != NO_ENDPOINT)
    text = wrong_format_warning(
        not_requests, summary.lines, options.sources, options.spec.formats, options.spec.profiles, requests
    )
    if text:
        summary.warnings.append(text)


def check_rejects(
    options: Any, summary: Summary, final: bool, where: Any, kept: str = "checkpoints stay where they were"
) -> None:
    """Stop the run (before its next checkpoint) once rejects exceed ``--max-rejects``
    (``options.max_rejects``); ``kept`` says what stays for the next run.

    A count is checked after every chunk, a percentage only at checkpoints, where it is a
    share of enough lines to mean something.
    """
    if options.max_rejects is None:
        return
    limit, percent = options.max_rejects
    if percent and not final:
        return
    lines, records = summary.rejected_total()
    read = summary.lines
    allowed = limit / 100 * read if percent else limit
    if lines + records > allowed:
        shown = f"{limit:g}%" if percent else f"{limit:g}"
        raise TooManyRejects(
            f"{lines} rejected lines and {records} rejected records in {read} lines read exceeded "
            f"--max-rejects {shown}; {kept}" + (f" (see {where})" if where else "")
        )


def record_delivery(delivery: Delivery, summary: Summary, rejects: RejectsFile | RejectsPreview) -> None:
    """Count what a sink acknowledged or refused, and file the refusals."""
    for endpoint, n in delivery.written.items():
        summary.counts_for(endpoint).written += n
    for endpoint, n in delivery.already_stored.items():
        summary.counts_for(endpoint).skipped["already_stored"] += n
    for reject in delivery.rejects:
        summary.counts_for(reject["endpoint"]).rejected += 1
    rejects.write(delivery.rejects)
    summary.count_rejects(delivery.rejects)
    summary.count_refused(delivery.refused)


def record_acknowledged(
    failure: BaseException, summary: Summary, rejects: RejectsFile | RejectsPreview
) -> None:
    """A sink that fails mid-run still delivered some records: count exactly those."""
    acknowledged = getattr(failure, "delivery", None)
    if isinstance(acknowledged, Delivery):
        record_delivery(acknowledged, summary, rejects)


def _before_waiting(
    progress: dict[str, tuple[int, int, str]], floors: dict[str, tuple[int, int]]
) -> dict[str, tuple[int, int, str]]:
    """Checkpoints that stay before the first chunk whose records wait for a dataset decision:
    those records are not delivered yet, so a crash must read them again."""
    saved = {}
    for key, (offset, line, name) in progress.items():
        floor = floors.get(name)
        saved[key] = (floor[0], floor[1], name) if floor and floor[0] < offset else (offset, line, name)
    return saved
