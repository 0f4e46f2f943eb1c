"""``ingest push``: a local store's records to a Rubrix server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ingest.cli.options import config_option, rejects_option, rubrix_options, server_flags, store_option
from ingest.cli.run import report_summary


@click.command("push")
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
    from ingest import settings
    from ingest.run import run_push

    config = settings.load_config(config_path)
    server = settings.server(server_flags(params), config)
    summary = run_push(settings.store_dir(store, config), list(datasets), server, rejects_path, quiet)
    report_summary(summary, quiet, as_json)
