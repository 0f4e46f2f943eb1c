"""Lines/s of the SageMaker profile against the native access log, same predictions, one run.

``python benchmarks/formats.py [N] [--jobs J]`` writes N predictions (default 200,000) twice:
as this project's access log and as SageMaker data capture lines (bodies as JSON text in
strings, ``{"inputs": text}`` -> ``[{"label", "score"}]`` as the Hugging Face container
answers, 10% of lines with a batch of two), then ingests each into a fresh local store with
the real CLI (``python -m ingest``) and prints wall time, lines/s and records/s. Each is
run ``--repeat`` times (default 2), interleaved, and the best is kept; both files are read once before
timing so that the page cache holds them.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORDS = [
    "the",
    "service",
    "was",
    "really",
    "good",
    "bad",
    "slow",
    "fast",
    "delivery",
    "product",
    "support",
    "café",
    "naïve",
    "déjà",
    "über",
    "東京",
]


def predictions(n: int, seed: int = 7) -> list[tuple[str, list[str], list[dict[str, float | str]]]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        size = 2 if i % 10 == 0 else 1
        texts = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 20))) for _ in range(size)]
        labels = [
            {"label": rng.choice(["POSITIVE", "NEGATIVE"]), "score": round(rng.uniform(0.5, 1), 6)}
            for _ in range(size)
        ]
        ts = f"2026-11-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:{(i * 7) % 60:02d}Z"
        out.append((ts, texts, labels))
    return out


def write(n: int, folder: Path) -> tuple[Path, Path]:
    native = folder / "access.jsonl"
    capture = folder / "data-capture/sentiment/AllTraffic/2026/11/24/12/00-00-000-bench.jsonl"
    capture.parent.mkdir(parents=True)
    with native.open("w") as a, capture.open("w") as s:
        for i, (ts, texts, labels) in enumerate(predictions(n)):
            request = texts if len(texts) > 1 else texts[0]
            response = labels if len(labels) > 1 else [labels[0]]
            a.write(
                json.dumps(
                    {"ts": ts, "path": "sentiment", "status": 200, "request_id": f"e-{i}",
                     "request": request, "response": response}, ensure_ascii=False
                ) + "\n"
            )  # fmt: skip
            s.write(
                json.dumps(
                    {
                        "captureData": {
                            "endpointInput": {
                                "observedContentType": "application/json",
                                "mode": "INPUT",
                                "data": json.dumps({"inputs": request}, ensure_ascii=False),
                                "encoding": "JSON",
                            },
                            "endpointOutput": {
                                "observedContentType": "application/json",
                                "mode": "OUTPUT",
                                "data": json.dumps(response),
                                "encoding": "JSON",
                            },
                        },
                        "eventMetadata": {"eventId": f"e-{i}", "inferenceTime": ts},
                        "eventVersion": "0",
                    },
                    ensure_ascii=False,
                )
                + "\n"
            )
    return native, capture


def ingest(path: Path, fmt: str, jobs: int, folder: Path) -> tuple[float, dict]:
    store = folder / f"store-{fmt}"
    shutil.rmtree(store, ignore_errors=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env = {k: v for k, v in env.items() if not k.startswith(("RUBRIX_", "ARGILLA_"))}
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "ingest", str(path), "--format", fmt, "--store", str(store),
         "--jobs", str(jobs), "--json", "-q"],
        capture_output=True, env=env, check=True,
    )  # fmt: skip
    return time.perf_counter() - started, json.loads(proc.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("n", nargs="?", type=int, default=200_000)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        native, capture = write(args.n, folder)
        for path in (native, capture):
            path.read_bytes()  # into the page cache
        print(f"{args.n} predictions, --jobs {args.jobs}, best of {args.repeat}")
        print(f"{'format':<12}{'MB':>8}{'seconds':>10}{'lines/s':>10}{'records/s':>11}")
        runs: dict[str, list[tuple[float, dict]]] = {"access-log": [], "sagemaker": []}
        for _ in range(args.repeat):  # interleaved: a noisy neighbour slows both alike
            for fmt, path in (("access-log", native), ("sagemaker", capture)):
                runs[fmt].append(ingest(path, fmt, args.jobs, folder))
        rates = {}
        for fmt, path in (("access-log", native), ("sagemaker", capture)):
            best, summary = min(runs[fmt], key=lambda r: r[0])
            written, lines = summary["records_written"], summary["lines_read"]
            rates[fmt] = lines / best
            size = path.stat().st_size / 1e6
            print(f"{fmt:<12}{size:>8.1f}{best:>10.2f}{lines / best:>10.0f}{written / best:>11.0f}")
        print(f"sagemaker / access-log lines/s: {rates['sagemaker'] / rates['access-log']:.2f}")


if __name__ == "__main__":
    main()
