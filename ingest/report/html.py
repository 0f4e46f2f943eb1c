"""The monitoring report as one self-contained HTML page: inline SVG plots, no scripts.

It opens offline, from a mail attachment or a cron job's output directory: no CDN, no
JavaScript, every picture drawn by matplotlib into the page as SVG. matplotlib is the
``report`` extra; ``ingest report --json`` works without it.
"""

from __future__ import annotations

import io
import itertools
from datetime import datetime
from html import escape
from typing import Any

from ingest.errors import MissingExtra

PALETTE = ["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C"]

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


class MissingPlotting(MissingExtra):
    """matplotlib (the ``report`` extra) is not installed."""


def render(metrics: dict[str, Any]) -> str:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise MissingPlotting(
            "the HTML report needs matplotlib: pip install 'rubrix-ingest[report]' (or use --json)"
        ) from None
    plt.rcParams.update(
        {"svg.fonttype": "none", "font.size": 9, "axes.spines.top": False, "axes.spines.right": False}
    )
    parts = [_head(metrics), _runs(metrics["runs"])]
    if not metrics["datasets"]:
        parts.append("<p>The store holds no datasets yet: run <code>ingest</code> on some logs first.</p>")
    for name, dataset in metrics["datasets"].items():
        parts.append(_dataset(plt, name, dataset))
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
        f"<p class='note'>{runs['rereading_runs']} of these runs re-read logs (--from-start or a time "
        "window): their lines are counted again in traffic and error rates.</p>"
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


def _dataset(plt: Any, name: str, d: dict[str, Any]) -> str:
    task = d["task"] or "empty"
    requests = sum(e["requests"] for e in d["endpoints"].values())
    errors = sum(e["errors"] for e in d["endpoints"].values())
    numbers = [
        _number(f"{d['records']:,}", "records"),
        _number(f"{requests:,}", "requests (run log)"),
        _number(_fmt(errors / requests * 100 if requests else None, "%", 2), "error rate"),
        _number(_fmt(d["latency_ms"]["p50"], " ms"), "latency p50"),
        _number(_fmt(d["latency_ms"]["p95"], " ms"), "latency p95"),
        _number(_fmt(d["latency_ms"]["p99"], " ms"), "latency p99"),
    ]
    figures = [
        _figure(plt, "Records over time", lambda ax: _bars_over_time(ax, d["records_over_time"], "records")),
        _figure(plt, "Latency percentiles over time (ms)", lambda ax: _latency_plot(ax, d["latency_ms"])),
        _figure(plt, "Error rate per endpoint over time", lambda ax: _error_plot(ax, d["endpoints"])),
    ]
    extra = ""
    if task == "TextClassification":
        scores = d["scores"]
        numbers.append(_number(_fmt(scores["low_confidence_share"] and scores["low_confidence_share"] * 100,
                                    "%"), f"score below {scores['low_confidence_below']}"))  # fmt: skip
        figures += [
            _figure(plt, "Predicted labels over time", lambda ax: _stacked(ax, d["labels"]["over_time"])),
            _figure(plt, "Top-label score distribution", lambda ax: _histogram(ax, scores["histogram"],
                                                                                scores["low_confidence_below"])),
            _figure(plt, "Label shares: reference vs latest window", lambda ax: _drift_plot(ax, d["drift"])),
        ]  # fmt: skip
        extra = _low_confidence_table(d["recent_low_confidence"], scores["low_confidence_below"])
    elif task == "TokenClassification":
        e = d["entities"]
        numbers.append(_number(_fmt(e["mean_per_record"], "", 2), "entities per record"))
        numbers.append(_number(_fmt(e["no_entity_share"] and e["no_entity_share"] * 100, "%"), "no entities"))
        figures += [
            _figure(plt, "Entity labels", lambda ax: _barh(ax, e["label_counts"])),
            _figure(plt, "Entities per record", lambda ax: _bars(ax, e["per_record"])),
            _figure(
                plt, "Entity label shares: reference vs latest window", lambda ax: _drift_plot(ax, d["drift"])
            ),
        ]
    elif task == "Text2Text":
        o = d["output_length"]
        numbers.append(_number(_fmt(o["p50"], " chars", 0), "output length p50"))
        figures.append(_figure(plt, "Output length (characters)", lambda ax: _histogram(ax, o["histogram"])))
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
def _figure(plt: Any, caption: str, draw: Any) -> str:
    fig, ax = plt.subplots(figsize=(5.6, 2.6), layout="constrained")
    try:
        if draw(ax) is False:
            ax.axis("off")
            ax.text(0.5, 0.5, "no data", ha="center", va="center", color="#888", transform=ax.transAxes)
        buffer = io.StringIO()
        fig.savefig(buffer, format="svg")
    finally:
        plt.close(fig)
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg") :]  # drop the XML prolog and doctype: the SVG sits inside HTML
    return f"<figure>{svg}<figcaption>{escape(caption)}</figcaption></figure>"


def _times(rows: list[dict[str, Any]]) -> list[datetime]:
    return [datetime.fromisoformat(r["t"]) for r in rows]


def _width(times: list[datetime]) -> float:
    """Bar width in days: the smallest gap between buckets, most of it."""
    if len(times) < 2:
        return 1 / 24 * 0.8
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
    return min(gaps) / 86400 * 0.8


def _time_axis(ax: Any) -> None:
    import matplotlib.dates as mdates

    locator = mdates.AutoDateLocator(maxticks=6)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))


def _bars_over_time(ax: Any, rows: list[dict[str, Any]], key: str) -> bool | None:
    if not rows:
        return False
    times = _times(rows)
    ax.bar(times, [r[key] for r in rows], width=_width(times), color=PALETTE[0])
    _time_axis(ax)
    return None


def _latency_plot(ax: Any, latency: dict[str, Any]) -> bool | None:
    rows = latency["over_time"]
    if not rows:
        return False
    times = _times(rows)
    for key, color in (("p50", PALETTE[0]), ("p95", PALETTE[1]), ("p99", PALETTE[3])):
        ax.plot(times, [r[key] for r in rows], marker="o", markersize=3, label=key, color=color)
    ax.legend(frameon=False, fontsize=8)
    ax.set_ylim(bottom=0)
    _time_axis(ax)
    return None


def _error_plot(ax: Any, endpoints: dict[str, Any]) -> bool | None:
    if not any(e["over_time"] for e in endpoints.values()):
        return False
    for endpoint, e in endpoints.items():
        rows = e["over_time"]
        ax.plot(_times(rows), [r["error_rate"] * 100 for r in rows], marker="o", markersize=3, label=endpoint)
    ax.set_ylabel("% of requests")
    ax.set_ylim(bottom=0, top=max(5.0, ax.get_ylim()[1]))
    ax.legend(frameon=False, fontsize=8)
    _time_axis(ax)
    return None


def _stacked(ax: Any, rows: list[dict[str, Any]]) -> bool | None:
    if not rows:
        return False
    times = _times(rows)
    labels = sorted({k for r in rows for k in r if k != "t"})
    bottom = [0] * len(rows)
    for i, label in enumerate(labels):
        values = [r.get(label, 0) for r in rows]
        ax.bar(
            times, values, bottom=bottom, width=_width(times), label=label, color=PALETTE[i % len(PALETTE)]
        )
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    ax.legend(frameon=False, fontsize=8)
    _time_axis(ax)
    return None


def _histogram(ax: Any, histogram: dict[str, Any] | None, mark: float | None = None) -> bool | None:
    if not histogram or not sum(histogram["counts"]):
        return False
    edges, counts = histogram["edges"], histogram["counts"]
    widths = [b - a for a, b in itertools.pairwise(edges)]
    colors = [PALETTE[3] if mark is not None and a < mark else PALETTE[0] for a in edges[:-1]]
    ax.bar(edges[:-1], counts, width=widths, align="edge", color=colors, edgecolor="white")
    if mark is not None:
        ax.axvline(mark, color="#444", linestyle="--", linewidth=1)
    return None


def _barh(ax: Any, counts: dict[str, int], top: int = 12) -> bool | None:
    if not counts:
        return False
    items = list(counts.items())[:top][::-1]
    ax.barh([k for k, _ in items], [v for _, v in items], color=PALETTE[0])
    return None


def _bars(ax: Any, counts: dict[str, int]) -> bool | None:
    if not counts:
        return False
    ax.bar(list(counts), list(counts.values()), color=PALETTE[0])
    return None


def _drift_plot(ax: Any, drift: dict[str, Any]) -> bool | None:
    shares = drift.get("shares")
    if not shares:
        return False
    labels = sorted(shares, key=lambda k: -shares[k]["reference"])[:12]
    positions = range(len(labels))
    ax.bar([p - 0.2 for p in positions], [shares[k]["reference"] * 100 for k in labels], width=0.4,
           label="reference", color=PALETTE[7])  # fmt: skip
    ax.bar([p + 0.2 for p in positions], [shares[k]["latest"] * 100 for k in labels], width=0.4,
           label="latest", color=PALETTE[3] if drift["drifted"] else PALETTE[0])  # fmt: skip
    ax.set_xticks(list(positions), labels, rotation=30 if len(labels) > 5 else 0)
    ax.set_ylabel("% share")
    ax.legend(frameon=False, fontsize=8)
    return None
