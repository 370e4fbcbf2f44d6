"""The engine's floor: the least DuckDB time the issue's own ingest and features can take.

    python benchmarks/bench_floor.py --customers 1000000 [--record]

Hand-written DuckDB SQL, no Ibis, no pandas, no model, no report: only the line work the
spine issue requires of every run, each step in the cheapest form found in sessions 1-4:

1. type every line once (trimmed ids, timestamp, numbers, a 64-bit hash of the raw row)
   into a table: in memory uncompressed (``--store memory``, the fastest) or compressed in a
   file-backed database (``--store file``, what segmint does to meet the memory target);
2. exact duplicates: repeated hashes, then an exact comparison of the candidates only;
3. the accounting: rows by reason (one aggregate);
4. lines -> orders (6 aggregates), orders -> customers (RFM, tenure, inter-purchase gaps,
   returns, quarter and weekend shares), customer x category spend, distinct products;
5. the quarantine (rejected rows with their raw values) to Parquet; the customer table to
   Arrow, where any model would start.

It runs the plain pandas + scikit-learn pipeline of ``bench_pipeline.py`` in the same
invocation and prints the floor against a third of its time: when the floor alone is more,
no tuning of segmint's Python around DuckDB can reach the issue's time target on this
machine; only fewer rules, less output, or more cores can.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import machine, peak_mb, record

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
RAW = (
    "customer_id",
    "order_id",
    "ts",
    "product_id",
    "category",
    "channel",
    "country",
    "quantity",
    "unit_price",
)


def steps(src: str, store: str) -> list[tuple[str, str]]:
    """(label, SQL) of the floor, in order; ``src`` is a scan of the order lines."""
    h = "hash(customer_id)"
    for c in RAW[1:]:
        h = f"xor({h}, hash({c}))"
    target = "st.lines" if store == "file" else "lines"
    typed = f"""
        CREATE TABLE {target} AS SELECT file_row_number + 1 AS r,
          nullif(trim(customer_id), '') AS cid, nullif(trim(order_id), '') AS oid, ts,
          quantity::DOUBLE AS q, unit_price::DOUBLE AS p,
          nullif(trim(product_id), '') AS pid, nullif(trim(category), '') AS cat, {h} AS h
        FROM {src}"""
    flag = f"""
        CREATE VIEW flagged AS SELECT *,
          CASE WHEN cid IS NULL THEN 'missing_customer_id' WHEN oid IS NULL
          THEN 'missing_order_id' WHEN ts IS NULL THEN 'missing_date' WHEN q IS NULL
          THEN 'missing_quantity' WHEN p IS NULL THEN 'missing_unit_price' WHEN p <= 0
          THEN 'nonpositive_price' WHEN q = 0 THEN 'zero_quantity' END AS reason,
          (q < 0 OR starts_with(oid, 'C')) AS ret
        FROM {target}"""
    return [
        ("type lines", typed),
        ("(view)", flag),
        (
            "duplicates",
            f"""CREATE TEMP TABLE rep AS SELECT h FROM {target} GROUP BY h
                HAVING count(*) > 1""",
        ),
        (
            "duplicates",
            """CREATE TEMP TABLE dups AS SELECT r FROM (
                 SELECT r, row_number() OVER (PARTITION BY h, cid, oid, ts, pid, cat, q, p
                                              ORDER BY r) AS rn
                 FROM flagged SEMI JOIN rep USING (h) WHERE reason IS NULL) WHERE rn > 1""",
        ),
        (
            "accounting",
            """CREATE TEMP TABLE acct AS SELECT coalesce(reason,
                 CASE WHEN r IN (SELECT r FROM dups) THEN 'duplicate' END) AS reason, ret,
                 count(*) AS n, min(ts), max(ts) FROM flagged GROUP BY ALL""",
        ),
        (
            "kept view",
            """CREATE VIEW kept AS SELECT cid, oid, ts, pid, cat, ret, abs(q) AS q,
                 CASE WHEN ret THEN -abs(q) * p ELSE abs(q) * p END AS amount
               FROM flagged ANTI JOIN dups USING (r) WHERE reason IS NULL""",
        ),
        (
            "orders",
            """CREATE TEMP TABLE orders AS SELECT cid, oid,
                 min(ts) FILTER (NOT ret) AS ts, sum(amount) FILTER (NOT ret) AS value,
                 sum(-amount) FILTER (ret) AS returned, sum(q) FILTER (NOT ret) AS items,
                 count(*) FILTER (NOT ret) AS n_lines, count(*) FILTER (ret) AS n_ret
               FROM kept GROUP BY cid, oid""",
        ),
        (
            "customer x category",
            """CREATE TEMP TABLE cats AS SELECT cid, cat, sum(amount) AS spend
               FROM kept WHERE NOT ret GROUP BY cid, cat""",
        ),
        (
            "distinct products",
            """CREATE TEMP TABLE dp AS SELECT cid, count(DISTINCT pid) AS n
               FROM kept WHERE NOT ret GROUP BY cid""",
        ),
        (
            "customers",
            """CREATE TEMP TABLE customers AS
               WITH g AS (SELECT *, epoch(ts) - epoch(lag(ts) OVER (PARTITION BY cid
                                                                ORDER BY ts)) AS gap
                          FROM orders)
               SELECT cid, max(ts) AS last, min(ts) AS first,
                 count(*) FILTER (n_lines > 0) AS frequency, sum(value) AS spend,
                 avg(value) AS aov, avg(items) AS basket, avg(gap) AS gap_mean,
                 stddev_pop(gap) AS gap_std, sum(returned) AS returned,
                 sum(value) FILTER (quarter(ts) = 1) AS q1,
                 sum(value) FILTER (quarter(ts) = 2) AS q2,
                 sum(value) FILTER (quarter(ts) = 3) AS q3,
                 sum(value) FILTER (quarter(ts) = 4) AS q4,
                 sum(value) FILTER (isodow(ts) >= 6) AS weekend
               FROM g GROUP BY cid""",
        ),
        (
            "quarantine",
            f"""COPY (SELECT src.*, reason FROM {src} AS src JOIN (
                   SELECT r, coalesce(reason, 'duplicate') AS reason FROM flagged
                   WHERE reason IS NOT NULL OR r IN (SELECT r FROM dups)) AS bad
                 ON src.file_row_number + 1 = bad.r ORDER BY r)
               TO '{{quarantine}}' (FORMAT parquet)""",
        ),
        ("customer table to Arrow", "SELECT * FROM customers JOIN dp USING (cid)"),
    ]


def child_floor(data: Path, store: str) -> dict:
    import duckdb

    tmp = Path(tempfile.mkdtemp(prefix="segmint-floor-"))
    con = duckdb.connect()
    if store == "file":
        con.execute(f"ATTACH '{tmp / 'store.db'}' AS st")
    src = f"read_parquet('{data}', file_row_number = true)"
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    for label, sql in steps(src, store):
        s = time.perf_counter()
        sql = sql.replace("{quarantine}", str(tmp / "quarantine.parquet"))
        if label == "customer table to Arrow":
            con.sql(sql).to_arrow_table()
        else:
            con.execute(sql)
        if not label.startswith("("):
            timings[label] = round(timings.get(label, 0) + time.perf_counter() - s, 2)
    seconds = time.perf_counter() - t0
    con.close()
    shutil.rmtree(tmp, ignore_errors=True)
    return {"seconds": seconds, "peak_mb": peak_mb(), "timings": timings}


def _child(kind: str, data: Path, store: str) -> dict:
    if kind == "plain":
        cmd = [sys.executable, str(HERE / "bench_pipeline.py"), "--child", "plain"]
        cmd += ["--data", str(data), "--out", str(OUT / "plain_run")]
    else:
        cmd = [sys.executable, __file__, "--child", "--data", str(data), "--store", store]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        sys.exit(f"{kind} failed:\n{res.stdout}\n{res.stderr}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--record", action="store_true", help="append to benchmarks/RESULTS.md")
    ap.add_argument("--child", action="store_true")
    ap.add_argument("--data", type=Path)
    ap.add_argument("--store", choices=["memory", "file"], default="memory")
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child_floor(args.data, args.store)))
        return
    data = OUT / f"orders_{args.customers}_{args.seed}.parquet"
    if not data.exists():
        sys.exit(f"{data} is missing: run bench_pipeline.py --customers {args.customers} first")
    plain = _child("plain", data, "")
    floors = {s: _child("floor", data, s) for s in ("memory", "file")}
    third = plain["seconds"] / 3
    print(f"plain pandas + sklearn: {plain['seconds']:.1f} s; a third of it: {third:.1f} s")
    for store, f in floors.items():
        print(
            f"floor ({store} store): {f['seconds']:.1f} s, peak {f['peak_mb']:.0f} MB "
            f"= {f['seconds'] / plain['seconds']:.2f}x plain; {f['timings']}"
        )
    if args.record:
        m, f = floors["memory"], floors["file"]
        record(
            "bench_floor.py",
            f"| {time.strftime('%Y-%m-%d')} | {args.customers:,} | {plain['seconds']:.1f} s | "
            f"{third:.1f} s | {m['seconds']:.1f} s / {m['peak_mb']:.0f} MB "
            f"({m['seconds'] / plain['seconds']:.2f}x) | {f['seconds']:.1f} s / "
            f"{f['peak_mb']:.0f} MB ({f['seconds'] / plain['seconds']:.2f}x) | {machine()} |",
        )


if __name__ == "__main__":
    main()
