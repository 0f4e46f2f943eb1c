"""Names the user probably meant: a "did you mean" for a near miss, and the one usage error
of show, push and report for a dataset name the store does not have."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path

from ingest.errors import UsageError

SHOWN_NAME = 80  # characters of a name from the input (an endpoint path) shown in a table or warning


def shown_name(name: str, limit: int = SHOWN_NAME) -> str:
    """A name taken from the input (an endpoint path), as the summary and warnings print it:
    characters that are not printable escaped (a newline in a logged path would otherwise
    forge a line of the summary, an escape sequence restyle the terminal), and a name longer
    than ``limit`` cut in its middle, so one 1,400-character path does not widen every row
    of the table. ``--json`` keeps names as they are."""
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in name)
    if len(text) <= limit:
        return text
    tail = limit // 4
    return f"{text[: limit - tail - 1]}…{text[-tail:]}"


def did_you_mean(wrong: Iterable[str], known: Iterable[str]) -> str:
    """``; did you mean X?`` for names close to a known one (difflib's ratio >= 0.6), else ``""``."""
    known = list(known)
    found = {w: difflib.get_close_matches(w, known, n=1, cutoff=0.6) for w in wrong}
    close = {w: m[0] for w, m in found.items() if m and m[0] != w}
    if not close:
        return ""
    if len(close) == 1:
        return f"; did you mean {shown_name(next(iter(close.values())))}?"
    return (
        "; did you mean " + ", ".join(f"{shown_name(m)} for {shown_name(w)}" for w, m in close.items()) + "?"
    )


def check_datasets(store: Path, asked: Iterable[str], available: list[str]) -> None:
    """Raise UsageError (exit 2) naming the datasets the store lacks, those it has, and a
    near miss, if any name asked for is not among ``available``."""
    missing = [name for name in asked if name not in available]
    if missing:
        names = ", ".join(repr(m) for m in missing)
        has = ", ".join(available) or "no datasets"
        raise UsageError(f"no dataset {names} in {store} (it has: {has}){did_you_mean(missing, available)}")
