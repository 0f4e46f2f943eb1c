"""The ``ingest`` command group, and the one place errors become messages and exit codes.

``ingest PATHS...`` is short for ``ingest run PATHS...``: the everyday use, from cron or a
shell, should not need a sub-command. Each command is a thin module (``ingest/cli/run.py``,
``push.py``, ``show.py``, ``report.py``): parse, resolve settings, call ``ingest.run`` or
the store, report. Exit codes (ingest.errors): 0 success (rejects included: they are
reported), 1 the run failed while delivering, 2 usage, input or configuration errors,
found before anything is written, 3 some input file could not be read (each is named in
the summary; everything else was read and delivered), 65 more rejects than --max-rejects,
75 another run holds the lock, 130/143 a one-shot run stopped by SIGINT/SIGTERM (progress
saved). With --json, a failure is JSON on stdout too: ``{"ok": false, "exit_code": ...,
"error": ...}`` and the summary of what was done before it.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from ingest import __version__
from ingest.cli.backfill import backfill_command
from ingest.cli.outcome import examples, failure_json
from ingest.cli.push import push_command
from ingest.cli.report import report_command
from ingest.cli.run import run_command
from ingest.cli.show import show_command
from ingest.errors import IngestError


class DefaultGroup(click.Group):
    """A group whose first argument, when it is not a sub-command, goes to ``run``; and
    where an ``IngestError`` from any command is reported once, as one line."""

    json = False  # --json was given: failures are JSON on stdout too

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h", "--version"):
            args = ["run", *args]
        DefaultGroup.json = "--json" in args
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except IngestError as exc:
            if exc.summary_text:
                click.echo(exc.summary_text, err=True)
            click.echo(f"ingest: error: {exc}", err=True)
            if DefaultGroup.json and not getattr(exc, "reported", False):
                click.echo(failure_json(str(exc), exc.exit_code, getattr(exc, "summary", None)))
            ctx.exit(exc.exit_code)
        except click.ClickException as exc:
            if not DefaultGroup.json:
                raise
            exc.show()
            click.echo(failure_json(exc.format_message(), exc.exit_code))
            sys.exit(exc.exit_code)


@click.group(
    cls=DefaultGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110},
    epilog=examples(
        "ingest /var/log/models/access.jsonl --endpoint /spacy/",
        "ingest run logs/ --config ingest.toml --json",
        "ingest report -o report.html",
    ),
)
@click.version_option(__version__, prog_name="rubrix-ingest")
def main() -> None:
    """Replay JSONL prediction logs of model endpoints into Rubrix datasets.

    "ingest PATHS" is short for "ingest run PATHS"; each command has its --help.
    Exit codes: 0 ok, 1 delivery failed, 2 usage or config error, 3 an input could not be
    read, 65 more rejects than --max-rejects, 75 another run holds the lock, 130/143
    stopped by SIGINT/SIGTERM.
    """


main.add_command(run_command)
main.add_command(push_command)
main.add_command(show_command)
main.add_command(report_command)
main.add_command(backfill_command)
