"""Soak test of real-time scoring: steady load on the API for a long while (default 10
minutes), watching for errors and for growth of the server's memory and open files.

    python benchmarks/soak_api.py [--seconds 600] [--rate 120] [--workers 2] [--record]

Uses the workspace and server of ``bench_api.py`` (``segmint serve`` alone on 127.0.0.1, a
free port). Three ``hey`` clients run side by side for ``--seconds``, rate-limited so the
load is steady rather than saturating: one customer from features (half of ``--rate``), one
customer from order lines (the other half), and a batch of 1,000 customers once a second.
Every ``--every`` seconds it samples the server processes' resident memory (sum of VmRSS) and
open file descriptors (sum over ``/proc/<pid>/fd``).

Fails (exit 1) when any request did not answer 200, when memory grew by more than
``--max-rss-growth-mb`` (default 64 MB) or open files by more than ``--max-fd-growth``
(default 8) between the first sample after the warm-up (the first 10% of the run) and the
median of the last 20% of the samples, or when the server died. Bounded: every client stops
after ``--seconds`` (and is killed 60 s later at most); only 127.0.0.1 is targeted.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import secrets
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _common import RESULTS, machine
from bench_api import RUN_NAME, bodies, server, server_pids, workspace


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def sample(pids: list[int]) -> tuple[float, int]:
    """(RSS in MB, open files) summed over the server processes still alive."""
    rss, fds = 0, 0
    for pid in pids:
        try:
            rss += rss_kb(pid)
            fds += open_fds(pid)
        except OSError:
            continue
    return rss / 1024.0, fds


def start_hey(url: str, key: str, body: Path, seconds: int, conc: int, qps: float):
    cmd = ["hey", "-z", f"{seconds}s", "-c", str(conc), "-q", f"{qps:g}", "-m", "POST",
           "-T", "application/json", "-H", f"Authorization: Bearer {key}", "-D", str(body),
           "-o", "csv", url]  # fmt: skip
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def outcome(proc: subprocess.Popen, deadline: float) -> dict:
    try:
        out, _ = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate(timeout=10)
    rows = list(csv.DictReader(io.StringIO(out)))
    lat = sorted(float(r["response-time"]) * 1000 for r in rows)
    statuses: dict[str, int] = {}
    for r in rows:
        statuses[r["status-code"]] = statuses.get(r["status-code"], 0) + 1
    return {
        "requests": len(rows),
        "errors": sum(n for s, n in statuses.items() if s != "200"),
        "statuses": statuses,
        "p50": lat[len(lat) // 2] if lat else float("nan"),
        "p99": lat[min(len(lat) - 1, int(0.99 * len(lat)))] if lat else float("nan"),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=int, default=600)
    ap.add_argument("--rate", type=float, default=120.0, help="Single-customer requests/s.")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--customers", type=int, default=20_000)
    ap.add_argument("--every", type=float, default=10.0, help="Seconds between samples.")
    ap.add_argument("--max-rss-growth-mb", type=float, default=64.0)
    ap.add_argument("--max-fd-growth", type=int, default=8)
    ap.add_argument("--record", action="store_true", help="Append the result to RESULTS.md.")
    args = ap.parse_args()

    root = workspace(args.customers)
    from segmint.pipeline.jobs import find_run_folder
    from segmint.store.loading import load_run_model

    made = bodies(root, load_run_model(find_run_folder(RUN_NAME, None)))
    files = {}
    for name in ("features_1", "orders_1", "features_1000"):
        files[name] = root / f"soak_{name}.json"
        files[name].write_text(json.dumps(made[name]))
    key = secrets.token_urlsafe(24)
    load_before = os.getloadavg()
    samples: list[tuple[float, float, int]] = []
    with server(root, args.workers, key, uvicorn=False) as (url, pids):
        score_url = f"{url}/v1/runs/{RUN_NAME}/score"
        half = args.rate / 2
        clients = {
            # hey's -q is per worker: 2 workers each at rate/4 make rate/2 per client
            "features_1": start_hey(score_url, key, files["features_1"], args.seconds, 2, half / 2),
            "orders_1": start_hey(score_url, key, files["orders_1"], args.seconds, 2, half / 2),
            "features_1000": start_hey(score_url, key, files["features_1000"], args.seconds, 1, 1),
        }
        t0 = time.monotonic()
        end = t0 + args.seconds
        while time.monotonic() < end:
            if not os.path.exists(f"/proc/{pids[0]}"):
                break
            rss, fds = sample(server_pids(pids[0]))  # workers a restart replaced count too
            samples.append((time.monotonic() - t0, rss, fds))
            print(f"{samples[-1][0]:6.0f} s  RSS {rss:7.1f} MB  open files {fds}", flush=True)
            time.sleep(min(args.every, max(0.0, end - time.monotonic())))
        rss, fds = sample(server_pids(pids[0]))
        samples.append((time.monotonic() - t0, rss, fds))
        alive = os.path.exists(f"/proc/{pids[0]}")
        results = {name: outcome(p, end + 60) for name, p in clients.items()}
    load_after = os.getloadavg()

    warm = [s for s in samples if s[0] >= 0.1 * args.seconds] or samples
    tail = warm[int(0.8 * len(warm)) :] or warm[-1:]
    base_rss, base_fds = warm[0][1], warm[0][2]
    rss_growth = statistics.median(s[1] for s in tail) - base_rss
    fd_growth = int(statistics.median(s[2] for s in tail)) - base_fds
    errors = sum(r["errors"] for r in results.values())
    problems = []
    if not alive:
        problems.append("the server died")
    if errors:
        problems.append(f"{errors} request(s) did not answer 200")
    if rss_growth > args.max_rss_growth_mb:
        problems.append(f"memory grew {rss_growth:.1f} MB (bound {args.max_rss_growth_mb:g})")
    if fd_growth > args.max_fd_growth:
        problems.append(f"open files grew by {fd_growth} (bound {args.max_fd_growth})")
    verdict = "PASS" if not problems else "FAIL: " + "; ".join(problems)

    lines = [
        f"### {time.strftime('%Y-%m-%d')}: soak, {args.seconds} s at {args.rate:g} single-"
        f"customer requests/s + one 1,000-customer batch/s, segmint serve --workers "
        f"{args.workers} — {verdict}",
        "",
        f"{machine()}; load average before {load_before[0]:.2f}, after {load_after[0]:.2f}.",
        "",
        "| client | requests | non-200 | p50 | p99 |",
        "|---|---|---|---|---|",
    ]
    for name, r in results.items():
        lines.append(
            f"| {name} | {r['requests']:,} | {r['errors']} | {r['p50']:.1f} ms | "
            f"{r['p99']:.1f} ms |"
        )
    pick = [warm[0], warm[len(warm) // 2], samples[-1]]
    lines += [
        "",
        "Server (all processes): "
        + ", ".join(f"{t:.0f} s: {r:.0f} MB, {f} files" for t, r, f in pick)
        + f"; growth after warm-up {rss_growth:+.1f} MB (bound {args.max_rss_growth_mb:g}),"
        f" {fd_growth:+d} open files (bound {args.max_fd_growth}).",
        "",
        f"Reproduce: `python benchmarks/soak_api.py --seconds {args.seconds} --rate "
        f"{args.rate:g} --workers {args.workers}`",
        "",
    ]
    report = "\n".join(lines)
    print(report)
    if args.record:
        with RESULTS.open("a", encoding="utf-8") as fh:
            fh.write("\n" + report)
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
