"""segmint run vs the plain pandas + scikit-learn pipeline, on the same synthetic order lines.

    python benchmarks/bench_pipeline.py --customers 1000000

Generates (once, cached in benchmarks/out/) order lines for N customers with planted types,
then runs, each in its own child process so peak memory is that workload's alone:

* ``segmint``: the whole ``segmint run`` (ingest + cleaning with quarantine, ~15 features,
  k = 2..10 with sampled silhouette + CI, CH, DB, elbow, final multi-start model, profiles,
  every artifact and the HTML report);
* ``plain``: what a user would otherwise write: pandas read + drop bad rows + groupby RFM,
  log + scale, scikit-learn KMeans for k = 2..10 with ``silhouette_score(sample_size=10000)``,
  best-silhouette k, write a CSV of labels.

Prints wall time, peak RSS and the ratios, plus how well each recovers the planted types
(adjusted Rand index), and adds a row to the table of benchmarks/RESULTS.md with --record.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from _common import machine, peak_mb, record

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"


def child_segmint(data: Path, out: Path, config: Path | None = None) -> dict:
    import segmint.pipeline.segmentation  # noqa: F401 - imported before the clock, as the plain side's libraries are
    from segmint.cli import app

    extra = ["--config", str(config)] if config else []
    t0 = time.perf_counter()
    try:
        args = ["run", str(data), "--out", str(out), "--workspace", str(OUT / "workspace")]
        app([*args, *extra], standalone_mode=False)
    except SystemExit as exc:  # typer exits on errors
        if exc.code:
            raise
    return {"seconds": time.perf_counter() - t0, "peak_mb": peak_mb()}


def child_plain(data: Path, out: Path) -> dict:
    import numpy as np
    import pandas as pd
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score
    from sklearn.preprocessing import StandardScaler

    t0 = time.perf_counter()
    df = pd.read_parquet(data)
    df = df.dropna(subset=["customer_id"])
    df = df[(df["quantity"] > 0) & (df["unit_price"] > 0)]
    df = df[~df["order_id"].str.startswith("C")]
    df = df.drop_duplicates()
    df["amount"] = df["quantity"] * df["unit_price"]
    end = df["ts"].max() + pd.Timedelta(days=1)
    rfm = df.groupby("customer_id").agg(
        last=("ts", "max"), frequency=("order_id", "nunique"), monetary=("amount", "sum")
    )
    rfm["recency"] = (end - rfm.pop("last")).dt.total_seconds() / 86400
    X = StandardScaler().fit_transform(np.log1p(rfm[["recency", "frequency", "monetary"]]))
    best = (-2.0, None)
    for k in range(2, 11):
        km = KMeans(n_clusters=k, random_state=0).fit(X)
        s = silhouette_score(X, km.labels_, sample_size=10_000, random_state=0)
        if s > best[0]:
            best = (s, km.labels_)
    out.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"customer_id": rfm.index, "segment": best[1]}).to_csv(
        out / "customers.csv", index=False
    )
    return {"seconds": time.perf_counter() - t0, "peak_mb": peak_mb()}


def _run_child(kind: str, data: Path, out: Path, config: Path | None = None) -> dict:
    cmd = [sys.executable, __file__, "--child", kind, "--data", str(data), "--out", str(out)]
    if config:
        cmd += ["--config", str(config)]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        sys.exit(f"{kind} failed:\n{res.stdout}\n{res.stderr}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def _ari(truth_path: Path, labels_path: Path) -> float:
    import pandas as pd
    from sklearn.metrics import adjusted_rand_score

    truth = pd.read_parquet(truth_path)
    if labels_path.suffix == ".parquet":
        lab = pd.read_parquet(labels_path, columns=["customer_id", "segment"])
    else:
        lab = pd.read_csv(labels_path, dtype={"customer_id": str})
    m = truth.merge(lab, on="customer_id")
    return float(adjusted_rand_score(m["planted_type"], m["segment"]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--record", action="store_true", help="append to benchmarks/RESULTS.md")
    ap.add_argument("--child", choices=["segmint", "plain"])
    ap.add_argument("--data", type=Path)
    ap.add_argument("--out", type=Path)
    ap.add_argument(
        "--config",
        type=Path,
        help="settings file for the segmint run (e.g. benchmarks/lean.toml: no CLV, churn or "
        "drivers), noted in the recorded row",
    )
    args = ap.parse_args()
    if args.child:
        if args.child == "segmint":
            print(json.dumps(child_segmint(args.data, args.out, args.config)))
        else:
            print(json.dumps(child_plain(args.data, args.out)))
        return

    from segmint.data.synth import generate_orders

    OUT.mkdir(exist_ok=True)
    data = OUT / f"orders_{args.customers}_{args.seed}.parquet"
    truth = data.with_name(data.stem + "_types.parquet")
    if not (data.exists() and truth.exists()):
        t0 = time.perf_counter()
        info = generate_orders(args.customers, data, seed=args.seed)
        print(f"generated {info['lines']:,} lines in {time.perf_counter() - t0:.1f} s")
    import pyarrow.parquet as pq

    lines = pq.ParquetFile(data).metadata.num_rows
    seg = _run_child("segmint", data, OUT / "segmint_run", args.config)
    plain = _run_child("plain", data, OUT / "plain_run")
    seg["ari"] = _ari(truth, OUT / "segmint_run" / "customers.parquet")
    plain["ari"] = _ari(truth, OUT / "plain_run" / "customers.csv")
    manifest = json.loads((OUT / "segmint_run" / "manifest.json").read_text())
    t_ratio = seg["seconds"] / plain["seconds"]
    m_ratio = seg["peak_mb"] / plain["peak_mb"]
    print(f"{args.customers:,} customers, {lines:,} order lines")
    for name, r in (("segmint", seg), ("plain pandas+sklearn", plain)):
        print(
            f"  {name:22s} {r['seconds']:7.1f} s  peak {r['peak_mb']:7.0f} MB  ARI {r['ari']:.3f}"
        )
    print(f"  ratio segmint/plain: time {t_ratio:.2f}x, peak memory {m_ratio:.2f}x")
    print(f"  segmint stage timings: {manifest['timings']}  k={manifest['k']}")
    if args.record:

        def cell(r: dict) -> str:
            return f"{r['seconds']:.1f} s / {r['peak_mb']:.0f} MB / ARI {r['ari']:.2f}"

        row = (
            f"| {time.strftime('%Y-%m-%d')} | {args.customers:,} | {lines:,} | "
            f"{cell(seg)} (k={manifest['k']}) | {cell(plain)} | {t_ratio:.2f}x | "
            f"{m_ratio:.2f}x | {machine()}{f' ({args.config.name})' if args.config else ''} |"
        )
        record("bench_pipeline.py", row)


if __name__ == "__main__":
    main()
