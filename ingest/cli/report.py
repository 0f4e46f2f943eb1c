"""``ingest report``: monitoring metrics of a local store as HTML or JSON."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from pathlib import Path

import click
import orjson

from ingest.cli.options import (
    DurationParam,
    config_option,
    existing_store,
    existing_store_option,
    store_records_options,
)
from ingest.cli.outcome import examples


@click.command(
    "report",
    short_help="Monitoring metrics of a local store as one HTML page (or JSON).",
    epilog=examples(
        "ingest report -o report.html",
        "ingest report --dataset monitoring_spacy --since 7d --json",
        "ingest report --config ingest.toml --drift-window 6h -o /var/www/monitoring.html",
    ),
)
@existing_store_option
@config_option
@store_records_options
@click.option(
    "--drift-window",
    type=DurationParam(),
    default="1d",
    show_default=True,
    help="Length of the latest window compared with everything before it.",
)
@click.option(
    "--drift-threshold",
    type=click.FloatRange(min=0),
    default=0.2,
    show_default=True,
    help="PSI above which drift is flagged.",
)
@click.option(
    "--low-confidence",
    type=click.FloatRange(0, 1),
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
    store: Path | None,
    config_path: Path | None,
    datasets: tuple[str, ...],
    since: datetime | None,
    until: datetime | None,
    drift_window: float,
    drift_threshold: float,
    low_confidence: float,
    output: Path,
    as_json: bool,
) -> None:
    """Monitoring metrics of a local store, as one self-contained HTML page (or JSON)."""
    from ingest.report.metrics import ReportSpec, compute

    started = time.perf_counter()
    store = existing_store(store, config_path, datasets)
    spec = ReportSpec(
        since=since,
        until=until,
        drift_window=timedelta(seconds=drift_window),
        drift_threshold=drift_threshold,
        low_confidence=low_confidence,
    )
    metrics = compute(store, list(datasets) or None, spec)
    if metrics.get("empty_window"):
        click.echo(f"ingest: warning: {metrics['empty_window']}", err=True)
    if as_json:
        click.echo(orjson.dumps(metrics, option=orjson.OPT_INDENT_2).decode())
        return
    from ingest.report.html import render

    page = render(metrics)
    partial = output.with_name(f".{output.name}.partial")
    partial.write_text(page, encoding="utf-8")
    partial.replace(output)
    records = sum(d["records"] for d in metrics["datasets"].values())
    click.echo(
        f"report of {len(metrics['datasets'])} datasets, {records:,} records written to {output} "
        f"in {time.perf_counter() - started:.2f}s",
        err=True,
    )
