"""``ingest push``: a local store's records to a Rubrix server."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import click

from ingest.cli.options import (
    config_option,
    rejects_option,
    rubrix_options,
    server_flags,
    store_option,
    store_records_options,
)
from ingest.cli.outcome import examples
from ingest.cli.run import report_summary


@click.command(
    "push",
    short_help="Send the records of a local store to a Rubrix server.",
    epilog=examples(
        "RUBRIX_API_URL=http://rubrix:6900 ingest push",
        "ingest push --dataset monitoring_spacy --since 2026-11-01 --until 2026-11-08 --workspace team-a",
        "ingest push --config ingest.toml --json",
    ),
)
@store_option
@store_records_options
@click.option(
    "--from-start", is_flag=True, help="Push every part file, also those already pushed to this target."
)
@config_option
@rejects_option("<store>/_rejects/push-<time>.jsonl")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
@click.option("--quiet", "-q", is_flag=True, help="No summary table on stderr; warnings still.")
@click.option("--wait", is_flag=True, help="If another run holds the lock, wait for it instead of exiting.")
@rubrix_options
def push_command(
    store: Path | None,
    datasets: tuple[str, ...],
    since: datetime | None,
    until: datetime | None,
    from_start: bool,
    config_path: Path | None,
    rejects_path: Path | None,
    as_json: bool,
    quiet: bool,
    wait: bool,
    **params: Any,
) -> None:
    """Send the records of a local store to a Rubrix server.

    Only the part files not yet pushed to this server and workspace are sent (checkpoints
    in the store's state file); --since/--until send that window and leave them alone.
    """
    from ingest import settings
    from ingest.run import run_push

    if since and until and since >= until:
        raise click.BadParameter("--since must be before --until", param_hint="--since")
    config = settings.load_config(config_path)
    server = settings.server(server_flags(params), config)
    summary = run_push(
        settings.store_dir(store, config),
        list(datasets),
        server,
        rejects_path,
        quiet,
        state_path=Path(config.state) if config.state else None,
        since=since,
        until=until,
        from_start=from_start,
        wait=wait,
    )
    report_summary(summary, quiet, as_json)
