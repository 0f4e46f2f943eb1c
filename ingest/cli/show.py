"""``ingest show``: the datasets of a local store."""

from __future__ import annotations

from pathlib import Path

import click

from ingest.cli.options import config_option, existing_store, existing_store_option
from ingest.cli.outcome import examples


@click.command(
    "show",
    short_help="List the datasets of a local store: task, records, time range.",
    epilog=examples("ingest show", "ingest show monitoring_spacy -n 2", "ingest show --config ingest.toml"),
)
@click.argument("datasets", nargs=-1)
@existing_store_option
@config_option
@click.option("--limit", "-n", default=0, show_default=True, help="Also print the last N records of each.")
@click.option("--json", "as_json", is_flag=True, help="Errors as JSON on stdout (the listing is text).")
def show_command(
    datasets: tuple[str, ...], store: Path | None, config_path: Path | None, limit: int, as_json: bool
) -> None:
    """List the datasets in a local store: task, records, time range."""
    from ingest.sinks.local.store import list_datasets, read_dataset

    store = existing_store(store, config_path, datasets)
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
