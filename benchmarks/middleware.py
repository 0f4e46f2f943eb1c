"""Latency and throughput of one endpoint with no middleware, Argilla's, and ours.

    python benchmarks/middleware.py [--seconds 10] [--rounds 3] [--connections 8] [--json out.json]

Needs the `test` extra (FastAPI, uvicorn, the test server) and `wrk` (Debian: apt-get
install wrk) as the load generator: written in C, it takes little of the two cores from
the server. Each round serves benchmarks/middleware_app.py under uvicorn (1 worker) three
times, once per middleware, in the same run; figures are the median over rounds.
Argilla's ArgillaLogHTTPMiddleware logs to the local test server (tests/rubrix_server.py).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import RubrixServer, free_port  # noqa: E402

BODY = ["Meet Ana García in Paris on Monday.", "I really like Rubrix!", "Nothing to see here", "Zürich"]
MODES = ("none", "ours", "argilla")
_UNIT = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def run_wrk(url: str, seconds: float, connections: int, script: Path) -> dict[str, float]:
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{int(seconds)}s", "--latency", "-s", str(script), url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    percentiles = {
        p: float(v) * _UNIT[u] for p, v, u in re.findall(r"^\s+(\d+)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    }
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    result = {
        "requests_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50_ms": percentiles["50"],
        "p99_ms": percentiles["99"],
        "non_2xx": int(errors.group(1)) if errors else 0,
    }
    if result["non_2xx"]:
        raise SystemExit(f"{url} answered {result['non_2xx']} requests with an error: the benchmark is void")
    return result


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def serve(mode: str, env: dict[str, str], seconds: float, connections: int, script: Path) -> dict[str, float]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "benchmarks.middleware_app:app", "--port", str(port),
         "--log-level", "warning", "--no-access-log"],
        cwd=ROOT, env={**env, "BENCH_MIDDLEWARE": mode}, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/spacy/"
    try:
        for _ in range(300):
            try:
                httpx.get(f"http://127.0.0.1:{port}/openapi.json", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        run_wrk(url, 2, connections, script)  # warm-up
        cpu_before = cpu_seconds(proc.pid)
        result = run_wrk(url, seconds, connections, script)
        # CPU per request is steadier than requests/s on a noisy machine.
        cpu = cpu_seconds(proc.pid) - cpu_before
        result["server_cpu_us_per_request"] = cpu / (result["requests_per_s"] * int(seconds)) * 1e6
        return result
    finally:
        proc.terminate()
        proc.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-middleware-"))
    script = work / "post.lua"
    script.write_text(
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        f"wrk.body = [==[{json.dumps(BODY, ensure_ascii=False)}]==]\n",
        encoding="utf-8",
    )
    server = RubrixServer(api_key="bench.apikey").start()
    log = work / "access.jsonl"
    env = {**os.environ, "BENCH_LOG": str(log), "PYTHONPATH": str(ROOT),
           "ARGILLA_API_URL": server.url, "ARGILLA_API_KEY": server.api_key}  # fmt: skip
    results: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}
    try:
        for round_ in range(args.rounds):
            for mode in MODES:
                result = serve(mode, env, args.seconds, args.connections, script)
                results[mode].append(result)
                print(f"round {round_ + 1} {mode:8} {result}", file=sys.stderr)
        logged = {
            "ours_lines": sum(1 for _ in log.open()) if log.exists() else 0,
            "argilla_records": len(server.records("monitoring_spacy", "argilla")),
        }
    finally:
        server.stop()

    median = {m: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for m, rs in results.items()}
    base = median["none"]
    added = {m: median[m]["p50_ms"] - base["p50_ms"] for m in ("ours", "argilla")}
    summary = {
        "seconds": args.seconds,
        "rounds": args.rounds,
        "connections": args.connections,
        "median": median,
        "rounds_results": results,
        "p50_added_ms": added,
        "ours_added_p50_share_of_argilla": added["ours"] / added["argilla"] if added["argilla"] else None,
        "throughput_share_of_none": {m: median[m]["requests_per_s"] / base["requests_per_s"] for m in MODES},
        "logged": logged,
    }
    print(f"{'middleware':10} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'p50 added':>10} {'throughput':>10}"
          f" {'CPU us/req':>10}")  # fmt: skip
    for mode in MODES:
        m = median[mode]
        share = summary["throughput_share_of_none"][mode]
        extra = f"{added[mode]:+10.3f}" if mode in added else f"{'':>10}"
        latency = f"{m['p50_ms']:8.3f} {m['p99_ms']:8.3f}"
        cpu = m["server_cpu_us_per_request"]
        print(f"{mode:10} {m['requests_per_s']:9.0f} {latency} {extra} {share:10.1%} {cpu:10.0f}")
    ratio = summary["ours_added_p50_share_of_argilla"]
    kept = summary["throughput_share_of_none"]["ours"]
    print(f"ours adds {ratio:.1%} of the p50 latency Argilla's adds (target <= 25%); "
          f"ours keeps {kept:.1%} of the throughput (target >= 90%)")  # fmt: skip
    print(f"logged during the run: {logged}")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
