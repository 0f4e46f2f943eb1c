"""The ``ingest`` command group, and the one place errors become messages and exit codes.

``ingest PATHS...`` is short for ``ingest run PATHS...``: the everyday use, from cron or a
shell, should not need a sub-command. Each command is a thin module (``ingest/cli/run.py``,
``push.py``, ``show.py``, ``report.py``): parse, resolve settings, call ``ingest.run`` or
the store, report. Exit codes (ingest.errors): 0 success (rejects included: they are
reported), 1 the run failed while delivering, 2 usage, input or configuration errors,
found before anything is written, 3 some input file could not be read (each is named in
the summary; everything else was read and delivered), 75 another run holds the lock.
"""

from __future__ import annotations

from typing import Any

import click

from ingest import __version__
from ingest.cli.backfill import backfill_command
from ingest.cli.push import push_command
from ingest.cli.report import report_command
from ingest.cli.run import run_command
from ingest.cli.show import show_command
from ingest.errors import IngestError


class DefaultGroup(click.Group):
    """A group whose first argument, when it is not a sub-command, goes to ``run``; and
    where an ``IngestError`` from any command is reported once, as one line."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h", "--version"):
            args = ["run", *args]
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except IngestError as exc:
            if exc.summary_text:
                click.echo(exc.summary_text, err=True)
            click.echo(f"ingest: error: {exc}", err=True)
            ctx.exit(exc.exit_code)


@click.group(cls=DefaultGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="rubrix-ingest")
def main() -> None:
    """Replay JSONL prediction logs of model endpoints into Rubrix datasets.

    \b
    ingest /var/log/models/access.jsonl --endpoint /spacy/
    ingest run logs/ --config ingest.toml --json
    """


main.add_command(run_command)
main.add_command(push_command)
main.add_command(show_command)
main.add_command(report_command)
main.add_command(backfill_command)
