"""``ingest backfill PATHS...``: ``ingest run`` on a Dask cluster: parse, resolve, call, report.

Dask is imported only when the command runs (the ``dask`` extra): ``ingest --help`` and
the everyday ``ingest`` do not pay for it.
"""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from ingest.cli.options import (
    reading_options,
    rejects_option,
    reporting_options,
    rubrix_options,
    server_flags,
)
from ingest.cli.outcome import examples, nothing_matched, warn


def _size(value: str) -> int:
    """``64MiB``, ``512KB``, ``1GB`` or bytes, as Dask reads sizes."""
    from dask.utils import parse_bytes

    try:
        size = int(parse_bytes(value))
    except (ValueError, TypeError) as exc:
        raise click.BadParameter(
            f"{value!r} is not a size like 64MiB: {exc}", param_hint="--split-bytes"
        ) from None
    if size <= 0:  # a file cut into ranges of no bytes: no task would read it
        raise click.BadParameter(f"{value!r} is not a positive size like 64MiB", param_hint="--split-bytes")
    return size


def _store(value: str) -> Path | str:
    """An object-store URL stays a URL; anything else is a directory."""
    from ingest.runners.dask_objectstore import is_url

    return value if is_url(value) else Path(value)


@click.command(
    "backfill",
    short_help="Ingest access logs on a Dask cluster (the same records as ingest run).",
    epilog=examples(
        "ingest backfill /shared/logs/ --scheduler tcp://scheduler:8786 --store /shared/store",
        "ingest backfill logs/ --cluster local --workers 4",
    ),
)
@click.argument("paths", nargs=-1, required=True)
@click.option(
    "--scheduler",
    envvar="DASK_SCHEDULER_ADDRESS",
    metavar="ADDRESS",
    help="Dask scheduler to run on, e.g. tcp://host:8786 (env DASK_SCHEDULER_ADDRESS).",
)
@click.option(
    "--cluster",
    type=click.Choice(["local"]),
    help="Start a Dask LocalCluster on this machine instead of using a scheduler.",
)
@click.option("--workers", type=click.IntRange(min=1), help="LocalCluster worker processes [default: cores].")
@click.option(
    "--memory-limit",
    default="auto",
    show_default=True,
    help="LocalCluster memory limit per worker (e.g. 2GiB); Dask restarts a worker over it.",
)
@click.option(
    "--split-bytes",
    default="64MiB",
    show_default=True,
    help="Uncompressed files larger than this are split into tasks of this many bytes; smaller "
    "files go many to a task, up to this many bytes.",
)
@click.option(
    "--retries",
    type=click.IntRange(min=0),
    default=3,
    show_default=True,
    help="Times Dask reruns a failed task.",
)
@reading_options
@click.option(
    "--store",
    metavar="DIR|URL",
    help="The store: a directory every worker sees, or an object-store URL such as s3://bucket/prefix "
    "(env RUBRIX_INGEST_STORE) [default: ./rubrix-store].",
)
@rejects_option("<store>/_rejects/<time>.jsonl")
@reporting_options(
    max_rejects_help="Stop the backfill (exit 65) past N rejected lines and records, or N% of the lines "
    "read, checked as each task finishes in input order: that task and the later ones are not recorded "
    "as done (their records may be in the store already; the rerun replaces them)."
)
@rubrix_options
def backfill_command(
    paths: tuple[str, ...],
    scheduler: str | None,
    cluster: str | None,
    workers: int | None,
    memory_limit: str,
    split_bytes: str,
    retries: int,
    endpoints: tuple[str, ...],
    since: datetime | None,
    until: datetime | None,
    config_path: Path | None,
    log_format: str | None,
    dataset: str | None,
    mapper: str | None,
    store: str | None,
    rejects_path: Path | None,
    as_json: bool,
    quiet: bool,
    max_rejects: tuple[float, bool] | None,
    **params: Any,
) -> None:
    """Ingest access logs on a Dask cluster: the same records, store and summary as `ingest run`.

    Work is split by file (small files many to a task) and large uncompressed files by byte
    ranges. The checkpoints and the lock of cron runs are left alone; running the same
    backfill again after a failure does only the tasks that did not finish.
    """
    from ingest import settings
    from ingest.cli.run import report_summary
    from ingest.errors import UsageError
    from ingest.transform.stage import TransformSpec

    if scheduler is not None and cluster is not None:
        source = click.get_current_context().get_parameter_source("scheduler")
        if source is click.core.ParameterSource.ENVIRONMENT:
            scheduler = None  # a flag wins over the environment, as for every setting
    if (scheduler is None) == (cluster is None):
        raise UsageError(
            "give either --scheduler ADDRESS (or DASK_SCHEDULER_ADDRESS) or --cluster local"
            if scheduler is None
            else "--scheduler and --cluster are alternatives: give one"
        )
    if scheduler is not None:
        context = click.get_current_context()
        for name, flag in (("workers", "--workers"), ("memory_limit", "--memory-limit")):
            if context.get_parameter_source(name) is click.core.ParameterSource.COMMANDLINE:
                raise UsageError(
                    f"{flag} sizes the cluster of --cluster local; a scheduler's workers are sized where "
                    "they start (dask worker --nworkers, --memory-limit)"
                )
        from ingest.runners.dask import check_scheduler_address

        check_scheduler_address(scheduler)
    config = settings.load_config(config_path)
    routes = settings.routes(config, endpoints, dataset, mapper)
    server = settings.server(server_flags(params), config)
    settings.check_routes(routes, local_store=server is None, workspace=server.workspace if server else None)
    if since and until and since >= until:
        raise click.BadParameter("--since must be before --until", param_hint="--since")
    from ingest.runners.dask import BackfillRequest, run_backfill

    request = BackfillRequest(
        paths=list(paths),
        spec=TransformSpec(
            routes=routes,
            selected=frozenset(endpoints) or None,
            since=since,
            until=until,
            profiles=settings.profiles(config, log_format),
        ),
        log_format=log_format or config.format,
        input_formats=config.inputs,
        store=_store(settings.pick("store", store, None, config.store)),
        rejects_path=rejects_path or (Path(config.rejects) if config.rejects else None),
        server=server,
        scheduler=scheduler,
        workers=workers,
        memory_limit=memory_limit,
        split_bytes=_size(split_bytes),
        retries=retries,
        quiet=quiet,
        max_rejects=max_rejects,
    )

    def connected(where: str, n: int, dashboard: str | None) -> None:
        if not quiet:
            click.echo(f"dask: {where}, {n} workers; dashboard: {dashboard}", err=True)

    result = run_backfill(request, progress=sys.stderr.isatty() and not quiet, on_connect=connected)
    report = result.report
    if report.resumed and not quiet:
        click.echo(
            f"backfill {report.run}: {report.resumed} of {report.tasks} tasks were done by an earlier "
            "attempt and were skipped",
            err=True,
        )
    unreadable = None
    if result.summary.failed_files:
        from ingest.errors import InputsUnreadable

        # the summary names each file and why; the exit code says some input was not read
        unreadable = InputsUnreadable(result.summary.failed_files)
        result.summary.exit_code, result.summary.error = unreadable.exit_code, str(unreadable)
        unreadable.reported = True  # --json's summary above says so: no second JSON document
    report_summary(
        result.summary, quiet, as_json, {"backfill": report.to_json(), "dashboard": result.dashboard}
    )
    matched = nothing_matched(result.summary, endpoints, config.routes)
    if matched:
        warn(matched)
    if unreadable is not None:
        raise unreadable
