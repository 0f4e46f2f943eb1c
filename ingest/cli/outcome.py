"""How a command's outcome reaches the user: warnings, and ``--json`` on failure too.

A run that did nothing useful must say so, on stderr even under ``-q`` (cron keeps only
that), and a script reading ``--json`` must get JSON whatever happened:
``{"ok": false, "exit_code": ..., "error": "...", ...}`` with what was done before the
failure (the summary so far, when there is one).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import click
import orjson

from ingest.suggest import did_you_mean, shown_name

EXIT_SIGNAL_BASE = 128  # a shell's convention: 128 + the signal's number (130 SIGINT, 143 SIGTERM)
SHOWN_ENDPOINTS = 20  # endpoints listed in the "matched none" warning


def failure_json(message: str, code: int, summary: Any = None) -> str:
    """The failure as ``--json`` prints it: the summary so far (if any), not ok, the error."""
    data: dict[str, Any] = summary.to_json() if summary is not None else {}
    data.update(ok=False, exit_code=code, error=message)
    return orjson.dumps(data, option=orjson.OPT_INDENT_2).decode()


def warn(message: str) -> None:
    click.echo(f"ingest: warning: {message}", err=True)


def _listing(names: list[str]) -> str:
    shown = ", ".join(shown_name(name) for name in names[:SHOWN_ENDPOINTS])
    return shown + (f" and {len(names) - SHOWN_ENDPOINTS} more" if len(names) > SHOWN_ENDPOINTS else "")


def nothing_matched(summary: Any, explicit: tuple[str, ...], configured: Iterable[str]) -> str | None:
    """The warning for a selection (``--endpoint``, else the config's endpoints) that matched
    none of the endpoints read, listing those with a "did you mean" for near misses."""
    from ingest.model import NO_ENDPOINT  # imports pyarrow: not at start-up

    wanted = list(explicit) or sorted(configured)
    if not wanted:
        return None
    seen = sorted(e for e in summary.counts if e != NO_ENDPOINT)
    counts = summary.counts
    matched = [e for e in seen if counts[e].skipped.get("endpoint_not_selected", 0) < counts[e].lines]
    if not seen or matched:
        return None
    if explicit:
        what = " ".join(f"--endpoint {e}" for e in explicit)
    else:
        what = f"the config's endpoints ({', '.join(wanted)})"
    return f"{what} matched none of the endpoints read ({_listing(seen)}){did_you_mean(wanted, seen)}"


def parse_max_rejects(value: str) -> tuple[float, bool]:
    """``N`` (rejects) or ``N%`` (of the lines read) -> (N, is a percentage)."""
    text = value.strip()
    percent = text.endswith("%")
    try:
        number = float(text[:-1] if percent else text)
    except ValueError:
        number = -1.0
    if number < 0 or (not percent and not number.is_integer()):
        raise click.BadParameter(f"{value!r} is neither a count like 10 nor a share like 5%")
    if percent and number > 100:
        # A share above 100% can never be exceeded: the limit would silently be off.
        raise click.BadParameter(f"{value!r} is more than all the lines read: give a share up to 100%")
    return number, percent


class MaxRejectsParam(click.ParamType):
    """``--max-rejects N`` or ``N%``, as (N, is a percentage)."""

    name = "N|N%"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, tuple):
            return value
        try:
            return parse_max_rejects(str(value))
        except click.BadParameter as exc:
            self.fail(exc.message, param, ctx)


def examples(*lines: str) -> str:
    """A command's help epilog: its examples, kept as written (``\\b`` stops click rewrapping)."""
    return "\b\nExamples:\n" + "\n".join(f"  {line}" for line in lines)
