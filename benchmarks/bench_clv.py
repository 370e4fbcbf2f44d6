"""CLV at scale: segmint's BG/NBD + Gamma-Gamma against lifetimes on the same summary.

    python benchmarks/bench_clv.py --customers 1000000 [--lifetimes-python /tmp/ltvenv/bin/python]

Uses the synthetic order lines of ``bench_pipeline.py`` (generated once into
benchmarks/out/). Each side runs in its own child process (peak memory = VmHWM):

* ``summary``: segmint's Ibis/DuckDB frequency/recency/T/monetary summary from the order
  lines (repeat purchases counted per day, t_x and T in weeks, as in the BG/NBD literature),
  written to Parquet so both fitters see identical input;
* ``segmint``: BG/NBD fit (with standard errors), Gamma-Gamma fit, and scoring of every
  customer: P(alive), expected purchases over 52 weeks, expected spend, 12-month CLV;
* ``lifetimes``: ``BetaGeoFitter`` + ``GammaGammaFitter`` and the same four outputs, run by
  the interpreter given in ``--lifetimes-python`` (lifetimes is unmaintained and not a
  dependency; install it into a throwaway venv: ``python -m venv /tmp/ltvenv &&
  /tmp/ltvenv/bin/pip install lifetimes pyarrow``).

Prints time, peak memory, the fitted parameters of both and the largest difference between
their P(alive) and CLV; ``--record`` adds a row to the CLV table of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import time
from pathlib import Path

from _common import machine, peak_mb, record

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"


def child_summary(data: Path, out: Path) -> dict:
    from segmint.config import Settings
    from segmint.data import readers
    from segmint.data.ingest import ingest
    from segmint.features.behaviour import default_observation_end
    from segmint.features.clv_summary import clv_summary

    t0 = time.perf_counter()
    con = readers.connect()
    ing = ingest([str(data)], Settings(), con)
    end = default_observation_end(ing.transactions.span()[1])
    t1 = time.perf_counter()
    s = clv_summary(ing.transactions.lines, end, unit_days=7)
    t2 = time.perf_counter()
    s.to_parquet(out, index=False)
    return {
        "ingest_seconds": t1 - t0,
        "summary_seconds": t2 - t1,
        "customers": len(s),
        "peak_mb": peak_mb(),
    }


def child_segmint(summary: Path) -> dict:
    import numpy as np
    import pandas as pd

    from segmint.features.clv import BetaGeo, GammaGamma, lifetime_value

    s = pd.read_parquet(summary)
    x, t_x, T, m = (s[c].to_numpy(dtype=float) for c in ("x", "t_x", "T", "m"))
    t0 = time.perf_counter()
    bg = BetaGeo().fit(x, t_x, T)
    gg = GammaGamma().fit(x, m)
    t1 = time.perf_counter()
    p_alive = bg.p_alive(x, t_x, T)
    bg.expected_purchases(52.0, x, t_x, T)
    gg.expected_spend(x, m)
    clv = lifetime_value(bg, gg, x, t_x, T, m, months=12, unit_days=7, annual_discount=0.0)
    t2 = time.perf_counter()
    np.save(OUT / "clv_segmint.npy", np.column_stack([p_alive, clv]))
    return {
        "fit_seconds": t1 - t0,
        "score_seconds": t2 - t1,
        "params": {**bg.fit_.params, **gg.fit_.params},
        "peak_mb": peak_mb(),
    }


LIFETIMES_CHILD = r"""
import json, sys, time
import numpy as np, pandas as pd
from lifetimes import BetaGeoFitter, GammaGammaFitter
s = pd.read_parquet(sys.argv[1])
t0 = time.perf_counter()
bg = BetaGeoFitter().fit(s.x, s.t_x, s["T"])
rep = s[(s.x > 0) & (s.m > 0)]
gg = GammaGammaFitter().fit(rep.x, rep.m)
t1 = time.perf_counter()
p_alive = bg.conditional_probability_alive(s.x, s.t_x, s["T"])
bg.conditional_expected_number_of_purchases_up_to_time(52, s.x, s.t_x, s["T"])
m = s.m.fillna(0.0)
gg.conditional_expected_average_profit(s.x, m)
clv = gg.customer_lifetime_value(bg, s.x, s.t_x, s["T"], m, time=12, freq="W", discount_rate=0.0)
t2 = time.perf_counter()
np.save(sys.argv[2], np.column_stack([np.asarray(p_alive), np.asarray(clv)]))
peak = [int(l.split()[1]) / 1024 for l in open("/proc/self/status") if l.startswith("VmHWM")][0]
print(json.dumps({"fit_seconds": t1 - t0, "score_seconds": t2 - t1, "peak_mb": peak,
                  "params": {**bg.params_.to_dict(), **gg.params_.to_dict()}}))
"""


def _child(cmd: list[str]) -> dict:
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        return {"error": (res.stderr or res.stdout).strip().splitlines()[-1]}
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--lifetimes-python", default=None)
    ap.add_argument("--record", action="store_true")
    ap.add_argument("--child", choices=["summary", "segmint"])
    ap.add_argument("--data", type=Path)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    if args.child == "summary":
        print(json.dumps(child_summary(args.data, args.out)))
        return
    if args.child == "segmint":
        print(json.dumps(child_segmint(args.data)))
        return

    from segmint.data.synth import generate_orders

    OUT.mkdir(exist_ok=True)
    data = OUT / f"orders_{args.customers}_{args.seed}.parquet"
    if not data.exists():
        generate_orders(args.customers, data, seed=args.seed)
    summary = OUT / f"clv_summary_{args.customers}_{args.seed}.parquet"
    me = [sys.executable, __file__]
    summ = _child([*me, "--child", "summary", "--data", str(data), "--out", str(summary)])
    seg = _child([*me, "--child", "segmint", "--data", str(summary)])
    life = {"error": "not run (no --lifetimes-python)"}
    if args.lifetimes_python:
        life = _child(
            [args.lifetimes_python, "-c", LIFETIMES_CHILD, str(summary), str(OUT / "clv_lt.npy")]
        )
    print(json.dumps({"summary": summ, "segmint": seg, "lifetimes": life}, indent=1))
    diff = ""
    if "error" not in life and "error" not in seg:
        import numpy as np

        a = np.load(OUT / "clv_segmint.npy")
        b = np.load(OUT / "clv_lt.npy")
        d_alive = float(np.max(np.abs(a[:, 0] - b[:, 0])))
        d_clv = float(np.median(np.abs(a[:, 1] - b[:, 1]) / np.maximum(np.abs(b[:, 1]), 1e-9)))
        diff = f"max ΔP(alive) {d_alive:.1e}, median relative ΔCLV {d_clv:.1e}"
        print(diff)
    if args.record:

        def cell(r: dict) -> str:
            if "error" in r:
                return f"failed: {r['error'][:80]}"
            return (
                f"fit {r['fit_seconds']:.1f} s + score {r['score_seconds']:.1f} s / "
                f"{r['peak_mb']:.0f} MB"
            )

        row = (
            f"| {dt.date.today()} | {summ['customers']:,} | "
            f"summary {summ['summary_seconds']:.1f} s "
            f"| {cell(seg)} | {cell(life)} | {diff or '–'} | {machine()} |"
        )
        record("bench_clv.py", row)


if __name__ == "__main__":
    main()
