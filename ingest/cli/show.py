"""``ingest show``: the datasets of a local store."""

from __future__ import annotations

from pathlib import Path

import click

from ingest.cli.options import existing_store_option
from ingest.errors import UsageError


@click.command("show")
@click.argument("datasets", nargs=-1)
@existing_store_option
@click.option("--limit", "-n", default=0, show_default=True, help="Also print the last N records of each.")
def show_command(datasets: tuple[str, ...], store: Path | None, limit: int) -> None:
    """List the datasets in a local store: task, records, time range."""
    from ingest import settings
    from ingest.sinks.local.store import list_datasets, read_dataset

    store = settings.store_dir(store, settings.Config())
    if not store.is_dir():
        raise UsageError(f"no local store at {store}")
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
