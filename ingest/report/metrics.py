"""The monitoring metrics of a local store: what the report draws and ``--json`` prints.

Rubrix computes metrics on the server as predictions arrive; a local store has none, so
they are computed here from the stored columns (the flat ones, reading the record JSON only
for entity labels) and from the run log (traffic and errors, which never become records).
Everything returned is plain JSON data.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd

from ingest.report.runlog import read_runs
from ingest.sinks.local.layout import StoreLayout
from ingest.sinks.local.store import list_datasets, read_dataset

# Population stability index above which a distribution is flagged as drifted. The usual
# reading: below 0.1 no real change, 0.1 to 0.2 a moderate shift, above 0.2 a significant one.
PSI_THRESHOLD = 0.2
PSI_EPSILON = 1e-4  # share given to a label absent from one window, so that PSI stays finite
MIN_DRIFT_RECORDS = 30  # fewer records in either window: no verdict
LOW_CONFIDENCE = 0.6  # a top score below this is a low-confidence prediction
RECENT_LOW_CONFIDENCE = 20  # rows in the table of recent low-confidence records

# The flat columns the metrics use. The record JSON is read only for entity labels, in
# batches, and texts only for the few rows of the low-confidence table: at a million records
# those two columns are most of the store's bytes.
COLUMNS = ["id", "event_timestamp", "task", "endpoint", "latency_ms", "predicted_label", "predicted_score",
           "n_entities"]  # fmt: skip


@dataclass(frozen=True)
class ReportSpec:
    since: datetime | None = None
    until: datetime | None = None
    drift_window: timedelta = timedelta(days=1)
    drift_threshold: float = PSI_THRESHOLD
    low_confidence: float = LOW_CONFIDENCE


def compute(store: Path, datasets: list[str] | None, spec: ReportSpec) -> dict[str, Any]:
    names = datasets or list_datasets(store)
    runs = read_runs(store)
    result: dict[str, Any] = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "store": str(store),
        "since": spec.since.isoformat() if spec.since else None,
        "until": spec.until.isoformat() if spec.until else None,
        "settings": {
            "drift_window_hours": spec.drift_window.total_seconds() / 3600,
            "drift_threshold_psi": spec.drift_threshold,
            "low_confidence_below": spec.low_confidence,
        },
        "runs": run_totals(runs),
        "datasets": {},
    }
    held: list[pd.Timestamp] = []
    for name in names:
        frame, span = _load(store, name, spec)
        held += span
        result["datasets"][name] = dataset_metrics(store, name, frame, runs, spec)
    result["store_range"] = {"first": _iso(min(held)), "last": _iso(max(held))} if held else None
    in_window = sum(d["records"] for d in result["datasets"].values())
    if held and not in_window and (spec.since or spec.until):
        # An empty page says why: the window missed what the store holds.
        result["empty_window"] = (
            f"no records from {_when(spec.since, 'the start')} to {_when(spec.until, 'now')}; "
            f"the store holds records from {_when(min(held))} to {_when(max(held))}"
        )
    return result


def _when(t: datetime | pd.Timestamp | None, default: str = "") -> str:
    return default if t is None else f"{t:%Y-%m-%d %H:%M} UTC"


def _load(store: Path, name: str, spec: ReportSpec) -> tuple[pd.DataFrame, list[pd.Timestamp]]:
    """The dataset's rows in the window, by time; and the first and last time it holds at all."""
    import pyarrow.compute as pc

    table = read_dataset(store, name, columns=[*COLUMNS, "output_text"])
    lengths = pc.utf8_length(pc.fill_null(table["output_text"], ""))
    table = table.drop_columns(["output_text"]).append_column("output_length", lengths)
    everything = table.to_pandas()
    times = everything["event_timestamp"]
    span = [times.min(), times.max()] if len(everything) else []
    frame = _window(everything, spec)
    return frame.sort_values("event_timestamp", kind="stable").reset_index(drop=True), span


def _window(frame: pd.DataFrame, spec: ReportSpec) -> pd.DataFrame:
    if spec.since is not None:
        frame = frame[frame["event_timestamp"] >= pd.Timestamp(spec.since)]
    if spec.until is not None:
        frame = frame[frame["event_timestamp"] < pd.Timestamp(spec.until)]
    return frame


def _column_for_ids(store: Path, name: str, column: str, ids: list[str]) -> dict[str, Any]:
    import pyarrow.compute as pc

    if not ids:
        return {}
    dataset = StoreLayout(store).open_dataset(name)
    table = dataset.to_table(columns=["id", column], filter=pc.field("id").isin(ids))
    return dict(zip(table["id"].to_pylist(), table[column].to_pylist(), strict=True))


# In a stored record (written by records.complete, in the client's field order) the
# predicted entities sit between "prediction": and "annotation":. Reading their labels by
# pattern there takes 2.1 s for 500k records where parsing them took 3.5 s.
_LABEL = re.compile(r'"label":"((?:[^"\\]|\\.)*)"')


def _entity_labels(store: Path, name: str) -> dict[str, list[str]]:
    """Entity labels per record id, read batch by batch from the record JSON."""
    out: dict[str, list[str]] = {}
    dataset = StoreLayout(store).open_dataset(name)
    for batch in dataset.to_batches(columns=["id", "record"], batch_size=32_768):
        for record_id, raw in zip(batch.column(0).to_pylist(), batch.column(1).to_pylist(), strict=True):
            start = raw.find('"entities":[', raw.find('"prediction":'))
            if start < 0:
                continue
            labels = _LABEL.findall(raw, start, raw.find('"annotation":', start))
            if labels:
                out[record_id] = [orjson.loads(f'"{label}"') if "\\" in label else label for label in labels]
    return out


def run_totals(runs: list[dict[str, Any]]) -> dict[str, Any]:
    skipped: Counter[str] = Counter()
    for run in runs:
        skipped.update(run.get("skipped", {}))
    return {
        "count": len(runs),
        "first": runs[0]["started"] if runs else None,
        "last": runs[-1]["finished"] if runs else None,
        "lines_read": sum(r.get("lines_read", 0) for r in runs),
        "records_written": sum(r.get("records_written", 0) for r in runs),
        "rejected": sum(r.get("rejected", 0) for r in runs),
        "skipped": dict(sorted(skipped.items())),
        "rereading_runs": sum(1 for r in runs if r.get("options", {}).get("rereads")),
    }


def dataset_metrics(
    store: Path, name: str, frame: pd.DataFrame, runs: list[dict[str, Any]], spec: ReportSpec
) -> dict[str, Any]:
    task = str(frame["task"].iloc[0]) if len(frame) else None
    out: dict[str, Any] = {
        "task": task,
        "records": len(frame),
        "first": _iso(frame["event_timestamp"].iloc[0]) if len(frame) else None,
        "last": _iso(frame["event_timestamp"].iloc[-1]) if len(frame) else None,
    }
    freq = _bucket(frame)
    out["bucket"] = {"h": "hour", "D": "day"}[freq]
    out["records_over_time"] = _over_time(frame, freq)
    out["latency_ms"] = _latency(frame, freq)
    out["endpoints"] = _traffic(name, runs, spec, freq)
    if task == "TextClassification":
        out.update(_text_classification(frame, freq, spec))
        recent = out["recent_low_confidence"]
        texts = _column_for_ids(store, name, "text", [r["id"] for r in recent])
        for row in recent:
            row["text"] = texts.get(row["id"])
    elif task == "TokenClassification":
        labels = _entity_labels(store, name) if len(frame) else {}
        out.update(_token_classification(frame, labels, spec))
    elif task == "Text2Text":
        out.update(_text2text(frame))
    return out


def _iso(ts: pd.Timestamp) -> str:
    return ts.isoformat()


def _bucket(frame: pd.DataFrame) -> str:
    if len(frame) < 2:
        return "h"
    span = frame["event_timestamp"].iloc[-1] - frame["event_timestamp"].iloc[0]
    return "h" if span <= pd.Timedelta(days=3) else "D"


def _over_time(frame: pd.DataFrame, freq: str) -> list[dict[str, Any]]:
    if not len(frame):
        return []
    counts = frame.groupby(frame["event_timestamp"].dt.floor(freq)).size()
    return [{"t": _iso(t), "records": int(n)} for t, n in counts.items()]


def _requests(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per request: a batch's records share the request's latency."""
    first_of_request = frame["id"].str.endswith("-0")
    return frame[first_of_request & frame["latency_ms"].notna()]


def _latency(frame: pd.DataFrame, freq: str) -> dict[str, Any]:
    requests = _requests(frame)
    if not len(requests):
        return {"requests": 0, "p50": None, "p95": None, "p99": None, "over_time": []}
    q = requests["latency_ms"].quantile([0.5, 0.95, 0.99]).to_numpy()
    grouped = requests.groupby(requests["event_timestamp"].dt.floor(freq))["latency_ms"]
    per = grouped.quantile([0.5, 0.95, 0.99]).unstack()
    # Buckets without a request are rows of None, so that a plot breaks its lines there
    # instead of drawing across hours that had no traffic.
    per = per.reindex(pd.date_range(per.index.min(), per.index.max(), freq=freq))
    sizes = grouped.size().reindex(per.index, fill_value=0)
    return {
        "requests": len(requests),
        "p50": _num(q[0]),
        "p95": _num(q[1]),
        "p99": _num(q[2]),
        "over_time": [
            {
                "t": _iso(t),
                "requests": int(sizes[t]),
                "p50": _num(row[0.5]),
                "p95": _num(row[0.95]),
                "p99": _num(row[0.99]),
            }
            for t, row in per.iterrows()
        ],
    }


def _traffic(name: str, runs: list[dict[str, Any]], spec: ReportSpec, freq: str) -> dict[str, Any]:
    """Requests and error responses per endpoint of this dataset, from the run log."""
    lo = spec.since.timestamp() // 3600 if spec.since else -math.inf
    hi = spec.until.timestamp() / 3600 if spec.until else math.inf
    per_endpoint: dict[str, Counter[tuple[int, int]]] = {}
    for run in runs:
        for endpoint, counts in run.get("endpoints", {}).items():
            # an endpoint whose lines have several tasks feeds several datasets ("a, b")
            if name not in str(counts.get("dataset")).split(", "):
                continue
            found = per_endpoint.setdefault(endpoint, Counter())
            for hour, status, n in counts.get("by_hour", []):
                if lo <= hour < hi:
                    found[(hour, status)] += n
    out = {}
    for endpoint, counts in sorted(per_endpoint.items()):
        statuses: Counter[int] = Counter()
        buckets: dict[pd.Timestamp, list[int]] = {}
        for (hour, status), n in counts.items():
            statuses[status] += n
            t = pd.Timestamp(hour * 3600, unit="s", tz="UTC").floor(freq)
            bucket = buckets.setdefault(t, [0, 0])
            bucket[0] += n
            bucket[1] += n if status >= 400 else 0
        requests = sum(statuses.values())
        errors = sum(n for status, n in statuses.items() if status >= 400)
        out[endpoint] = {
            "requests": requests,
            "errors": errors,
            "error_rate": errors / requests if requests else None,
            "status_counts": {str(s): n for s, n in sorted(statuses.items())},
            "over_time": [
                {"t": _iso(t), "requests": r, "errors": e, "error_rate": e / r if r else None}
                for t, (r, e) in sorted(buckets.items())
            ],
        }
    return out


def _text_classification(frame: pd.DataFrame, freq: str, spec: ReportSpec) -> dict[str, Any]:
    labels = frame["predicted_label"].fillna("(none)")
    scores = frame["predicted_score"].dropna()
    over_time = []
    if len(frame):
        table = pd.crosstab(frame["event_timestamp"].dt.floor(freq), labels)
        over_time = [
            {"t": _iso(t), **{str(k): int(v) for k, v in row.items()}} for t, row in table.iterrows()
        ]
    low = frame[frame["predicted_score"] < spec.low_confidence]
    recent = low.tail(RECENT_LOW_CONFIDENCE).iloc[::-1]
    edges = np.linspace(0, 1, 21)
    counts, _ = np.histogram(scores.clip(0, 1), bins=edges)
    return {
        "labels": {
            "counts": {str(k): int(v) for k, v in labels.value_counts().items()},
            "over_time": over_time,
        },
        "scores": {
            "mean": _num(scores.mean()) if len(scores) else None,
            "histogram": {"edges": [round(float(e), 2) for e in edges], "counts": [int(c) for c in counts]},
            "low_confidence_below": spec.low_confidence,
            "low_confidence_records": len(low),
            "low_confidence_share": len(low) / len(frame) if len(frame) else None,
        },
        "recent_low_confidence": [
            {
                "event_timestamp": _iso(r.event_timestamp),
                "endpoint": r.endpoint,
                "text": None,  # filled in from the store for these few rows
                "predicted_label": r.predicted_label,
                "predicted_score": _num(r.predicted_score),
                "id": r.id,
            }
            for r in recent.itertuples()
        ],
        "drift": _drift(frame["event_timestamp"], labels, spec),
    }


def _token_classification(
    frame: pd.DataFrame, labels_by_id: dict[str, list[str]], spec: ReportSpec
) -> dict[str, Any]:
    per_record = [labels_by_id.get(record_id, []) for record_id in frame["id"]]
    label_counts: Counter[str] = Counter(label for labels in per_record for label in labels)
    n_entities = frame["n_entities"].fillna(0).astype(int)
    histogram = n_entities.clip(upper=10).value_counts().sort_index()
    # One row per entity: its label and its record's time (not a copy of the record's row).
    entity_times = frame["event_timestamp"].repeat([len(labels) for labels in per_record])
    entity_labels = pd.Series([label for labels in per_record for label in labels], dtype=object)
    return {
        "entities": {
            "label_counts": dict(label_counts.most_common()),
            "total": int(n_entities.sum()),
            "mean_per_record": _num(n_entities.mean()) if len(frame) else None,
            "per_record": {("10+" if k == 10 else str(k)): int(v) for k, v in histogram.items()},
            "records_without_entities": int((n_entities == 0).sum()),
            "no_entity_share": _num((n_entities == 0).mean()) if len(frame) else None,
        },
        "drift": _drift(entity_times, entity_labels, spec, unit="entities"),
    }


def _text2text(frame: pd.DataFrame) -> dict[str, Any]:
    lengths = frame["output_length"]
    if not len(lengths):
        return {"output_length": {"mean": None, "p50": None, "p95": None, "histogram": None}}
    top = max(int(lengths.max()), 1)
    edges = np.linspace(0, top, min(20, top) + 1)
    counts, _ = np.histogram(lengths, bins=edges)
    return {
        "output_length": {
            "mean": _num(lengths.mean()),
            "p50": _num(lengths.quantile(0.5)),
            "p95": _num(lengths.quantile(0.95)),
            "histogram": {"edges": [round(float(e), 1) for e in edges], "counts": [int(c) for c in counts]},
        }
    }


def _drift(ts: pd.Series, labels: pd.Series, spec: ReportSpec, unit: str = "records") -> dict[str, Any]:
    """PSI between the label shares of the latest window and of everything before it.

    ``ts`` and ``labels`` are aligned by position: one time and one label per item.
    """
    out: dict[str, Any] = {"statistic": "population stability index", "threshold": spec.drift_threshold,
                           "unit": unit, "psi": None, "drifted": False}  # fmt: skip
    if not len(ts):
        out["verdict"] = "no data"
        return out
    labels = labels.reset_index(drop=True)
    ts = ts.reset_index(drop=True)
    end = ts.max()
    start = end - pd.Timedelta(spec.drift_window)
    latest_mask = (ts > start).to_numpy()
    latest, reference = labels[latest_mask], labels[~latest_mask]
    out["latest"] = {"from": _iso(start), "to": _iso(end), "count": len(latest)}
    out["reference"] = {"from": _iso(ts.min()) if len(reference) else None, "to": _iso(start),
                        "count": len(reference)}  # fmt: skip
    if len(latest) < MIN_DRIFT_RECORDS or len(reference) < MIN_DRIFT_RECORDS:
        out["verdict"] = f"not enough data (fewer than {MIN_DRIFT_RECORDS} {unit} in a window)"
        return out
    ref_share = reference.value_counts(normalize=True)
    new_share = latest.value_counts(normalize=True)
    keys = sorted(set(ref_share.index) | set(new_share.index), key=str)
    psi = 0.0
    shares = {}
    for key in keys:
        ref, new = float(ref_share.get(key, 0.0)), float(new_share.get(key, 0.0))
        p, q = max(ref, PSI_EPSILON), max(new, PSI_EPSILON)
        psi += (q - p) * math.log(q / p)
        shares[str(key)] = {"reference": ref, "latest": new}
    out.update(psi=psi, drifted=psi > spec.drift_threshold, shares=shares)
    out["verdict"] = "drifted" if out["drifted"] else "stable"
    return out


def _num(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else round(value, 6)
