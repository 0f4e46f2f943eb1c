"""The README's command reference agrees with ``--help``: every option it names exists, and
every option of every command is named in it."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from ingest.cli import main
from tests.conftest import ROOT

SERVER_OPTIONS = "--rubrix-url --api-key --workspace --batch-size --concurrency --retry-for --timeout"


def _reference() -> dict[str, str]:
    """The text of each command's entry in the README's "Command line" block."""
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"## Command line\n\n```text\n(.*?)```", readme, re.S)
    assert block, "the README has no command reference block"
    entries: dict[str, str] = {}
    command = None
    for line in block.group(1).splitlines():
        started = re.match(r"ingest (\[run\]|backfill|push|show|report)\s", line)
        if started:
            command = started.group(1).strip("[]")
            entries[command] = ""
        assert command is not None
        entries[command] += line.replace("[server options]", SERVER_OPTIONS) + "\n"
    return entries


def _options(text: str) -> set[str]:
    """``--foo`` and ``-f`` options in a text; ``--since/--until`` is two."""
    return set(re.findall(r"(?<![\w-])(--?[a-z][a-z-]*)", text.replace("/", " ")))


def _help_options(command: str) -> list[set[str]]:
    """Each option of a command as the set of its spellings, from ``--help``."""
    result = CliRunner().invoke(main, [command, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    options = []
    for line in result.output.split("Options:", 1)[1].splitlines():
        spellings = re.match(r"\s+((?:--?[a-z][a-z-]*(?:, )?)+)", line)
        if spellings:
            options.append(set(spellings.group(1).replace(",", " ").split()) - {"-h", "--help"})
    return [o for o in options if o]


@pytest.mark.parametrize("command", ["run", "push", "show", "report"])
def test_readme_command_reference_matches_help(command: str):
    documented = _options(_reference()[command])
    in_help = _help_options(command)
    missing = [sorted(o) for o in in_help if not o & documented]
    unknown = sorted(documented - set().union(*in_help))
    assert not missing, f"options of `ingest {command}` the README does not name: {missing}"
    assert not unknown, f"options the README names that `ingest {command} --help` does not have: {unknown}"
