"""Latency of real-time scoring over HTTP (``POST /v1/runs/{RUN}/score``) against the same
model called in-process.

    python benchmarks/bench_api.py [--customers 20000] [--workers 2] [--record]

1. Makes (once, cached in benchmarks/out/api-<customers>/) a workspace with one run on
   synthetic order lines (``segmint generate``'s data; its own signing key).
2. Starts ``segmint serve`` alone on 127.0.0.1 on a free port (``--uvicorn`` starts uvicorn
   on the same app factory without the access log instead), with ``OMP_NUM_THREADS=1``.
3. Measures with ``hey`` (Debian package ``hey``), a bounded number of requests each, after
   a warm-up: one customer from features and one from order lines at concurrency 10, a
   batch of 1,000 customers from features (and, for reference, 1,000 customers from their
   order lines) one request at a time. Latencies come from hey's per-request CSV (p50/p99
   computed here); the server's CPU time per request comes from /proc (it does not depend
   on what else the machine is doing, which latency and throughput do).
4. Times the same work in this process with the same model: parsing and validating the
   body (``ScoreRequest``), scoring (``pipeline.scoring``), serialising the answer; the
   rest of the server's time is HTTP, routing, authentication, the run lookup in the
   registry and the thread hand-off.

Every loop is bounded in count and time; only 127.0.0.1 is targeted. ``--record`` appends
the result to benchmarks/RESULTS.md (the section "Real-time scoring over HTTP").
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import gc
import io
import json
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from _common import RESULTS, machine

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
HOST = "127.0.0.1"
RUN_NAME = "bench"
TIMEOUT_S = 300  # longest any one hey invocation may run


# -- the workspace --------------------------------------------------------------------------
def workspace(customers: int, seed: int = 0) -> Path:
    """A workspace with one run named ``bench`` on ``customers`` synthetic customers."""
    root = OUT / f"api-{customers}"
    ws = root / "ws"
    os.environ["SEGMINT_KEY_FILE"] = str(root / "signing.key")
    os.environ["SEGMINT_WORKSPACE"] = str(ws)
    os.environ.pop("SEGMINT_DATABASE_URL", None)
    if (root / "ready").is_file():
        return root
    import segmint
    from segmint.data.synth import generate_orders

    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    t0 = time.perf_counter()
    generate_orders(customers, root / "orders.parquet", seed=seed)
    result = segmint.segment(str(root / "orders.parquet"), seed=seed)
    segmint.save(result, workspace=ws, name=RUN_NAME)
    (root / "ready").write_text("ok")
    print(f"workspace with a {customers:,}-customer run made in {time.perf_counter() - t0:.0f} s")
    return root


def bodies(root: Path, model: Any) -> dict[str, dict[str, Any]]:
    """The request bodies: one customer (features, orders), 1,000 customers (both)."""
    import pandas as pd

    from segmint.pipeline.scoring import feature_columns

    run = next((root / "ws" / "runs").iterdir())
    numeric, categorical = feature_columns(model)
    customers = pd.read_parquet(run / "customers.parquet")
    feats = customers[["customer_id", *numeric, *categorical]]
    lines = pd.read_parquet(root / "orders.parquet")
    lines["ts"] = lines["ts"].dt.strftime("%Y-%m-%dT%H:%M:%S")
    per = lines.groupby("customer_id").size()
    typical = per.index[(per - per.median()).abs().argmin()]  # a customer of median lines
    thousand = list(per.index[:1000])
    end = str((pd.Timestamp(lines["ts"].max()) + pd.Timedelta(days=1)).date())

    def recs(frame: pd.DataFrame) -> list[dict[str, Any]]:
        return json.loads(frame.to_json(orient="records"))

    one = feats[feats["customer_id"] == typical]
    return {
        "features_1": {"customers": recs(one)},
        "orders_1": {
            "orders": recs(lines[lines["customer_id"] == typical]),
            "observation_end": end,
        },
        "features_1000": {"customers": recs(feats[feats["customer_id"].isin(thousand)])},
        "orders_1000": {
            "orders": recs(lines[lines["customer_id"].isin(thousand)]),
            "observation_end": end,
        },
    }


# -- the server -----------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def server(
    root: Path, workers: int, key: str, uvicorn: bool, reuseport: bool = False
) -> Iterator[tuple[str, list[int]]]:
    """The API on a free loopback port; yields its URL and the server processes' pids (the
    first is the one to watch). ``reuseport``: instead of ``segmint serve --workers N``
    (uvicorn's workers share one listening socket), N single-process uvicorn servers each
    listen on their own ``SO_REUSEPORT`` socket bound to the same port, so the kernel
    spreads new connections over them."""
    port = free_port()
    env = {**os.environ, "SEGMINT_API_KEY": key, "OMP_NUM_THREADS": "1"}
    bin_dir = Path(sys.executable).parent
    log = (root / "server.log").open("w")
    procs: list[subprocess.Popen] = []
    url = f"http://{HOST}:{port}"
    try:
        if reuseport:
            # each process binds its own SO_REUSEPORT socket (a socket handed over with
            # uvicorn --fd is taken for a Unix socket: no TCP_NODELAY, 40 ms delayed ACKs)
            code = (
                "import socket, sys, uvicorn\n"
                "s = socket.socket()\n"
                "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)\n"
                "s.bind((sys.argv[1], int(sys.argv[2])))\n"
                "config = uvicorn.Config('segmint.api.app:from_env', factory=True,\n"
                "                        log_level='warning', access_log=False)\n"
                "uvicorn.Server(config).run(sockets=[s])\n"
            )
            for _ in range(workers):
                cmd = [sys.executable, "-c", code, HOST, str(port)]
                procs.append(subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT))
        else:
            if uvicorn:
                cmd = [str(bin_dir / "uvicorn"), "segmint.api.app:from_env", "--factory",
                       "--host", HOST, "--port", str(port), "--workers", str(workers),
                       "--no-access-log", "--log-level", "warning"]  # fmt: skip
            else:
                cmd = [str(bin_dir / "segmint"), "serve", "--workspace", str(root / "ws"),
                       "--host", HOST, "--port", str(port), "--workers", str(workers)]  # fmt: skip
            procs.append(subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT))
        deadline = time.monotonic() + 60
        while True:
            if any(p.poll() is not None for p in procs):
                raise RuntimeError(f"the server exited: see {root / 'server.log'}")
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"{url}/v1/health", timeout=2) as r,
            ):
                if r.status == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("the server did not answer /v1/health within 60 s")
            time.sleep(0.2)
        pids = [p.pid for p in procs]
        yield url, pids if reuseport else server_pids(pids[0])
    finally:
        for p in procs:
            p.send_signal(signal.SIGINT)
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=10)
        log.close()


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time the processes have used (clock ticks from /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


def server_pids(pid: int) -> list[int]:
    """The server process and its worker children (uvicorn --workers)."""
    out = [pid]
    with contextlib.suppress(OSError):
        for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
            out.append(int(child))
    return out


# -- load with hey ----------------------------------------------------------------------------
def hey(url: str, key: str, body: Path, n: int, c: int, pids: list[int]) -> dict[str, float]:
    """``n`` requests at concurrency ``c``: p50, p99 (ms), requests/s, non-200 count, and
    the server's CPU time per request (ms; robust to other load on the machine)."""
    cmd = ["hey", "-n", str(n), "-c", str(c), "-m", "POST", "-T", "application/json",
           "-H", f"Authorization: Bearer {key}", "-D", str(body), "-o", "csv", url]  # fmt: skip
    cpu0 = [cpu_seconds([p]) for p in pids]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S, check=True)
    used = [cpu_seconds([p]) - c for p, c in zip(pids, cpu0, strict=True)]
    cpu = sum(used)
    busy = [u for u in used if u > 0.02 * cpu]  # the supervisor and tracker do nothing
    split = "/".join(f"{100 * u / cpu:.0f}" for u in busy) if cpu > 0 else "-"
    wall = time.perf_counter() - t0
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    lat = sorted(float(r["response-time"]) * 1000 for r in rows)
    errors = sum(1 for r in rows if r["status-code"] != "200")
    offsets = [float(r["offset"]) + float(r["response-time"]) for r in rows]
    span = max(offsets) if offsets else wall
    return {
        "n": len(lat),
        "p50": quantile(lat, 0.50),
        "p99": quantile(lat, 0.99),
        "max": lat[-1],
        "rps": len(lat) / span,
        "errors": errors,
        "cpu_ms": cpu * 1000 / max(1, len(lat)),
        "split": split,
    }


def quantile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    i = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[i]


# -- in process ------------------------------------------------------------------------------
def in_process(model: Any, body: dict[str, Any], n: int, budget_s: float = 20.0) -> dict:
    """Median and p99 (ms) of parse + validate, score, serialise, over at most ``n`` calls
    and ``budget_s`` seconds."""
    import pydantic_core

    from segmint.api.routes.scoring import ScoreCustomers, ScoreRequest, _answer, _customer
    from segmint.pipeline.scoring import score_customers, score_orders

    raw = json.dumps(body).encode()
    parse, work, dump = [], [], []
    for _ in range(3):  # warm-up, as the server's warm-up requests
        req = ScoreRequest.model_validate_json(raw).root
        if isinstance(req, ScoreCustomers):
            score_customers(model, [_customer(c) for c in req.customers])
    stop = time.perf_counter() + budget_s
    for _ in range(n):
        t0 = time.perf_counter()
        req = ScoreRequest.model_validate_json(raw).root
        t1 = time.perf_counter()
        if isinstance(req, ScoreCustomers):
            scored = score_customers(model, [_customer(c) for c in req.customers])
        else:
            recs = [line.model_dump(exclude_unset=True) for line in req.orders]
            scored = score_orders(model, recs, observation_end=req.observation_end)
        t2 = time.perf_counter()
        pydantic_core.to_json(_answer("run", scored))
        t3 = time.perf_counter()
        parse.append((t1 - t0) * 1000)
        work.append((t2 - t1) * 1000)
        dump.append((t3 - t2) * 1000)
        if t3 > stop:
            break
    total = sorted(p + w + d for p, w, d in zip(parse, work, dump, strict=True))
    return {
        "calls": len(total),
        "parse": statistics.median(parse),
        "score": statistics.median(work),
        "dump": statistics.median(dump),
        "p50": quantile(total, 0.5),
        "p99": quantile(total, 0.99),
    }


# -- main ------------------------------------------------------------------------------------
CASES = (
    # name, requests, concurrency (None: --concurrency), target p99 (ms), target req/s
    ("features_1", 4000, None, 25.0, 400.0),
    ("orders_1", 3000, None, 50.0, None),
    ("features_1000", 50, 1, 250.0, None),
    ("orders_1000", 20, 1, None, None),
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--customers", type=int, default=20_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--concurrency", type=int, default=10)
    ap.add_argument("--scale", type=float, default=1.0, help="Multiply the request counts.")
    ap.add_argument("--uvicorn", action="store_true", help="uvicorn without the access log.")
    ap.add_argument(
        "--reuseport",
        action="store_true",
        help="N uvicorn processes on their own SO_REUSEPORT sockets (see server()).",
    )
    ap.add_argument("--record", action="store_true", help="Append the result to RESULTS.md.")
    args = ap.parse_args()
    if shutil.which("hey") is None:
        sys.exit("hey is not installed (apt-get install -y hey)")

    root = workspace(args.customers)
    from segmint.pipeline.jobs import find_run_folder
    from segmint.store.loading import load_run_model

    model = load_run_model(find_run_folder(RUN_NAME, None))
    made = bodies(root, model)
    gc.collect()
    gc.freeze()  # as the server's model cache does after its first load (ModelCache)
    files = {}
    for name, body in made.items():
        files[name] = root / f"{name}.json"
        files[name].write_text(json.dumps(body))

    key = secrets.token_urlsafe(24)
    load_before = os.getloadavg()
    http: dict[str, dict] = {}
    with server(root, args.workers, key, args.uvicorn, args.reuseport) as (url, pids):
        score_url = f"{url}/v1/runs/{RUN_NAME}/score"
        for name in ("features_1", "orders_1"):  # warm-up: every worker loads the model
            hey(score_url, key, files[name], 200, args.concurrency, pids)
        for name in ("features_1000", "orders_1000"):
            hey(score_url, key, files[name], 4, 2, pids)
        for name, n, conc, _, _ in CASES:
            count = max(10, int(n * args.scale))
            http[name] = hey(score_url, key, files[name], count, conc or args.concurrency, pids)
            http[name]["c"] = conc or args.concurrency
            print(f"HTTP {name}: {fmt(http[name])}", flush=True)
    load_after = os.getloadavg()
    local = {name: in_process(model, made[name], 2000 if "_1" == name[-2:] else 50)
             for name, *_ in CASES}  # fmt: skip
    for name, r in local.items():
        print(f"in-process {name}: {r}")
    report = render(args, http, local, load_before, load_after, made)
    print(report)
    if args.record:
        with RESULTS.open("a", encoding="utf-8") as fh:
            fh.write("\n" + report)


def fmt(r: dict) -> str:
    return (
        f"n={r['n']} p50={r['p50']:.1f} ms p99={r['p99']:.1f} ms max={r['max']:.1f} ms "
        f"{r['rps']:.0f} req/s errors={r['errors']} server CPU {r['cpu_ms']:.2f} ms/request "
        f"(split over processes, %: {r['split']})"
    )


def render(args, http, local, before, after, made) -> str:
    lines_1 = len(made["orders_1"]["orders"])
    lines_1000 = len(made["orders_1000"]["orders"])
    server = f"segmint serve --workers {args.workers}"
    if args.uvicorn:
        server = f"uvicorn --workers {args.workers} (no access log)"
    if args.reuseport:
        server = f"{args.workers} uvicorn processes on SO_REUSEPORT sockets"
    out = [
        f"### {time.strftime('%Y-%m-%d %H:%M')}: {server}, {args.customers:,}-customer run",
        "",
        f"{machine()}; load average before {before[0]:.2f}, after {after[0]:.2f} (1 min). "
        f"Order-line bodies: one customer of median history ({lines_1} lines); 1,000 "
        f"customers ({lines_1000:,} lines).",
        "",
        "| case | hey -c | requests | p50 | p99 | req/s | errors | target | server CPU/request "
        "(split %) | in-process p50 / p99 | parse | score | serialise | server CPU / "
        "in-process p50 |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, _, _, p99, rps in CASES:
        h, loc = http[name], local[name]
        target = " ".join(
            t for t in (f"p99 ≤ {p99:g} ms" if p99 else "", f"≥ {rps:g}/s" if rps else "") if t
        )
        met = ""
        if p99 or rps:
            ok = (not p99 or h["p99"] <= p99) and (not rps or h["rps"] >= rps)
            met = " ✔" if ok else " ✘"
        out.append(
            f"| {name} | {h['c']} | {h['n']} | {h['p50']:.1f} ms | {h['p99']:.1f} ms | "
            f"{h['rps']:.0f} | {h['errors']} | {target or '—'}{met} | {h['cpu_ms']:.2f} ms "
            f"({h['split']}) | "
            f"{loc['p50']:.2f} / {loc['p99']:.2f} ms | {loc['parse']:.2f} ms | "
            f"{loc['score']:.2f} ms | {loc['dump']:.2f} ms | {h['cpu_ms'] / loc['p50']:.1f}× |"
        )
    scale = f" --scale {args.scale:g}" if args.scale != 1 else ""
    flags = f" --customers {args.customers} --workers {args.workers}{scale}"
    flags += " --uvicorn" if args.uvicorn else ""
    flags += " --reuseport" if args.reuseport else ""
    out += ["", f"Reproduce: `python benchmarks/bench_api.py{flags}`", ""]
    return "\n".join(out)


if __name__ == "__main__":
    main()
