"""The ``ingest`` command line.

``ingest PATHS...`` is short for ``ingest run PATHS...``: the everyday use, from cron or a
shell, should not need a sub-command. Exit codes: 0 success (rejects included: they are
reported), 1 the run failed while delivering, 2 usage, input or configuration errors,
found before anything is written.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn

import click
import orjson

import mappers
from ingest import __version__
from ingest import settings as config_mod
from ingest.report.runlog import append_run
from ingest.report.summary import Summary
from ingest.run import RunOptions, run
from ingest.sinks import Sink
from ingest.sinks.local.store import LocalStore
from ingest.sinks.rejects import RejectsFile, RejectsPreview
from ingest.sources.checkpoint import LockHeld, RunLock, State
from ingest.sources.read import InputError, Source, expand
from ingest.transform.routing import Route, check_dataset_name, dataset_for_endpoint
from ingest.transform.stage import TransformSpec

DEFAULT_STORE = "rubrix-store"
EXIT_LOCKED = 75  # EX_TEMPFAIL: another run holds the lock, try again later
PARALLEL_MIN_BYTES = 16 << 20  # below this, worker start-up costs more than it saves

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|h|d|w)$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class DefaultGroup(click.Group):
    """A group whose first argument, when it is not a sub-command, goes to ``run``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h", "--version"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


def parse_time(value: str, now: datetime | None = None) -> datetime:
    """An ISO-8601 time or date (naive means UTC), or a duration ago such as ``15m`` or ``7d``."""
    match = _DURATION.match(value.strip())
    if match:
        amount, unit = float(match.group(1)), match.group(2)
        return (now or datetime.now(UTC)) - timedelta(**{_UNITS[unit]: amount})
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is neither an ISO-8601 time nor a duration like 15m, 2h or 7d"
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


class DurationParam(click.ParamType):
    name = "DURATION"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, int | float):
            return float(value)
        match = _DURATION.match(str(value).strip())
        if not match:
            self.fail(f"{value!r} is not a duration like 30s, 5m or 1h", param, ctx)
        return timedelta(**{_UNITS[match.group(2)]: float(match.group(1))}).total_seconds()


class TimeParam(click.ParamType):
    name = "TIME"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> datetime:
        if isinstance(value, datetime):
            return value
        return parse_time(value)


def fail(message: str, code: int = 2) -> NoReturn:
    click.echo(f"ingest: error: {message}", err=True)
    sys.exit(code)


@click.group(cls=DefaultGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="rubrix-ingest")
def main() -> None:
    """Replay JSONL prediction logs of model endpoints into Rubrix datasets.

    \b
    ingest /var/log/models/access.jsonl --endpoint /spacy/
    ingest run logs/ --config ingest.toml --json
    """


def _routes(
    cfg: config_mod.Config, endpoints: tuple[str, ...], dataset: str | None, mapper: str | None
) -> dict[str, Route]:
    routes = dict(cfg.routes)
    if dataset or mapper:
        if len(endpoints) != 1:
            raise click.UsageError(
                "--dataset and --mapper apply to a single endpoint: give exactly one --endpoint"
            )
        endpoint = endpoints[0]
        base = routes.get(endpoint) or Route(endpoint=endpoint, dataset=dataset_for_endpoint(endpoint))
        if dataset:
            try:
                check_dataset_name(dataset)
            except ValueError as exc:
                raise click.BadParameter(str(exc), param_hint="--dataset") from None
        routes[endpoint] = Route(
            endpoint=endpoint,
            dataset=dataset or base.dataset,
            mapper=mapper or base.mapper,
            workspace=base.workspace,
            tags=base.tags,
            metadata_fields=base.metadata_fields,
        )
    return routes


def _check_mappers(routes: dict[str, Route]) -> None:
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # custom mappers live in the user's project
    for route in routes.values():
        if route.mapper:
            try:
                mappers.resolve(route.mapper)
            except mappers.UnknownMapper as exc:
                fail(f"endpoint {route.endpoint}: {exc}")


def _jobs(jobs: int | None, sources: list[Source]) -> int:
    if jobs is not None:
        return max(1, jobs)
    size = sum(s.path.stat().st_size for s in sources if s.path is not None)
    stdin = any(s.path is None for s in sources)
    return min(os.cpu_count() or 1, 4) if size >= PARALLEL_MIN_BYTES and not stdin else 1


store_option = click.option(
    "--store",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="RUBRIX_INGEST_STORE",
    help=f"Local store directory [default: ./{DEFAULT_STORE}].",
)

# For commands that read a store: the default is spelled out, since it must exist.
existing_store_option = click.option(
    "--store",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="RUBRIX_INGEST_STORE",
    default=DEFAULT_STORE,
    show_default=True,
    help="Local store directory.",
)


def rejects_option(default: str) -> Any:
    return click.option(
        "--rejects",
        "rejects_path",
        type=click.Path(dir_okay=False, path_type=Path),
        help=f"Rejects file [default: {default}].",
    )


config_option = click.option(
    "--config",
    "-c",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="RUBRIX_INGEST_CONFIG",
    help="TOML config: endpoint routes, store, [rubrix] settings (env RUBRIX_INGEST_CONFIG).",
)


def rubrix_options(func: Any) -> Any:
    """The Rubrix target options shared by ``run`` and ``push``."""
    options = [
        click.option(
            "--rubrix-url",
            envvar=["RUBRIX_API_URL", "ARGILLA_API_URL"],
            help="Send to this Rubrix/Argilla server (env RUBRIX_API_URL, ARGILLA_API_URL).",
        ),
        click.option(
            "--api-key",
            envvar=["RUBRIX_API_KEY", "ARGILLA_API_KEY"],
            help="API key (env RUBRIX_API_KEY, ARGILLA_API_KEY; prefer the environment).",
        ),
        click.option(
            "--workspace",
            envvar=["RUBRIX_WORKSPACE", "ARGILLA_WORKSPACE"],
            help="Workspace (env RUBRIX_WORKSPACE, ARGILLA_WORKSPACE).",
        ),
        click.option(
            "--batch-size", type=click.IntRange(1, 5000), help="Records per request [default: 500]."
        ),
        click.option("--concurrency", type=click.IntRange(1, 64), help="Requests in flight [default: 4]."),
        click.option(
            "--retry-for",
            type=click.FloatRange(0),
            metavar="SECONDS",
            help="How long to keep retrying transient failures [default: 120].",
        ),
        click.option(
            "--timeout", type=click.FloatRange(0.1), metavar="SECONDS", help="Per request [default: 60]."
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def make_sink(cfg: config_mod.Config, store_dir: Path, params: dict[str, Any]) -> Sink:
    """The Rubrix server when a URL is configured (flag, env or config), else the local store."""
    settings = {**cfg.rubrix, **{k: v for k, v in params.items() if v is not None}}
    url = settings.pop("rubrix_url", None) or settings.pop("url", None)
    if not url:
        return LocalStore(store_dir)
    from ingest.sinks.rubrix.sink import DeliveryError, RubrixSettings, RubrixSink

    try:
        return RubrixSink(RubrixSettings(url=url, **settings))
    except DeliveryError as exc:
        fail(str(exc), code=1)


def _rubrix_params(params: dict[str, Any]) -> dict[str, Any]:
    keys = ("rubrix_url", "api_key", "workspace", "batch_size", "concurrency", "retry_for", "timeout")
    return {k: params.pop(k) for k in keys}


@contextlib.contextmanager
def _stop_on_delivery_failure(summary: Summary, quiet: bool) -> Iterator[None]:
    """A delivery failure (or a dead worker) prints what was done, then stops with exit 1."""
    from ingest.sinks import DeliveryError
    from ingest.transform.workers import WorkerDied

    try:
        yield
    except (DeliveryError, WorkerDied) as exc:
        if not quiet:
            click.echo(summary.render(), err=True)
        fail(str(exc), code=1)


def _report(summary: Summary, quiet: bool, as_json: bool, extra: dict[str, Any] | None = None) -> None:
    """The table on stderr unless quiet; the same summary as JSON on stdout when asked."""
    if not quiet:
        click.echo(summary.render(), err=True)
    if as_json:
        data = {**summary.to_json(), **(extra or {})}
        click.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())


def _deliver(options: RunOptions, sink: Sink | None, rejects: Any, summary: Summary, quiet: bool) -> None:
    total = sum(s.path.stat().st_size for s in options.sources if s.path is not None)
    with _stop_on_delivery_failure(summary, quiet):
        if sys.stderr.isatty() and not quiet and total:
            with click.progressbar(length=total, label="ingesting", file=sys.stderr) as bar:
                options.progress = bar.update
                run(options, sink, rejects, summary)
        else:
            run(options, sink, rejects, summary)


@main.command("run")
@click.argument("paths", nargs=-1, required=True)
@click.option(
    "--endpoint",
    "-e",
    "endpoints",
    multiple=True,
    metavar="PATH",
    help="Only these endpoint paths (exact match, repeatable).",
)
@click.option(
    "--since",
    type=TimeParam(),
    help="Only requests at or after this time (ISO-8601 or 2h, 7d ago).",
)
@click.option("--until", type=TimeParam(), help="Only requests before this time.")
@config_option
@click.option("--dataset", help="Dataset for the single --endpoint given.")
@click.option(
    "--mapper",
    help="Mapper for the single --endpoint: text_classification, "
    "token_classification, text2text or package.module:function.",
)
@store_option
@rejects_option("<store>/_rejects/<time>.jsonl")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
@click.option("--dry-run", is_flag=True, help="Map and validate, show a few records, write nothing.")
@click.option("--show", default=3, show_default=True, help="Records per dataset shown by --dry-run.")
@click.option("--jobs", "-j", type=click.IntRange(min=1), help="Worker processes [default: auto].")
@click.option("--quiet", "-q", is_flag=True, help="No summary table on stderr.")
@click.option(
    "--state",
    "state_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Checkpoint file [default: <store>/_state.sqlite].",
)
@click.option("--from-start", is_flag=True, help="Ignore checkpoints: read every file from its start.")
@click.option("--wait", is_flag=True, help="If another run holds the lock, wait for it instead of exiting.")
@click.option(
    "--every",
    type=DurationParam(),
    metavar="DURATION",
    help="Run again every DURATION (30s, 5m, 1h) until SIGTERM/SIGINT, for containers without cron.",
)
@rubrix_options
def run_command(
    paths: tuple[str, ...],
    endpoints: tuple[str, ...],
    since: datetime | None,
    until: datetime | None,
    config_path: Path | None,
    dataset: str | None,
    mapper: str | None,
    store: Path | None,
    rejects_path: Path | None,
    as_json: bool,
    dry_run: bool,
    show: int,
    jobs: int | None,
    quiet: bool,
    state_path: Path | None,
    from_start: bool,
    wait: bool,
    every: float | None,
    **params: Any,
) -> None:
    """Ingest access logs (files, globs, directories, .gz, or - for stdin).

    Checkpoints make repeated runs read only what is new; --since/--until read the given
    window from the start of every file and leave checkpoints alone.
    """
    try:
        cfg = config_mod.load(config_path) if config_path else config_mod.Config()
    except config_mod.ConfigError as exc:
        fail(str(exc))
    routes = _routes(cfg, endpoints, dataset, mapper)
    _check_mappers(routes)
    try:
        sources = expand(list(paths))
    except InputError as exc:
        fail(str(exc))
    if since and until and since >= until:
        raise click.BadParameter("--since must be before --until", param_hint="--since")

    store_dir = store or Path(cfg.store or DEFAULT_STORE)
    spec = TransformSpec(routes=routes, selected=frozenset(endpoints) or None, since=since, until=until)
    rubrix = _rubrix_params(params)
    windowed = since is not None or until is not None
    checkpointed = not windowed and not all(s.path is None for s in sources)
    state_file = state_path or Path(cfg.state or store_dir / "_state.sqlite")
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())

    try:
        with RunLock(state_file, wait) if not dry_run else contextlib.nullcontext():
            # a dry run reads from the checkpoints, if any, and never creates or moves them
            state = State(state_file) if checkpointed and (not dry_run or state_file.exists()) else None
            while True:
                options = RunOptions(
                    sources=sources,
                    spec=spec,
                    jobs=_jobs(jobs, sources),
                    stop=stop,
                    show=show if dry_run else 0,
                    state=None if dry_run else state,
                    rereads=from_start or windowed,
                )
                if state is not None:
                    options.plans = state.plan(sources, from_start or windowed)
                _run_once(options, cfg, store_dir, rubrix, rejects_path, dry_run, as_json, quiet)
                if every is None or stop.is_set():
                    break
                stop.wait(every)
                if stop.is_set():
                    break
                from_start = False
                try:
                    sources = expand(list(paths))
                except InputError as exc:
                    fail(str(exc))
    except LockHeld as exc:
        fail(str(exc), code=EXIT_LOCKED)


def _run_once(
    options: RunOptions,
    cfg: config_mod.Config,
    store_dir: Path,
    rubrix: dict[str, Any],
    rejects_path: Path | None,
    dry_run: bool,
    as_json: bool,
    quiet: bool,
) -> None:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    sink = None if dry_run else make_sink(cfg, store_dir, rubrix)
    rejects: RejectsFile | RejectsPreview
    if dry_run:
        rejects = RejectsPreview()
    else:
        rejects = RejectsFile(rejects_path or Path(cfg.rejects or store_dir / "_rejects" / f"{stamp}.jsonl"))
    target = sink.description if sink is not None else f"local store {store_dir}"
    summary = Summary(target=target, dry_run=dry_run)
    started = datetime.now(UTC)
    _deliver(options, sink, rejects, summary, quiet)
    if not dry_run:
        append_run(store_dir, summary, started, _run_flags(options))
    if dry_run:
        _show_dry_run(options, rejects, as_json)  # type: ignore[arg-type]
    _report(summary, quiet, as_json, {"samples": options.samples} if dry_run else None)


def _run_flags(options: RunOptions) -> dict[str, Any]:
    """What the report needs to know: forced re-reads count their lines again."""
    return {
        "rereads": options.rereads,
        "since": options.spec.since.isoformat() if options.spec.since else None,
        "until": options.spec.until.isoformat() if options.spec.until else None,
    }


def _show_dry_run(options: RunOptions, rejects: RejectsPreview, as_json: bool) -> None:
    if not as_json:
        for dataset, records in options.samples.items():
            click.echo(f"# {dataset}: first {len(records)} records")
            for record in records:
                click.echo(orjson.dumps(record, option=orjson.OPT_INDENT_2).decode())
    for reject in rejects.kept:
        click.echo(f"would reject {reject['file']}:{reject['line']}: {reject['reason']}", err=True)


@main.command("push")
@store_option
@click.option("--dataset", "datasets", multiple=True, help="Only these datasets (repeatable).")
@config_option
@rejects_option("<store>/_rejects/push-<time>.jsonl")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
@click.option("--quiet", "-q", is_flag=True, help="No summary table on stderr.")
@rubrix_options
def push_command(
    store: Path | None,
    datasets: tuple[str, ...],
    config_path: Path | None,
    rejects_path: Path | None,
    as_json: bool,
    quiet: bool,
    **params: Any,
) -> None:
    """Send the records of a local store to a Rubrix server."""
    from ingest.push import push
    from ingest.sinks.local.store import list_datasets

    try:
        cfg = config_mod.load(config_path) if config_path else config_mod.Config()
    except config_mod.ConfigError as exc:
        fail(str(exc))
    store_dir = store or Path(cfg.store or DEFAULT_STORE)
    rubrix = _rubrix_params(params)
    if not (rubrix["rubrix_url"] or cfg.rubrix.get("url")):
        fail("push needs a server: give --rubrix-url or set RUBRIX_API_URL")
    available = list_datasets(store_dir) if store_dir.is_dir() else []
    missing = [d for d in datasets if d not in available]
    if not available or missing:
        fail(f"no dataset {missing[0]!r} in {store_dir}" if missing else f"no datasets in {store_dir}")
    sink = make_sink(cfg, store_dir, rubrix)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    rejects = RejectsFile(rejects_path or store_dir / "_rejects" / f"push-{stamp}.jsonl")
    summary = Summary(target=sink.description)
    with _stop_on_delivery_failure(summary, quiet):
        push(store_dir, list(datasets) or available, sink, rejects, summary)
    _report(summary, quiet, as_json)


@main.command("show")
@click.argument("datasets", nargs=-1)
@existing_store_option
@click.option("--limit", "-n", default=0, show_default=True, help="Also print the last N records of each.")
def show_command(datasets: tuple[str, ...], store: Path, limit: int) -> None:
    """List the datasets in a local store: task, records, time range."""
    from ingest.sinks.local.store import list_datasets, read_dataset

    if not store.is_dir():
        fail(f"no local store at {store}")
    names = list(datasets) or list_datasets(store)
    for name in names:
        table = read_dataset(store, name)
        if table.num_rows == 0:
            click.echo(f"{name}: empty")
            continue
        frame = table.select(["event_timestamp", "task", "record"]).to_pandas().sort_values("event_timestamp")
        first, last = frame["event_timestamp"].iloc[[0, -1]]
        span = f"{first:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M} UTC"
        click.echo(f"{name}: {len(frame)} {frame['task'].iloc[0]} records, {span}")
        for record in frame["record"].tail(limit):
            click.echo("  " + record)


@main.command("report")
@existing_store_option
@click.option("--dataset", "datasets", multiple=True, help="Only these datasets (repeatable).")
@click.option(
    "--since", type=TimeParam(), help="Only records at or after this time (ISO-8601 or 2h, 7d ago)."
)
@click.option("--until", type=TimeParam(), help="Only records before this time.")
@click.option(
    "--drift-window",
    type=DurationParam(),
    default="1d",
    show_default=True,
    help="Length of the latest window compared with everything before it.",
)
@click.option(
    "--drift-threshold", type=float, default=0.2, show_default=True, help="PSI above which drift is flagged."
)
@click.option(
    "--low-confidence",
    type=float,
    default=0.6,
    show_default=True,
    help="Top scores below this are low-confidence.",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default="report.html",
    show_default=True,
    help="The HTML file to write.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON on stdout instead.")
def report_command(
    store: Path,
    datasets: tuple[str, ...],
    since: datetime | None,
    until: datetime | None,
    drift_window: float,
    drift_threshold: float,
    low_confidence: float,
    output: Path,
    as_json: bool,
) -> None:
    """Monitoring metrics of a local store, as one self-contained HTML page (or JSON).

    \b
    ingest report -o report.html
    ingest report --dataset monitoring_spacy --since 7d --json
    """
    import time

    from ingest.report.metrics import ReportSpec, compute
    from ingest.sinks.local.store import list_datasets

    started = time.perf_counter()
    if not store.is_dir():
        fail(f"no local store at {store}")
    unknown = sorted(set(datasets) - set(list_datasets(store)))
    if unknown:
        known = ", ".join(list_datasets(store)) or "none"
        fail(f"no dataset {', '.join(unknown)} in {store} (it has: {known})")
    spec = ReportSpec(
        since=since,
        until=until,
        drift_window=timedelta(seconds=drift_window),
        drift_threshold=drift_threshold,
        low_confidence=low_confidence,
    )
    metrics = compute(store, list(datasets) or None, spec)
    if as_json:
        click.echo(orjson.dumps(metrics, option=orjson.OPT_INDENT_2).decode())
        return
    from ingest.report.html import MissingPlotting, render

    try:
        page = render(metrics)
    except MissingPlotting as exc:
        fail(str(exc), code=1)
    partial = output.with_name(f".{output.name}.partial")
    partial.write_text(page, encoding="utf-8")
    partial.replace(output)
    records = sum(d["records"] for d in metrics["datasets"].values())
    click.echo(
        f"report of {len(metrics['datasets'])} datasets, {records:,} records written to {output} "
        f"in {time.perf_counter() - started:.2f}s",
        err=True,
    )
