"""The run summary: a table per endpoint on stderr, or JSON on stdout for scripts.

Every column adds up, per endpoint and in total: a line read is mapped, skipped or
rejected (``lines = mapped + skipped + rejected``; lines that never got as far as an
endpoint are the ``(unparsed lines)`` row, counted the same way), and each request/response
pair of a mapped line is a record that was written, already stored, skipped or rejected
(``records = written + stored + skipped + rejected``). Skips and rejects are also given by
reason, lines and records apart.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from ingest.model import NO_ENDPOINT, Counts, FileCounts
from ingest.suggest import shown_name

# Skip reasons that concern a record (a pair of a mapped line), not a whole line.
RECORD_SKIPS = frozenset({"mapper_returned_none", "already_stored"})
SINK_STAGES = frozenset({"sink", "server"})  # rejects a sink made: of records it was handed
# a number standing alone, not one in a name such as ISO-8601 or utf-8
_NUMBER = re.compile(r"(?<![A-Za-z]-)(?<!\w)\d+(?:\.\d+)?")


def reason_key(reason: str) -> str:
    """What a reject's reason is grouped by: its head (before ': ', where a reason puts the
    value it quotes), numbers as N.

    ``invalid JSON: unexpected character: line 1 column 2`` -> ``invalid JSON``;
    ``score 1.5 is not within [0, 1]`` -> ``score N is not within [N, N]``.
    """
    return _NUMBER.sub("N", reason.split(": ", 1)[0])[:80]


@dataclass
class Summary:
    target: str
    counts: dict[str, Counts] = field(default_factory=dict)
    datasets: dict[str, str] = field(default_factory=dict)  # endpoint -> dataset
    files: list[str] = field(default_factory=list)
    incomplete: dict[str, int] = field(default_factory=dict)  # file -> bytes left unread
    rejects_file: str | None = None
    skipped_files: dict[str, str] = field(default_factory=dict)  # file -> reason not read
    failed_files: dict[str, str] = field(default_factory=dict)  # file -> why it could not be read
    by_file: dict[str, FileCounts] = field(default_factory=dict)
    read_lines: dict[str, list[int]] = field(default_factory=dict)  # file -> [first line, next line]
    interrupted: bool = False  # stopped early by a signal, after a checkpoint
    dry_run: bool = False
    seconds: float = 0.0
    formats: dict[str, str] = field(default_factory=dict)  # format -> how chosen, e.g. "3 files, detected"
    notes: list[str] = field(default_factory=list)
    # what a run that did little must say, in the table, in --json and under -q alike
    warnings: list[str] = field(default_factory=list)
    # endpoint -> reason -> count, from the rejects as they are filed
    rejected_lines: dict[str, Counter[str]] = field(default_factory=dict)
    rejected_records: dict[str, Counter[str]] = field(default_factory=dict)
    mapping_rejects: Counter[str] = field(
        default_factory=Counter
    )  # endpoint -> records refused before the sink
    exit_code: int = 0
    error: str | None = None
    # (file, line offset) -> pairs refused after the transform, for count_refused
    refused_pairs: dict[tuple[str, int], set[int]] = field(default_factory=dict, repr=False)

    def count_rejects(self, rejects: list[Any]) -> None:
        """Tally rejects by endpoint and reason: a whole line's, or one record's of a line.

        What a sink or its server refused (stages ``sink``, ``server``) is always a record,
        handed over and answered for, even when its pair index is not known (``ingest push``
        reads records back from a store): never its line's reject nor "not delivered".
        """
        for reject in rejects:
            endpoint = reject["endpoint"]
            if reject.get("record") is None and reject.get("stage") not in SINK_STAGES:  # the whole line
                found = self.rejected_lines.setdefault(endpoint, Counter())
            else:
                found = self.rejected_records.setdefault(endpoint, Counter())
                if reject.get("stage") in ("map", "validate"):
                    self.mapping_rejects[endpoint] += 1
            found[reason_key(str(reject["reason"]))] += 1

    def count_refused(self, refused: list[tuple[str, int, int, int]]) -> None:
        """Records a dataset decision refused after the worker counted their line as giving
        records: (file, line offset, pair index, pairs of the line that gave rows, 0 when not
        known). Once every pair of a line is refused, the line gave no record: in ``by_file``
        it moves from ``gave_records`` to ``rejected`` (each line is exactly one of the three)."""
        for name, offset, index, pairs in refused:
            if pairs <= 0:
                continue
            seen = self.refused_pairs.setdefault((name, offset), set())
            if index in seen:
                continue
            seen.add(index)
            if len(seen) == pairs:
                counts = self.file_counts(name)
                counts.gave_records -= 1
                counts.rejected += 1

    def add_dataset(self, endpoint: str, datasets: str) -> None:
        """Note that records of ``endpoint`` went to ``datasets`` (one name, or several joined
        by ", " as ``datasets`` shows them): one endpoint can feed several (a line with several
        prediction columns), each shown once, sorted."""
        shown = self.datasets.get(endpoint)
        names = set(datasets.split(", "))
        if shown is None or not names <= set(shown.split(", ")):
            self.datasets[endpoint] = ", ".join(sorted(filter(None, names | set((shown or "").split(", ")))))

    def check_shared_datasets(self, named: Collection[str] = ()) -> None:
        """Warn (in ``warnings``) when endpoints' records went to one dataset because the names
        derived from their paths are the same (``/情感/`` and ``/实体/`` both give
        ``monitoring_root``, as ``/`` does; ``/Spacy/`` and ``/spacy`` give ``monitoring_spacy``):
        different models would be mixed in one dataset without a word. ``named``: endpoints
        whose dataset the config (or --dataset) names; those share it on purpose, even when
        the name is the one their path gives."""
        from ingest.transform.routing import dataset_for_endpoint  # a leaf module

        by_dataset: dict[str, list[str]] = {}
        for endpoint, shown in self.datasets.items():
            for dataset in shown.split(", "):
                by_dataset.setdefault(dataset, []).append(endpoint)
        for dataset, endpoints in sorted(by_dataset.items()):
            by_name = [e for e in endpoints if e not in named and dataset_for_endpoint(e) == dataset]
            if len(endpoints) < 2 or not by_name:
                continue
            names = ", ".join(shown_name(e) for e in sorted(endpoints)[:5])
            more = f" and {len(endpoints) - 5} more" if len(endpoints) > 5 else ""
            self.warnings.append(
                f"endpoints {names}{more} went to one dataset, {dataset}, by the name each path gives: "
                "if they serve different models, give each its own dataset in the config"
            )

    def counts_for(self, endpoint: str) -> Counts:
        found = self.counts.get(endpoint)
        if found is None:
            found = self.counts[endpoint] = Counts()
        return found

    def file_counts(self, name: str) -> FileCounts:
        found = self.by_file.get(name)
        if found is None:
            found = self.by_file[name] = FileCounts()
        return found

    @property
    def nul_bytes(self) -> int:
        return sum(c.nul_bytes for c in self.by_file.values())

    def totals(self) -> Counts:
        total = Counts()
        for counts in self.counts.values():
            total.add(counts)
        return total

    @property
    def lines(self) -> int:
        return sum(self.outcome(endpoint)["lines"] for endpoint in self.counts)

    def outcome(self, endpoint: str) -> dict[str, Any]:
        """One endpoint's lines and records, each split so that it adds up (see the module doc)."""
        c = self.counts.get(endpoint) or Counts()
        lines_rejected = dict(self.rejected_lines.get(endpoint, {}))
        lines_skipped = {k: v for k, v in c.skipped.items() if k not in RECORD_SKIPS and v}
        if endpoint == NO_ENDPOINT:  # lines that never got as far as an endpoint
            lines = c.lines + sum(lines_rejected.values()) + c.skipped.get("blank_line", 0)
        else:
            lines = c.lines
        records_skipped = {k: v for k, v in c.skipped.items() if k in RECORD_SKIPS - {"already_stored"} and v}
        records_rejected = dict(self.rejected_records.get(endpoint, {}))
        records = c.records + sum(records_skipped.values()) + self.mapping_rejects[endpoint]
        stored = c.skipped.get("already_stored", 0)
        accounted = c.written + stored + sum(records_skipped.values()) + sum(records_rejected.values())
        return {
            "lines": lines,
            "lines_mapped": lines - sum(lines_skipped.values()) - sum(lines_rejected.values()),
            "lines_skipped": lines_skipped,
            "lines_rejected": lines_rejected,
            "records_mapped": records,
            "records_written": c.written,
            "records_already_stored": stored,
            "records_skipped": records_skipped,
            "records_rejected": records_rejected,
            # handed to a target that failed before it answered for them
            "records_not_delivered": max(0, records - accounted),
        }

    def outcomes(self) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
        """Per endpoint, and the totals, of ``outcome``."""
        per = {endpoint: self.outcome(endpoint) for endpoint in sorted(self.counts)}
        total: dict[str, Any] = {}
        for found in per.values():
            for key, value in found.items():
                if isinstance(value, dict):
                    bucket = total.setdefault(key, Counter())
                    bucket.update(value)
                else:
                    total[key] = total.get(key, 0) + value
        for key in ("lines_skipped", "lines_rejected", "records_skipped", "records_rejected"):
            total[key] = dict(sorted(total.get(key, {}).items(), key=lambda kv: (-kv[1], kv[0])))
        for key in ("lines", "lines_mapped", "records_mapped", "records_written", "records_already_stored",
                    "records_not_delivered"):  # fmt: skip
            total.setdefault(key, 0)
        return per, total

    def rejected_total(self) -> tuple[int, int]:
        """(lines rejected, records rejected)."""
        lines = sum(sum(c.values()) for c in self.rejected_lines.values())
        return lines, sum(sum(c.values()) for c in self.rejected_records.values())

    def warning(self) -> str | None:
        """The one line that even ``-q`` prints when anything was rejected."""
        _, total = self.outcomes()
        lines, records = total["lines_rejected"], total["records_rejected"]
        if not lines and not records:
            return None
        parts = []
        if lines:
            parts.append(f"{sum(lines.values())} of {total['lines']} lines rejected ({_reasons(lines)})")
        if records:
            parts.append(f"{sum(records.values())} records rejected ({_reasons(records)})")
        where = f"; see {self.rejects_file}" if self.rejects_file else ""
        return "; ".join(parts) + where

    def to_json(self) -> dict[str, Any]:
        total = self.totals()
        per, outcome = self.outcomes()
        return {
            "ok": self.exit_code == 0,
            "exit_code": self.exit_code,
            **({"error": self.error} if self.error else {}),
            "target": self.target,
            "dry_run": self.dry_run,
            "files": self.files,
            "seconds": round(self.seconds, 3),
            "lines_read": self.lines,
            "records_written": total.written,
            "rejected": total.rejected,
            "skipped": dict(total.skipped),
            "rejects_file": self.rejects_file,
            "incomplete_last_lines": self.incomplete,
            "files_not_read": self.skipped_files,
            "files_failed": self.failed_files,
            "nul_bytes": self.nul_bytes,
            "by_file": {
                name: {
                    "lines": c.lines,
                    "gave_records": c.gave_records,
                    "skipped": c.skipped,
                    "rejected": c.rejected,
                    "nul_bytes": c.nul_bytes,
                }
                for name, c in self.by_file.items()
            },
            "interrupted": self.interrupted,
            "formats": self.formats,
            "notes": self.notes,
            "warnings": self.warnings,
            "lines": {
                "read": outcome["lines"],
                "mapped": outcome["lines_mapped"],
                "skipped": outcome["lines_skipped"],
                "rejected": outcome["lines_rejected"],
            },
            "records": {
                "mapped": outcome["records_mapped"],
                "written": outcome["records_written"],
                "already_stored": outcome["records_already_stored"],
                "skipped": outcome["records_skipped"],
                "rejected": outcome["records_rejected"],
                "not_delivered": outcome["records_not_delivered"],
            },
            "endpoints": {
                endpoint: {
                    "dataset": self.datasets.get(endpoint),
                    "records": c.records,
                    "written": c.written,
                    "skipped": dict(c.skipped),
                    "rejected": c.rejected,
                    **per[endpoint],
                }
                for endpoint, c in sorted(self.counts.items())
            },
        }

    def render(self) -> str:
        header = ("endpoint", "dataset", "lines", "mapped", "skipped", "rejected",
                  "records", "written", "stored", "skipped", "rejected")  # fmt: skip
        rows = [header]
        per, outcome = self.outcomes()
        for endpoint, o in per.items():
            shown = "(unparsed lines)" if endpoint == NO_ENDPOINT else shown_name(endpoint)
            rows.append((shown, self.datasets.get(endpoint, "-"), *_cells(o)))
        if len(per) > 1:
            rows.append(("(total)", "", *_cells(outcome)))
        widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
        lines = []
        for row in rows:
            cells = [
                cell.ljust(w) if i < 2 else cell.rjust(w)
                for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            ]
            lines.append("  ".join(cells).rstrip())
        verb = "would go to" if self.dry_run else "target"
        out = [f"{verb}: {self.target}"]
        # the access log read by default goes unsaid; another format, or the access log chosen
        # because a file was ambiguous, is named with how it was chosen
        plain = set(self.formats) == {"access-log"} and "ambiguous" not in self.formats["access-log"]
        if self.formats and not plain:
            out.append("format: " + ", ".join(f"{name} ({how})" for name, how in self.formats.items()))
        if per:  # a run that read nothing has no table
            out += lines
            out.append("(lines = mapped + skipped + rejected; records, the pairs of mapped lines: written"
                       " + stored before + skipped + rejected)")  # fmt: skip
        where = f" (see {self.rejects_file})" if self.rejects_file else ""
        labels = {"lines_skipped": "skipped lines", "lines_rejected": "rejected lines",
                  "records_skipped": "skipped records", "records_rejected": "rejected records"}  # fmt: skip
        for key, label in labels.items():
            if outcome[key]:
                out.append(f"{label}: {_reasons(outcome[key])}" + (where if "rejected" in key else ""))
        undelivered = outcome["records_not_delivered"]
        if undelivered and self.dry_run:  # by design, not for a failure
            out.append(f"dry run: {undelivered} records mapped and validated, none written")
        elif undelivered:
            out.append(f"not delivered: {undelivered} records (the target failed first)")
        for name, reason in self.skipped_files.items():
            out.append(f"not read: {name} ({reason})")
        if self.nul_bytes:
            out.append(
                f"NUL bytes skipped: {self.nul_bytes} (runs of zeros, as a crash or copytruncate leaves)"
            )
        for name, reason in self.failed_files.items():
            out.append(f"could not read {name}: {reason}")
        out.extend(self.notes)
        out.extend(f"warning: {text}" for text in self.warnings)
        if self.interrupted:
            out.append("stopped by a signal: progress up to here is saved, the next run goes on from it")
        for name, size in self.incomplete.items():
            out.append(f"incomplete last line left for the next run: {name} ({size} bytes)")
        out.append(
            f"{self.lines} lines, {outcome['records_written']} records written in {self.seconds:.2f}s"
            + (" (dry run: nothing written)" if self.dry_run else "")
        )
        return "\n".join(out)


def _cells(o: dict[str, Any]) -> tuple[str, ...]:
    values = (
        o["lines"], o["lines_mapped"], sum(o["lines_skipped"].values()), sum(o["lines_rejected"].values()),
        o["records_mapped"], o["records_written"], o["records_already_stored"],
        sum(o["records_skipped"].values()), sum(o["records_rejected"].values()),
    )  # fmt: skip
    return tuple(str(v) for v in values)


def _reasons(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
