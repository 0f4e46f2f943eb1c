"""Names the user probably meant: a "did you mean" for a near miss, and the one usage error
of show, push and report for a dataset name the store does not have."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path

from ingest.errors import UsageError


def did_you_mean(wrong: Iterable[str], known: Iterable[str]) -> str:
    """``; did you mean X?`` for names close to a known one (difflib's ratio >= 0.6), else ``""``."""
    known = list(known)
    found = {w: difflib.get_close_matches(w, known, n=1, cutoff=0.6) for w in wrong}
    close = {w: m[0] for w, m in found.items() if m and m[0] != w}
    if not close:
        return ""
    if len(close) == 1:
        return f"; did you mean {next(iter(close.values()))}?"
    return "; did you mean " + ", ".join(f"{m} for {w}" for w, m in close.items()) + "?"


def check_datasets(store: Path, asked: Iterable[str], available: list[str]) -> None:
    """Raise UsageError (exit 2) naming the datasets the store lacks, those it has, and a
    near miss, if any name asked for is not among ``available``."""
    missing = [name for name in asked if name not in available]
    if missing:
        names = ", ".join(repr(m) for m in missing)
        has = ", ".join(available) or "no datasets"
        raise UsageError(f"no dataset {names} in {store} (it has: {has}){did_you_mean(missing, available)}")
