"""`ingest report`: metrics on logs built so that every expected value is known, and the
page rendered in headless Chromium."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import SAMPLE_LOGS, Ingest, entry, write_log

END = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def at(hours_before_end: float) -> str:
    return (END - timedelta(hours=hours_before_end)).isoformat().replace("+00:00", "Z")


def known_log(path: Path) -> Path:
    """200 sentiment requests (100 a day apart from 100 in the last 24 h), 10 errors, 40 NER
    requests, 3 translations, one malformed line."""
    lines: list = []
    # Reference window (48 to 28 hours before the end, one every 12 minutes): every fifth is
    # NEGATIVE at 0.55, the others POSITIVE at 0.9. Latest window (the last 20 hours): every
    # fifth is POSITIVE, the others NEGATIVE: 80/20 turned into 20/80.
    for i in range(200):
        latest = i >= 100
        positive = (i % 5 == 0) if latest else (i % 5 != 0)
        label, other = ("POSITIVE", "NEGATIVE") if positive else ("NEGATIVE", "POSITIVE")
        score = 0.9 if positive else 0.55
        hours = 20 * (199 - i) / 100 if latest else 28 + 20 * (99 - i) / 100
        lines.append(entry("/tc/", [f"text {i}"], [{"labels": [label, other], "scores": [score, 1 - score]}],
                           ts=at(hours), latency_ms=float(i % 100 + 1)))  # fmt: skip
    for i in range(10):
        lines.append(entry("/tc/", ["x"], {"detail": "boom"}, ts=at(1), status=500, request_id=f"err-{i}"))
    for i in range(40):
        text = "Ana lives in Paris" if i < 30 else "nothing to see"
        entities = [{"label": "PER", "start": 0, "end": 3}, {"label": "GPE", "start": 13, "end": 18}]
        outputs = [{"text": text, "entities": entities if i < 30 else []}]
        lines.append(entry("/ner/", [text], outputs, ts=at(2), request_id=f"ner-{i}"))
    for n in (5, 10, 15):
        lines.append(entry("/t2t/", ["source"], [{"translation_text": "x" * n}], ts=at(3)))
    lines.append("{not json")
    return write_log(path, lines)


@pytest.fixture
def known_store(ingest: Ingest, tmp_path: Path) -> Ingest:
    ingest(str(known_log(tmp_path / "access.jsonl")), "--store", str(ingest.store))
    return ingest


def report_json(ingest: Ingest, *args: str) -> dict:
    return json.loads(ingest("report", "--store", str(ingest.store), "--json", *args).stdout)


def test_metrics_have_the_values_the_log_was_built_with(known_store: Ingest) -> None:
    metrics = report_json(known_store)
    assert metrics["runs"]["lines_read"] == 254
    assert metrics["runs"]["rejected"] == 1
    assert metrics["runs"]["skipped"] == {"error_status": 10}

    tc = metrics["datasets"]["monitoring_tc"]
    assert tc["task"] == "TextClassification" and tc["records"] == 200
    assert tc["labels"]["counts"] == {"POSITIVE": 100, "NEGATIVE": 100}
    assert tc["scores"]["low_confidence_records"] == 100
    assert tc["scores"]["low_confidence_share"] == 0.5
    assert sum(tc["scores"]["histogram"]["counts"]) == 200
    # Latencies 1..100 ms, twice: pandas' linear percentiles of 1..100.
    assert tc["latency_ms"]["p50"] == pytest.approx(50.5)
    assert tc["latency_ms"]["p95"] == pytest.approx(95.05)
    assert tc["latency_ms"]["p99"] == pytest.approx(99.01)
    endpoint = tc["endpoints"]["/tc/"]
    assert (endpoint["requests"], endpoint["errors"]) == (210, 10)
    assert endpoint["error_rate"] == pytest.approx(10 / 210)
    assert endpoint["status_counts"] == {"200": 200, "500": 10}
    assert sum(b["records"] for b in tc["records_over_time"]) == 200

    drift = tc["drift"]
    expected_psi = 2 * 0.6 * math.log(4)  # shares (0.8, 0.2) against (0.2, 0.8)
    assert drift["psi"] == pytest.approx(expected_psi)
    assert drift["drifted"] is True and drift["verdict"] == "drifted"
    assert (drift["latest"]["count"], drift["reference"]["count"]) == (100, 100)
    assert drift["shares"]["NEGATIVE"] == {"reference": 0.2, "latest": 0.8}

    recent = tc["recent_low_confidence"]
    assert len(recent) == 20
    assert [r["predicted_score"] for r in recent] == [0.55] * 20
    assert recent[0]["text"] == "text 199"  # the most recent first
    times = [r["event_timestamp"] for r in recent]
    assert times == sorted(times, reverse=True)

    ner = metrics["datasets"]["monitoring_ner"]["entities"]
    assert ner["label_counts"] == {"PER": 30, "GPE": 30}
    assert ner["mean_per_record"] == 1.5
    assert ner["per_record"] == {"0": 10, "2": 30}
    assert ner["records_without_entities"] == 10 and ner["no_entity_share"] == 0.25

    t2t = metrics["datasets"]["monitoring_t2t"]["output_length"]
    assert (t2t["mean"], t2t["p50"]) == (10, 10)


def test_no_drift_when_the_windows_agree(known_store: Ingest) -> None:
    # Only the reference day, split into its last 10 hours (50 records) and the 50 before:
    # both exactly 80/20.
    tc = report_json(known_store, "--until", at(24), "--drift-window", "10h")["datasets"]["monitoring_tc"]
    assert tc["records"] == 100
    assert (tc["drift"]["latest"]["count"], tc["drift"]["reference"]["count"]) == (50, 50)
    assert tc["drift"]["psi"] == pytest.approx(0.0, abs=1e-9)
    assert tc["drift"]["verdict"] == "stable" and tc["drift"]["drifted"] is False


def test_time_window_and_dataset_selection(known_store: Ingest) -> None:
    metrics = report_json(known_store, "--dataset", "monitoring_tc", "--since", at(20.5))
    assert list(metrics["datasets"]) == ["monitoring_tc"]
    tc = metrics["datasets"]["monitoring_tc"]
    assert tc["records"] == 100 and tc["labels"]["counts"] == {"NEGATIVE": 80, "POSITIVE": 20}
    assert tc["endpoints"]["/tc/"]["requests"] == 110  # the 10 errors are in the last hours


def test_empty_and_one_record_datasets(ingest: Ingest, tmp_path: Path) -> None:
    write_log(tmp_path / "one.jsonl", [entry("/spacy/", ts=at(0))])
    ingest(str(tmp_path / "one.jsonl"), "--store", str(ingest.store))
    one = report_json(ingest)["datasets"]["monitoring_spacy"]
    assert one["records"] == 1 and one["entities"]["label_counts"] == {"GPE": 1}
    assert one["drift"]["psi"] is None and one["drift"]["verdict"].startswith("not enough data")
    empty = report_json(ingest, "--since", "2100-01-01")["datasets"]["monitoring_spacy"]
    assert empty["records"] == 0 and empty["latency_ms"]["p50"] is None
    for args in ([], ["--since", "2100-01-01"]):
        ingest("report", "--store", str(ingest.store), "-o", str(tmp_path / "r.html"), *args)
        assert "monitoring_spacy" in (tmp_path / "r.html").read_text()
    proc = ingest("report", "--store", str(ingest.store), "--dataset", "nope", check=False)
    assert proc.returncode == 2 and b"no dataset 'nope'" in proc.stderr


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars", "--enable-logging=stderr", "--v=0"]  # fmt: skip


def chromium(page: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    assert CHROMIUM, "chromium is not installed: .ci/run installs Debian's chromium package"
    profile = tmp_path / f"profile-{page.stem}"
    return subprocess.run(
        [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args, page.as_uri()],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip


def console_errors(output: str) -> list[str]:
    return [line for line in output.splitlines() if "CONSOLE" in line or "Uncaught" in line]


def test_the_page_renders_offline_in_chromium(known_store: Ingest, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    known_store("report", "--store", str(known_store.store), "-o", str(page))
    html = page.read_text()
    # Self-contained: nothing fetched from anywhere.
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "url(http" not in html and "<script" not in html

    dom = chromium(page, tmp_path, "--dump-dom")
    assert dom.stdout.count("<svg") == 3 * 3 + 3 + 3 + 1  # common plots + task plots
    assert "monitoring_tc" in dom.stdout and "drifted" in dom.stdout
    assert not console_errors(dom.stderr), dom.stderr

    shot = tmp_path / "report.png"
    chromium(page, tmp_path, "--window-size=1400,2400", f"--screenshot={shot}")
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert (width, height) == (1400, 2400) and len(png) > 50_000  # a page with plots, not a blank one


def test_the_console_check_can_fail(tmp_path: Path) -> None:
    page = tmp_path / "broken.html"
    page.write_text("<html><body><script>console.error('boom'); undefinedCall();</script></body></html>")
    result = chromium(page, tmp_path, "--dump-dom")
    assert len(console_errors(result.stderr)) >= 1, result.stderr


def test_report_of_the_sample_logs(ingest: Ingest, tmp_path: Path) -> None:
    ingest(str(SAMPLE_LOGS), "--store", str(ingest.store))
    page = tmp_path / "sample.html"
    proc = ingest("report", "--store", str(ingest.store), "-o", str(page), "--drift-window", "6h")
    assert b"report of 3 datasets, 490 records" in proc.stderr
    assert page.stat().st_size > 10_000


def test_entity_labels_with_quotes_and_accents(ingest: Ingest, tmp_path: Path) -> None:
    text = 'Read "Les Misérables" in Zürich'
    entities = [
        {"label": 'WORK_OF "ART"', "start": 5, "end": 21},
        {"label": "LIEU-Zürich", "start": 25, "end": 31},
    ]
    write_log(tmp_path / "a.jsonl", [entry("/ner/", [text], [{"text": text, "entities": entities}])])
    ingest(str(tmp_path / "a.jsonl"), "--store", str(ingest.store))
    counts = report_json(ingest)["datasets"]["monitoring_ner"]["entities"]["label_counts"]
    assert counts == {'WORK_OF "ART"': 1, "LIEU-Zürich": 1}


@pytest.mark.parametrize(
    "option", [("--drift-threshold", "-1"), ("--low-confidence", "2"), ("--low-confidence", "-0.5")]
)
def test_thresholds_out_of_their_range_are_usage_errors(ingest: Ingest, option: tuple[str, str]) -> None:
    # PSI is never negative and scores lie in [0, 1]: such a value would flag every dataset
    # as drifted, or every prediction as low-confidence, in a report cron alerts on.
    ingest(str(SAMPLE_LOGS), "-q")
    proc = ingest("report", "--json", *option, check=False)
    assert proc.returncode == 2, proc.stdout.decode() + proc.stderr.decode()
    assert option[0] in proc.stderr.decode() + proc.stdout.decode()


def test_a_run_log_line_cut_short_by_a_crash_does_not_swallow_the_next_run(ingest: Ingest) -> None:
    # kill -9 (or a full disk) during the run log's append leaves a line without its newline;
    # the next run's line must start on a line of its own, not be glued to it and lost.
    ingest(str(SAMPLE_LOGS), "-q")
    runs = ingest.store / "_runs.jsonl"
    with runs.open("ab") as fh:
        fh.write(b'{"started": "2026-11-29T20:00:00+00:00", "fini')
    ingest(str(SAMPLE_LOGS), "-q", "--from-start")
    report = ingest.json("report")
    assert report["runs"]["count"] == 2
