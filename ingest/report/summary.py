"""The run summary: a table per endpoint on stderr, or JSON on stdout for scripts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ingest.model import NO_ENDPOINT, Counts, FileCounts


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
        total = self.totals()
        return total.lines + total.skipped["blank_line"] + self.counts_for(NO_ENDPOINT).rejected

    def to_json(self) -> dict[str, Any]:
        total = self.totals()
        return {
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
            "endpoints": {
                endpoint: {
                    "dataset": self.datasets.get(endpoint),
                    "lines": c.lines,
                    "records": c.records,
                    "written": c.written,
                    "skipped": dict(c.skipped),
                    "rejected": c.rejected,
                }
                for endpoint, c in sorted(self.counts.items())
            },
        }

    def render(self) -> str:
        header = ("endpoint", "dataset", "lines", "records", "written", "skipped", "rejected")
        rows = [header]
        for endpoint, c in sorted(self.counts.items()):
            shown = "(unparsed lines)" if endpoint == NO_ENDPOINT else endpoint
            rows.append(
                (
                    shown,
                    self.datasets.get(endpoint, "-"),
                    str(c.lines if endpoint != NO_ENDPOINT else c.rejected + sum(c.skipped.values())),
                    str(c.records),
                    str(c.written),
                    str(sum(c.skipped.values())),
                    str(c.rejected),
                )
            )
        widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
        lines = []
        for row in rows:
            cells = [
                cell.ljust(w) if i < 2 else cell.rjust(w)
                for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            ]
            lines.append("  ".join(cells).rstrip())
        total = self.totals()
        verb = "would go to" if self.dry_run else "target"
        out = [f"{verb}: {self.target}"]
        if self.formats and set(self.formats) != {"access-log"}:
            out.append("format: " + ", ".join(f"{name} ({how})" for name, how in self.formats.items()))
        out.extend(lines)
        if total.skipped:
            reasons = ", ".join(f"{k} {v}" for k, v in sorted(total.skipped.items()))
            out.append(f"skipped: {reasons}")
        if total.rejected:
            where = f" (see {self.rejects_file})" if self.rejects_file else ""
            out.append(f"rejected: {total.rejected}{where}")
        for name, reason in self.skipped_files.items():
            out.append(f"not read: {name} ({reason})")
        if self.nul_bytes:
            out.append(
                f"NUL bytes skipped: {self.nul_bytes} (runs of zeros, as a crash or copytruncate leaves)"
            )
        for name, reason in self.failed_files.items():
            out.append(f"could not read {name}: {reason}")
        out.extend(self.notes)
        if self.interrupted:
            out.append("stopped by a signal: progress up to here is saved, the next run goes on from it")
        for name, size in self.incomplete.items():
            out.append(f"incomplete last line left for the next run: {name} ({size} bytes)")
        out.append(
            f"{self.lines} lines, {total.written} records written in {self.seconds:.2f}s"
            + (" (dry run: nothing written)" if self.dry_run else "")
        )
        return "\n".join(out)
