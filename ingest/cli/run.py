"""``ingest run PATHS...`` (also plain ``ingest PATHS...``): parse, resolve, call, report."""

from __future__ import annotations

import signal
import sys
import threading
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import orjson

from ingest.cli.options import (
    DurationParam,
    progress_bar,
    reading_options,
    rejects_option,
    reporting_options,
    rubrix_options,
    server_flags,
    store_option,
)
from ingest.cli.outcome import EXIT_SIGNAL_BASE, examples, nothing_matched, warn

if TYPE_CHECKING:
    from ingest.run import RunResult


@click.command(
    "run",
    short_help="Ingest access logs into the local store or a Rubrix server.",
    epilog=examples(
        "ingest /var/log/models/ --endpoint /spacy/ -q",
        "ingest logs/access.jsonl --config ingest.toml --max-rejects 1% --json",
        "RUBRIX_API_URL=http://localhost:6900 ingest logs/ --since 7d --dry-run --show 2",
    ),
)
@click.argument("paths", nargs=-1, required=True)
@reading_options
@store_option
@rejects_option("<store>/_rejects/<time>.jsonl")
@reporting_options
@click.option("--dry-run", is_flag=True, help="Map and validate, show a few records, write nothing.")
@click.option(
    "--show",
    type=click.IntRange(min=0),
    metavar="N",
    help="With --dry-run: records per dataset shown [default: 3].",
)
@click.option("--jobs", "-j", type=click.IntRange(min=1), help="Worker processes [default: auto].")
@click.option(
    "--state",
    "state_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Checkpoint file, with checkpoints per target and selection of endpoints "
    "[default: <store>/_state.sqlite].",
)
@click.option("--from-start", is_flag=True, help="Ignore checkpoints: read every file from its start.")
@click.option("--wait", is_flag=True, help="If another run holds the lock, wait for it instead of exiting.")
@click.option(
    "--every",
    type=DurationParam(positive=True),
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
    log_format: str | None,
    dataset: str | None,
    mapper: str | None,
    store: Path | None,
    rejects_path: Path | None,
    as_json: bool,
    dry_run: bool,
    show: int | None,
    jobs: int | None,
    quiet: bool,
    max_rejects: tuple[float, bool] | None,
    state_path: Path | None,
    from_start: bool,
    wait: bool,
    every: float | None,
    **params: Any,
) -> None:
    """Ingest access logs (files, globs, directories, .gz, or - for stdin).

    Checkpoints make repeated runs read only what is new. They belong to a target (the
    store, or the server URL and workspace) and a selection of endpoints: another target
    or selection reads the files from their start (ids make that safe). --since/--until
    read the given window from the start of every file and leave checkpoints alone.
    """
    from ingest import settings
    from ingest.run import RunRequest, run_ingest, stop_on_signals, stopped_by
    from ingest.sinks.local.layout import StoreLayout
    from ingest.transform.stage import TransformSpec

    if show is not None and not dry_run:
        raise click.UsageError(
            "--show only applies with --dry-run: it prints records instead of writing them"
        )
    config = settings.load_config(config_path)
    routes = settings.routes(config, endpoints, dataset, mapper)
    server = settings.server(server_flags(params), config)
    settings.check_routes(
        routes, local_store=server is None and not dry_run, workspace=server.workspace if server else None
    )
    if since and until and since >= until:
        raise click.BadParameter("--since must be before --until", param_hint="--since")
    store_dir = settings.store_dir(store, config)
    profiles = settings.profiles(config, log_format)
    request = RunRequest(
        paths=list(paths),
        spec=TransformSpec(
            routes=routes,
            selected=frozenset(endpoints) or None,
            since=since,
            until=until,
            profiles=profiles,
        ),
        log_format=log_format or config.format,
        input_formats=config.inputs,
        store=store_dir,
        state_path=state_path or (Path(config.state) if config.state else StoreLayout(store_dir).state_file),
        rejects_path=rejects_path or (Path(config.rejects) if config.rejects else None),
        server=server,
        dry_run=dry_run,
        show=3 if show is None else show,
        jobs=jobs,
        from_start=from_start,
        wait=wait,
        every=every,
        quiet=quiet,
        max_rejects=max_rejects,
    )
    stop = threading.Event()

    def on_result(result: RunResult) -> None:
        signum = stopped_by(stop)
        if signum is not None and every is None:
            # a one-shot run stopped by a signal did not finish its work: it says so, as a
            # shell would (128 + the signal), after saving and reporting its progress
            result.summary.exit_code = EXIT_SIGNAL_BASE + signum
            result.summary.error = (
                f"stopped by {signal.Signals(signum).name}: progress is saved, the next run goes on from it"
            )
        _report(result, dry_run, as_json, quiet)
        # a dry run too: it is where a selection gets checked before the real run
        matched = nothing_matched(result.summary, endpoints, config.routes)
        if matched:
            warn(matched)

    with stop_on_signals(stop):
        last = run_ingest(request, stop=stop, on_result=on_result, progress=progress_bar(quiet))
    if last is not None and last.summary.exit_code:
        click.echo(f"ingest: {last.summary.error}", err=True)
        sys.exit(last.summary.exit_code)


def _report(result: RunResult, dry_run: bool, as_json: bool, quiet: bool) -> None:
    """Dry runs: the records kept, and rejects; then the summary (table and/or JSON)."""
    if dry_run:
        if not as_json:
            for name, records in result.samples.items():
                click.echo(f"# {name}: first {len(records)} records")
                for record in records:
                    click.echo(orjson.dumps(record, option=orjson.OPT_INDENT_2).decode())
        for reject in result.preview_rejects:
            click.echo(f"would reject {reject['file']}:{reject['line']}: {reject['reason']}", err=True)
    report_summary(result.summary, quiet, as_json, {"samples": result.samples} if dry_run else None)


def report_summary(summary: Any, quiet: bool, as_json: bool, extra: dict[str, Any] | None = None) -> None:
    """The table on stderr unless quiet (then one warning line if anything was rejected);
    the same summary as JSON on stdout when asked."""
    if not quiet:
        click.echo(summary.render(), err=True)
    else:
        if summary.warning():
            warn(summary.warning())
        for text in getattr(summary, "warnings", ()):  # the table, which says them, is left out
            warn(text)
    if as_json:
        data = {**summary.to_json(), **(extra or {})}
        click.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())
