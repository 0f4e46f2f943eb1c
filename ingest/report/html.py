"""The monitoring report as one self-contained HTML page: inline SVG plots, no scripts.

It opens offline, from a mail attachment or a cron job's output directory: no CDN, no
JavaScript, every picture written into the page as SVG by ``ingest.report.svg`` (no plotting
library to import: the report of a small store takes a fraction of a second).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from html import escape
from typing import Any

from ingest.report import svg

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; color: #222;
       background: #f6f7f9; }
header { background: #2d3e50; color: #fff; padding: 18px 32px; }
header h1 { margin: 0 0 4px; font-size: 22px; }
header p { margin: 0; opacity: .8; font-size: 13px; }
main { padding: 16px 32px 48px; }
section.dataset { background: #fff; border: 1px solid #e1e4e8; border-radius: 8px; padding: 16px 20px;
                  margin: 18px 0; }
h2 { font-size: 18px; margin: 0 0 8px; }
h3 { font-size: 14px; margin: 14px 0 6px; color: #444; }
.numbers { display: flex; flex-wrap: wrap; gap: 10px; margin: 8px 0 4px; }
.number { background: #f0f3f6; border-radius: 6px; padding: 8px 12px; min-width: 110px; }
.number b { display: block; font-size: 18px; }
.number span { font-size: 12px; color: #555; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(440px, 1fr)); gap: 12px; }
figure { margin: 0; border: 1px solid #eef0f2; border-radius: 6px; padding: 6px; background: #fff; }
figure svg { width: 100%; height: auto; }
figcaption { font-size: 12px; color: #555; padding: 2px 4px; }
table { border-collapse: collapse; font-size: 13px; width: 100%; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid #eef0f2; vertical-align: top; }
th { background: #f6f8fa; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.badge { display: inline-block; padding: 2px 8px; border-radius: 10px; font-size: 12px; font-weight: 600; }
.ok { background: #dcf5e3; color: #1b6b34; } .bad { background: #fde2e1; color: #a32020; }
.na { background: #eceff3; color: #555; }
p.note { font-size: 12px; color: #555; margin: 4px 0; }
"""


def render(metrics: dict[str, Any]) -> str:
    """The page, as one string of HTML."""
    parts = [_head(metrics), _runs(metrics["runs"])]
    if not metrics["datasets"]:
        parts.append("<p>The store holds no datasets yet: run <code>ingest</code> on some logs first.</p>")
    empty = metrics.get("empty_window")
    if empty:
        parts.append(f"<p class='note'><b>{escape(empty)}</b></p>")
    for name, dataset in metrics["datasets"].items():
        parts.append(_dataset(name, dataset))
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>rubrix-ingest report: {escape(metrics['store'])}</title>"
        f"<style>{CSS}</style></head><body>{''.join(parts)}</main></body></html>\n"
    )


def _head(metrics: dict[str, Any]) -> str:
    window = ""
    if metrics["since"] or metrics["until"]:
        since, until = metrics["since"] or "the start", metrics["until"] or "now"
        window = f" · from {escape(since)} to {escape(until)}"
    return (
        f"<header><h1>Monitoring report</h1><p>store {escape(metrics['store'])}{window} · "
        f"generated {escape(metrics['generated_at'])} by rubrix-ingest</p></header><main>"
    )


def _runs(runs: dict[str, Any]) -> str:
    skipped = ", ".join(f"{escape(k)} {v:,}" for k, v in runs["skipped"].items()) or "none"
    reread = (
        f"<p class='note'>{runs['rereading_runs']} of these runs re-read logs (--from-start, a time "
        "window, a new target or selection): traffic and error rates count each log line once.</p>"
        if runs["rereading_runs"]
        else ""
    )
    return (
        "<section class='dataset'><h2>Ingest runs</h2><div class='numbers'>"
        + _number(f"{runs['count']:,}", "runs")
        + _number(f"{runs['lines_read']:,}", "lines read")
        + _number(f"{runs['records_written']:,}", "records written")
        + _number(f"{runs['rejected']:,}", "lines rejected")
        + _number(f"{sum(runs['skipped'].values()):,}", "skipped")
        + f"</div><p class='note'>skipped by reason: {skipped}</p>{reread}</section>"
    )


def _number(value: str, label: str) -> str:
    return f"<div class='number'><b>{value}</b><span>{escape(label)}</span></div>"


def _fmt(value: float | None, unit: str = "", digits: int = 1) -> str:
    return "–" if value is None else f"{value:,.{digits}f}{unit}"


def _dataset(name: str, d: dict[str, Any]) -> str:
    task = d["task"] or "empty"
    requests = sum(e["requests"] for e in d["endpoints"].values())
    errors = sum(e["errors"] for e in d["endpoints"].values())
    step = timedelta(hours=1) if d["bucket"] == "hour" else timedelta(days=1)
    numbers = [
        _number(f"{d['records']:,}", "records"),
        _number(f"{requests:,}", "requests (run log)"),
        _number(_fmt(errors / requests * 100 if requests else None, "%", 2), "error rate"),
        _number(_fmt(d["latency_ms"]["p50"], " ms"), "latency p50"),
        _number(_fmt(d["latency_ms"]["p95"], " ms"), "latency p95"),
        _number(_fmt(d["latency_ms"]["p99"], " ms"), "latency p99"),
    ]
    figures = [
        _figure("Records over time", _records_plot(d["records_over_time"], step)),
        _figure("Latency percentiles over time (ms)", _latency_plot(d["latency_ms"], step)),
        _figure("Error rate per endpoint over time", _error_plot(d["endpoints"], step)),
    ]
    extra = ""
    if task == "TextClassification":
        scores = d["scores"]
        numbers.append(_number(_fmt(scores["low_confidence_share"] and scores["low_confidence_share"] * 100,
                                    "%"), f"score below {scores['low_confidence_below']}"))  # fmt: skip
        figures += [
            _figure("Predicted labels over time", _stacked(d["labels"]["over_time"], step)),
            _figure(
                "Top-label score distribution",
                _histogram(scores["histogram"], scores["low_confidence_below"]),
            ),
            _figure("Label shares: reference vs latest window", _drift_plot(d["drift"])),
        ]
        extra = _low_confidence_table(d["recent_low_confidence"], scores["low_confidence_below"])
    elif task == "TokenClassification":
        e = d["entities"]
        numbers.append(_number(_fmt(e["mean_per_record"], "", 2), "entities per record"))
        numbers.append(_number(_fmt(e["no_entity_share"] and e["no_entity_share"] * 100, "%"), "no entities"))
        top = list(e["label_counts"].items())[:12]
        figures += [
            _figure("Entity labels", svg.barh([k for k, _ in top], [v for _, v in top])),
            _figure("Entities per record", svg.bars(list(e["per_record"]), list(e["per_record"].values()))),
            _figure("Entity label shares: reference vs latest window", _drift_plot(d["drift"])),
        ]
    elif task == "Text2Text":
        o = d["output_length"]
        numbers.append(_number(_fmt(o["p50"], " chars", 0), "output length p50"))
        figures.append(_figure("Output length (characters)", _histogram(o["histogram"])))
    drift = _drift_line(d.get("drift"))
    period = f"{_when(d['first'])} to {_when(d['last'])} UTC" if d["first"] else "no records"
    return (
        f"<section class='dataset'><h2>{escape(name)} <small>({escape(task)})</small></h2>"
        f"<p class='note'>{period} · buckets of one {d['bucket']}</p>"
        f"<div class='numbers'>{''.join(numbers)}</div>{drift}{_endpoint_table(d['endpoints'])}"
        f"<div class='grid'>{''.join(figures)}</div>{extra}</section>"
    )


def _when(iso: str) -> str:
    return escape(datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M"))


def _drift_line(drift: dict[str, Any] | None) -> str:
    if drift is None:
        return ""
    if drift["psi"] is None:
        badge = "<span class='badge na'>no verdict</span>"
        detail = escape(drift["verdict"])
    else:
        css = "bad" if drift["drifted"] else "ok"
        badge = f"<span class='badge {css}'>{escape(drift['verdict'])}</span>"
        detail = (
            f"PSI {drift['psi']:.3f} (flagged above {drift['threshold']}) between the latest window "
            f"({drift['latest']['count']:,} {drift['unit']} since {_when(drift['latest']['from'])}) and the "
            f"reference before it ({drift['reference']['count']:,})"
        )
    return f"<p>Drift: {badge} <span class='note'>{detail}</span></p>"


def _endpoint_table(endpoints: dict[str, Any]) -> str:
    if not endpoints:
        return ""
    rows = "".join(
        f"<tr><td>{escape(ep)}</td><td class='num'>{e['requests']:,}</td><td class='num'>{e['errors']:,}</td>"
        f"<td class='num'>{_fmt(e['error_rate'] and e['error_rate'] * 100, '%', 2)}</td>"
        f"<td>{escape(', '.join(f'{s}: {n:,}' for s, n in e['status_counts'].items()))}</td></tr>"
        for ep, e in endpoints.items()
    )
    return (
        "<table><tr><th>endpoint</th><th class='num'>requests</th><th class='num'>errors</th>"
        f"<th class='num'>error rate</th><th>status codes</th></tr>{rows}</table>"
    )


def _low_confidence_table(rows: list[dict[str, Any]], threshold: float) -> str:
    if not rows:
        return f"<h3>Recent low-confidence predictions</h3><p class='note'>None below {threshold}.</p>"
    body = "".join(
        f"<tr><td>{escape(r['event_timestamp'][:19])}</td><td>{escape(r['endpoint'])}</td>"
        f"<td>{escape((r['text'] or '')[:300])}</td><td>{escape(str(r['predicted_label']))}</td>"
        f"<td class='num'>{_fmt(r['predicted_score'], '', 3)}</td></tr>"
        for r in rows
    )
    return (
        f"<h3>Most recent low-confidence predictions (top score below {threshold})</h3>"
        "<table><tr><th>time (UTC)</th><th>endpoint</th><th>text</th><th>label</th>"
        f"<th class='num'>score</th></tr>{body}</table>"
    )


# -- plots -----------------------------------------------------------------------------
def _figure(caption: str, picture: str) -> str:
    return f"<figure>{picture}<figcaption>{escape(caption)}</figcaption></figure>"


def _t(iso: str) -> datetime:
    return datetime.fromisoformat(iso)


def _records_plot(rows: list[dict[str, Any]], step: timedelta) -> str:
    return svg.bars_over_time([_t(r["t"]) for r in rows], [r["records"] for r in rows], step)


def _latency_plot(latency: dict[str, Any], step: timedelta) -> str:
    rows = latency["over_time"]
    series = {key: [r[key] for r in rows] for key in ("p50", "p95", "p99")}
    return svg.lines_over_time([_t(r["t"]) for r in rows], series, step)


def _error_plot(endpoints: dict[str, Any], step: timedelta) -> str:
    times = sorted({r["t"] for e in endpoints.values() for r in e["over_time"]})
    series = {}
    for endpoint, e in endpoints.items():
        rates = {r["t"]: r["error_rate"] for r in e["over_time"]}
        series[endpoint] = [None if rates.get(t) is None else rates[t] * 100 for t in times]
    return svg.lines_over_time([_t(t) for t in times], series, step, "% of requests", y_min_top=5.0)


def _stacked(rows: list[dict[str, Any]], step: timedelta) -> str:
    labels = sorted({k for r in rows for k in r if k != "t"})
    series = {label: [r.get(label, 0) for r in rows] for label in labels}
    return svg.stacked_over_time([_t(r["t"]) for r in rows], series, step)


def _histogram(histogram: dict[str, Any] | None, mark: float | None = None) -> str:
    if not histogram:
        return svg.no_data()
    return svg.histogram(histogram["edges"], histogram["counts"], mark)


def _drift_plot(drift: dict[str, Any]) -> str:
    shares = drift.get("shares")
    if not shares:
        return svg.no_data()
    labels = sorted(shares, key=lambda k: -shares[k]["reference"])[:12]
    return svg.grouped_bars(
        labels,
        {
            "reference": [shares[k]["reference"] * 100 for k in labels],
            "latest": [shares[k]["latest"] * 100 for k in labels],
        },
        y_label="% share",
        highlight="latest" if drift["drifted"] else None,
    )
