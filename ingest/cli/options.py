"""Options and parameter types shared by the commands; defaults come from ingest.settings."""

from __future__ import annotations

import contextlib
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click

from ingest.cli.outcome import MaxRejectsParam
from ingest.settings import DEFAULT_STORE, DEFAULTS

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|h|d|w)$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


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
    """``30s``, ``5m``, ``1h``, ``2d``, ``1w`` (or a number of seconds) -> seconds."""

    name = "DURATION"

    def __init__(self, positive: bool = False) -> None:
        # --every 0s would run back to back and spin a core on an idle log; a period must be > 0.
        self.positive = positive

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, int | float):
            seconds = float(value)
        else:
            match = _DURATION.match(str(value).strip())
            if not match:
                self.fail(f"{value!r} is not a duration like 30s, 5m or 1h", param, ctx)
            seconds = timedelta(**{_UNITS[match.group(2)]: float(match.group(1))}).total_seconds()
        if self.positive and seconds <= 0:
            self.fail(f"{value!r} is not a period: give a duration above zero, like 30s or 5m", param, ctx)
        return seconds


class TimeParam(click.ParamType):
    name = "TIME"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> datetime:
        if isinstance(value, datetime):
            return value
        return parse_time(value)


# The environment variables are read by ingest.settings (flags > environment > config).
store_option = click.option(
    "--store",
    type=click.Path(file_okay=False, path_type=Path),
    help=f"Local store directory (env RUBRIX_INGEST_STORE) [default: ./{DEFAULT_STORE}].",
)

# For commands that read a store: the same option, the same default, written the same way.
existing_store_option = store_option


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
    help="TOML config: endpoint routes, store, [rubrix] settings (env RUBRIX_INGEST_CONFIG); "
    "its store, state and rejects paths and ./file.py mappers are relative to the file.",
)

SERVER_FLAGS = ("rubrix_url", "api_key", "workspace", "batch_size", "concurrency", "retry_for", "timeout")


def rubrix_options(func: Any) -> Any:
    """The Rubrix target options shared by ``run`` and ``push``."""
    options = [
        click.option(
            "--rubrix-url", help="Send to this Rubrix/Argilla server (env RUBRIX_API_URL, ARGILLA_API_URL)."
        ),
        click.option(
            "--api-key", help="API key (env RUBRIX_API_KEY, ARGILLA_API_KEY; prefer the environment)."
        ),
        click.option("--workspace", help="Workspace (env RUBRIX_WORKSPACE, ARGILLA_WORKSPACE)."),
        click.option(
            "--batch-size",
            type=click.IntRange(1, 5000),
            help=f"Records per request [default: {DEFAULTS['batch_size']}].",
        ),
        click.option(
            "--concurrency",
            type=click.IntRange(1, 64),
            help=f"Requests in flight [default: {DEFAULTS['concurrency']}].",
        ),
        click.option(
            "--retry-for",
            type=click.FloatRange(0),
            metavar="SECONDS",
            help=f"How long to keep retrying transient failures [default: {DEFAULTS['retry_for']:g}].",
        ),
        click.option(
            "--timeout",
            type=click.FloatRange(0.1),
            metavar="SECONDS",
            help=f"Per request [default: {DEFAULTS['timeout']:g}].",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def server_flags(params: dict[str, Any]) -> dict[str, Any]:
    """Take the server options out of a command's keyword arguments."""
    return {k: params.pop(k) for k in SERVER_FLAGS}


def progress_bar(quiet: bool) -> Callable[[int], AbstractContextManager[Callable[[int], None] | None]]:
    """A progress bar on a terminal only, never with --quiet or an empty input."""

    @contextlib.contextmanager
    def bar(total: int) -> Iterator[Callable[[int], None] | None]:
        if not (sys.stderr.isatty() and not quiet and total):
            yield None
            return
        with click.progressbar(length=total, label="ingesting", file=sys.stderr) as shown:
            yield shown.update

    return bar


def _stack(func: Any, options: list[Any]) -> Any:
    for option in reversed(options):
        func = option(func)
    return func


def store_records_options(func: Any) -> Any:
    """Which of a local store's records a command takes, shared by ``push`` and ``report``:
    --dataset (repeatable), --since, --until."""
    return _stack(
        func,
        [
            click.option("--dataset", "datasets", multiple=True, help="Only these datasets (repeatable)."),
            click.option(
                "--since",
                type=TimeParam(),
                help="Only records at or after this time (ISO-8601 or 2h, 7d ago).",
            ),
            click.option("--until", type=TimeParam(), help="Only records before this time."),
        ],
    )


def existing_store(store: Path | None, config_path: Path | None, datasets: tuple[str, ...]) -> Path:
    """The local store a command that reads one (``show``, ``report``) is given, checked.

    ``store``: --store, else the environment, the config (``config_path``: --config) or the
    default, as ``settings.store_dir`` resolves it; ``datasets``: the names asked for (none:
    all). Raises UsageError (exit 2) when the store is not a directory, or lacks a dataset
    asked for (named with a near miss, ``suggest.check_datasets``); ConfigError (exit 2)
    when the config file is unreadable or invalid.
    """
    from ingest import settings
    from ingest.errors import UsageError
    from ingest.sinks.local.store import list_datasets
    from ingest.suggest import check_datasets

    found = settings.store_dir(store, settings.load_config(config_path))
    if not found.is_dir():
        raise UsageError(f"no local store at {found}")
    check_datasets(found, datasets, list_datasets(found))
    return found


def _endpoints_as_read(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> tuple[str, ...]:
    """Endpoints as the reader has them: with a credential in its query string masked
    (``/predict?api_key=[redacted]``), so that the path as the user knows it selects them and
    the credential goes no further than the flag."""
    from ingest.accesslog.redact import redact_endpoint

    return tuple(redact_endpoint(value) for value in values)


def reading_options(func: Any) -> Any:
    """What a run reads and how it maps it, shared by ``run`` and ``backfill`` (one job, two
    runners): --endpoint, --since/--until, --config, --format, --dataset, --mapper."""
    return _stack(
        func,
        [
            click.option(
                "--endpoint",
                "-e",
                "endpoints",
                multiple=True,
                metavar="PATH",
                callback=_endpoints_as_read,
                help="Only these endpoint paths (exact match, repeatable).",
            ),
            click.option(
                "--since",
                type=TimeParam(),
                help="Only requests at or after this time (ISO-8601 or 2h, 7d ago).",
            ),
            click.option("--until", type=TimeParam(), help="Only requests before this time."),
            config_option,
            click.option(
                "--format",
                "log_format",
                metavar="NAME",
                help="Log format: access-log, sagemaker, kserve, bentoml, azureml, structlog, loguru, or a "
                "[formats.NAME] of the config [default: detected from each input's first lines, else "
                "access-log].",
            ),
            click.option("--dataset", help="Dataset for the single --endpoint given."),
            click.option(
                "--mapper",
                help="Mapper for the single --endpoint: text_classification, "
                "token_classification, text2text, package.module:function or ./file.py:function.",
            ),
        ],
    )


MAX_REJECTS_HELP = (
    "Fail the run (exit 65, checkpoints left where they were) past N rejected lines and records, or N% "
    "of the lines read."
)


def reporting_options(func: Any = None, *, max_rejects_help: str = MAX_REJECTS_HELP) -> Any:
    """How a run reports, shared by ``run`` and ``backfill``: --json, -q, --max-rejects.

    ``@reporting_options``, or ``@reporting_options(max_rejects_help=...)`` for a command
    whose --max-rejects acts otherwise (a backfill has no checkpoints).
    """
    if func is None:
        return lambda f: reporting_options(f, max_rejects_help=max_rejects_help)
    return _stack(
        func,
        [
            click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout."),
            click.option(
                "--quiet",
                "-q",
                is_flag=True,
                help="No summary table (or progress bar) on stderr; warnings (rejects, nothing matched) "
                "still.",
            ),
            click.option(
                "--max-rejects",
                type=MaxRejectsParam(),
                help=max_rejects_help,
            ),
        ],
    )
