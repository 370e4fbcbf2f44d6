"""Every clustering method at 100k and 1M customers: time, peak memory, quality.

    python benchmarks/bench_methods.py --customers 1000000 [--sizes 100000,1000000] [--record]

Uses the synthetic order lines of ``bench_pipeline.py`` (generated once into
benchmarks/out/): features and preprocessing are computed once and the matrix is cached
(``benchmarks/out/X_<customers>.npy``). Then each method runs in its own child process on
the first N customers, so peak memory (VmHWM) is that method's alone: the segmenter's
``fit`` with automatic k (density methods: automatic eps), i.e. what ``segmint run`` does
in its cluster stage, without the stability refits. Quality: silhouette on a 10,000-customer
sample (noise customers counted as 0, as in ``segmint compare``), the number of segments,
the noise share, and the adjusted Rand index against the planted customer types.
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


def prepare(customers: int, seed: int) -> Path:
    """Features → preprocessed matrix (cached) and the planted types in the same order."""
    import numpy as np
    import pandas as pd

    x_path = OUT / f"X_{customers}_{seed}.npy"
    y_path = OUT / f"y_{customers}_{seed}.npy"
    if x_path.exists() and y_path.exists():
        return x_path
    from segmint import preprocess
    from segmint.config import Settings
    from segmint.data import readers
    from segmint.data.ingest import ingest
    from segmint.data.synth import generate_orders
    from segmint.features import build_features

    data = OUT / f"orders_{customers}_{seed}.parquet"
    if not data.exists():
        generate_orders(customers, data, seed=seed)
    ing = ingest([str(data)], Settings(), readers.connect())
    feats, _ = build_features(ing.transactions, None).drop_uninformative()
    pre = preprocess.make_preprocessor(feats.numeric, feats.categorical)
    X = preprocess.fit_transform(pre, feats.frame, feats.numeric, feats.categorical)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(X))  # "the first N customers" = a random N
    truth = pd.read_parquet(data.with_name(data.stem + "_types.parquet"))
    y = feats.frame[["customer_id"]].merge(truth, on="customer_id", how="left")["planted_type"]
    np.save(x_path, X[order])
    np.save(y_path, pd.factorize(y)[0][order])
    return x_path


def child(method: str, x_path: Path, n: int) -> dict:
    import numpy as np
    from sklearn.metrics import adjusted_rand_score

    from segmint.cluster import make_segmenter
    from segmint.config import Clustering
    from segmint.evaluate import metrics

    X = np.load(x_path, mmap_mode="r")[:n].copy()
    y = np.load(str(x_path).replace("X_", "y_"))[:n]
    t0 = time.perf_counter()
    seg = make_segmenter(Clustering(algorithm=method, stability_runs=0), 0).fit(X)
    seconds = time.perf_counter() - t0
    rng = np.random.default_rng(1)
    idx = rng.choice(n, min(n, 10_000), replace=False)
    lab = seg.labels_[idx]
    vals = np.zeros(len(idx))
    ok = lab >= 0
    if len(np.unique(lab[ok])) > 1:
        vals[ok] = metrics.silhouette_values(X[idx][ok], lab[ok])
    return {
        "method": method,
        "n": n,
        "k": int(seg.k_),
        "seconds": round(seconds, 2),
        "peak_mb": round(peak_mb()),
        "silhouette": round(float(vals.mean()), 3),
        "noise": round(float((seg.labels_ < 0).mean()), 4),
        "ari": round(float(adjusted_rand_score(y, seg.labels_)), 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--methods", default=None)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--record", action="store_true")
    ap.add_argument("--child", default=None)
    ap.add_argument("--x", type=Path)
    ap.add_argument("--n", type=int)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.x, args.n)))
        return
    from segmint.cluster import ALGORITHMS

    OUT.mkdir(exist_ok=True)
    x_path = prepare(args.customers, args.seed)
    methods = args.methods.split(",") if args.methods else list(ALGORITHMS)
    rows = []
    for n in [int(s) for s in args.sizes.split(",")]:
        for m in methods:
            cmd = [sys.executable, __file__, "--child", m, "--x", str(x_path), "--n", str(n)]
            res = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if res.returncode:
                last = (res.stderr or res.stdout).strip().splitlines()[-1]
                row = {"method": m, "n": n, "error": last[:120]}
            else:
                row = json.loads(res.stdout.strip().splitlines()[-1])
            print(json.dumps(row), flush=True)
            rows.append(row)
    if args.record:
        lines = []
        for r in rows:
            if "error" in r:
                lines.append(f"| {dt.date.today()} | {r['method']} | {r['n']:,} | failed: "
                             f"{r['error']} | | | | | |")  # fmt: skip
                continue
            lines.append(
                f"| {dt.date.today()} | {r['method']} | {r['n']:,} | {r['seconds']} s | "
                f"{r['peak_mb']} MB | {r['k']} | {r['silhouette']} | {r['noise']:.1%} | "
                f"{r['ari']} |"
            )
        record("bench_methods.py", "\n".join([*lines, f"<!-- {machine()} -->"]))


if __name__ == "__main__":
    main()
