"""``ingest backfill``: ``ingest run`` on a Dask cluster (``--scheduler`` or ``--cluster local``).

Dask is imported only when the command runs: it is the ``dask`` extra, and the everyday
``ingest`` should not pay for importing it.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from ingest import config as config_mod
from ingest.cli import (
    DEFAULT_STORE,
    TimeParam,
    _check_mappers,
    _report,
    _routes,
    _rubrix_params,
    config_option,
    fail,
    rejects_option,
    rubrix_options,
    store_option,
)
from ingest.read import InputError, expand
from ingest.rejects import RejectsFile
from ingest.runlog import append_run
from ingest.summary import Summary
from ingest.transform import TransformSpec


def _size(value: str) -> int:
    from dask.utils import parse_bytes

    try:
        return int(parse_bytes(value))
    except (ValueError, TypeError) as exc:
        raise click.BadParameter(
            f"{value!r} is not a size like 64MB: {exc}", param_hint="--split-bytes"
        ) from None


@click.command("backfill")
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
    help="LocalCluster memory limit per worker (e.g. 2GiB); Dask pauses, then restarts, a worker over it.",
)
@click.option(
    "--split-bytes",
    default="64MiB",
    show_default=True,
    help="Uncompressed files larger than this are split into tasks of this many bytes.",
)
@click.option(
    "--retries",
    type=click.IntRange(min=0),
    default=3,
    show_default=True,
    help="Times Dask runs a failed task again.",
)
@click.option("--endpoint", "-e", "endpoints", multiple=True, metavar="PATH", help="Only these endpoints.")
@click.option("--since", type=TimeParam(), help="Only requests at or after this time (ISO-8601 or 7d ago).")
@click.option("--until", type=TimeParam(), help="Only requests before this time.")
@config_option
@click.option("--dataset", help="Dataset for the single --endpoint given.")
@click.option("--mapper", help="Mapper for the single --endpoint given.")
@store_option
@rejects_option("<store>/_rejects/<time>.jsonl")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
@click.option("--quiet", "-q", is_flag=True, help="No summary table or progress bar on stderr.")
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
    dataset: str | None,
    mapper: str | None,
    store: Path | None,
    rejects_path: Path | None,
    as_json: bool,
    quiet: bool,
    **params: Any,
) -> None:
    """Ingest access logs on a Dask cluster: the same records, store and summary as `ingest run`.

    Work is split by file, and large uncompressed files by byte ranges. Checkpoints and the
    run lock of cron runs are left alone; rerunning the same backfill after a failure does
    only the tasks that did not finish.

    \b
    ingest backfill /shared/logs/ --scheduler tcp://scheduler:8786 --store /shared/rubrix-store
    ingest backfill logs/ --cluster local --workers 4
    """
    if (scheduler is None) == (cluster is None):
        raise click.UsageError(
            "give either --scheduler ADDRESS (or DASK_SCHEDULER_ADDRESS) or --cluster local"
            if scheduler is None
            else "--scheduler and --cluster are alternatives: give one"
        )
    try:
        import distributed  # noqa: F401
    except ImportError:
        fail("ingest backfill needs Dask: pip install 'rubrix-ingest[dask]'")
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
    if any(s.path is None and getattr(s, "url", None) is None for s in sources):
        fail("a backfill reads files, not stdin")
    if since and until and since >= until:
        raise click.BadParameter("--since must be before --until", param_hint="--since")
    store_dir = store or Path(cfg.store or DEFAULT_STORE)
    spec = TransformSpec(routes=routes, selected=frozenset(endpoints) or None, since=since, until=until)
    server, target = _server(cfg, _rubrix_params(params), store_dir)

    from ingest.runners.dask import BackfillOptions, backfill, upload_mappers

    options = BackfillOptions(
        sources=sources,
        spec=spec,
        store=store_dir,
        server=server,
        split_bytes=_size(split_bytes),
        retries=retries,
        progress=sys.stderr.isatty() and not quiet,
    )
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    rejects = RejectsFile(rejects_path or Path(cfg.rejects or store_dir / "_rejects" / f"{stamp}.jsonl"))
    summary = Summary(target=target)
    started = datetime.now(UTC)
    # SIGTERM stops the backfill as Ctrl-C does: finished tasks stay recorded, for the rerun.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    with _client(scheduler, workers, memory_limit) as client:
        link = client.dashboard_link
        if not quiet:
            n = len(client.scheduler_info(n_workers=-1)["workers"])
            where = scheduler or "a local cluster"
            click.echo(f"dask: {where}, {n} workers; dashboard: {link}", err=True)
        upload_mappers(client, routes)
        report = backfill(client, options, rejects, summary)
    if report.resumed and not quiet:
        click.echo(
            f"backfill {report.run}: {report.resumed} of {report.tasks} tasks were done by an earlier "
            "attempt and were skipped",
            err=True,
        )
    if report.failed is not None:
        if not quiet:
            click.echo(summary.render(), err=True)
        done = report.resumed + sum(report.workers.values())
        fail(
            f"backfill {report.run} stopped: {report.failed}; {done} of {report.tasks} tasks are done "
            "and recorded: run the same command again to do the rest",
            code=1,
        )
    flags = {
        "rereads": True,  # a backfill reads every file from its start
        "since": since.isoformat() if since else None,
        "until": until.isoformat() if until else None,
        "runner": "dask",
        "backfill": report.run,
    }
    append_run(store_dir, summary, started, flags)
    _report(summary, quiet, as_json, {"backfill": report.to_json(), "dashboard": link})


def _server(cfg: config_mod.Config, params: dict[str, Any], store_dir: Path) -> tuple[Any, str]:
    """The Rubrix settings when a URL is configured (checked by connecting once, here, so a
    bad URL or key stops the run before a task starts), and the summary's target line."""
    settings = {**cfg.rubrix, **{k: v for k, v in params.items() if v is not None}}
    url = settings.pop("rubrix_url", None) or settings.pop("url", None)
    if not url:
        return None, f"local store {store_dir}"
    from ingest.sinks import DeliveryError
    from ingest.sinks.rubrix import RubrixSettings, RubrixSink

    rubrix = RubrixSettings(url=url, **settings)
    try:
        sink = RubrixSink(rubrix)
    except DeliveryError as exc:
        fail(str(exc), code=1)
    sink.close()
    return rubrix, sink.description


class _client:
    """A Client of the given scheduler, or of a LocalCluster started (and stopped) here."""

    def __init__(self, scheduler: str | None, workers: int | None, memory_limit: str):
        self.scheduler, self.workers, self.memory_limit = scheduler, workers, memory_limit
        self.cluster: Any = None
        self.client: Any = None

    def __enter__(self) -> Any:
        from distributed import Client, LocalCluster

        if self.scheduler is not None:
            try:
                self.client = Client(self.scheduler, timeout="20s")
            except OSError as exc:
                fail(f"cannot reach the Dask scheduler at {self.scheduler}: {exc}", code=1)
            return self.client
        self.cluster = LocalCluster(
            n_workers=self.workers or os.cpu_count() or 1,
            threads_per_worker=1,  # the transform is Python: one thread per process
            memory_limit=self.memory_limit,
            dashboard_address="127.0.0.1:0",
            silence_logs=logging.ERROR,
        )
        self.client = Client(self.cluster)
        return self.client

    def __exit__(self, *exc: object) -> None:
        if self.client is not None:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()
