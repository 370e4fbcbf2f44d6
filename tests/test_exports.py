"""Exports are safe to open: no CSV segmint writes starts a text cell with a formula
character (ids, categories and column names come from the user's data), Parquet keeps the raw
values, and summary.md / report.html carry no raw HTML from column names."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from typer.testing import CliRunner

from segmint.cli import app
from segmint.store.csvsafe import (
    neutralise_frame,
    neutralise_table,
    neutralise_text,
    write_csv,
)

runner = CliRunner()
RISKY = ['=HYPERLINK("http://x")', "+1+1", "-2+3", "@SUM(A1)", "\tx", "\rx"]
PLAIN = ["-12", "+3.5", "c8", "-1e5", ".5"]
SCRIPT = "<script>alert(1)</script>"
CATEGORY = "=cmd|' /C calc'!A0"  # a column name that is itself a formula
DANGER = re.compile(r"^[=+\-@\t\r]")
NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
FAST = """\
clustering: {k: 3, stability_runs: 0, bootstrap: 10}
explain: {drivers: true, drivers_repeats: 2, drivers_sample: 200}
churn: {enabled: false}
clv: {enabled: false}
"""


def invoke(*args):
    result = runner.invoke(app, [str(a) for a in args])
    assert "Traceback" not in result.output, result.output
    return result


def unsafe_cells(path: Path) -> list[str]:
    """Every cell (header included) a spreadsheet would run as a formula."""
    with open(path, newline="", encoding="utf-8") as f:
        cells = [c for row in csv.reader(f) for c in row]
    assert cells, path
    return [c for c in cells if DANGER.match(c) and not NUMBER.match(c)]


def all_csvs(folder: Path) -> list[Path]:
    found = sorted(folder.rglob("*.csv"))
    assert found, folder
    return found


@pytest.mark.parametrize("value", RISKY)
def test_risky_text_gets_a_quote(value):
    assert neutralise_text(value) == "'" + value


@pytest.mark.parametrize("value", [*PLAIN, "", "a=b", "'=x", 12, -3.5, None])
def test_plain_values_are_left_alone(value):
    assert neutralise_text(value) is value


def test_pandas_and_arrow_agree():
    values = [*RISKY, *PLAIN, None]
    df = pd.DataFrame(
        {
            "=id": values,
            "n": np.arange(len(values)),
            "cat": pd.Categorical([v or "x" for v in values]),
            "obj": pd.Series([*values[:-2], 7, None], dtype=object),  # mixed types
        }
    )
    expect = [None if v is None else neutralise_text(v) for v in values]
    by_pandas = neutralise_frame(df)
    arrow = pa.Table.from_pandas(df.drop(columns="obj"), preserve_index=False)
    by_arrow = neutralise_table(arrow).to_pandas()
    assert list(by_pandas.columns) == ["'=id", "n", "cat", "obj"]
    assert list(by_arrow.columns) == ["'=id", "n", "cat"]
    for frame in (by_pandas, by_arrow):
        got = [None if pd.isna(v) else v for v in frame["'=id"]]
        assert got == expect
        assert frame["n"].tolist() == list(range(len(values)))
    assert by_pandas["obj"].iloc[-2] == 7 and by_pandas["cat"].iloc[0] == "'" + RISKY[0]
    assert df["=id"].iloc[0] == RISKY[0]  # the input is not modified


def test_carriage_return_cannot_start_a_new_row(tmp_path):
    # Python's csv writer leaves a lone CR unquoted; a reader would start a row at "=cmd"
    write_csv(pd.DataFrame({"id": ["a\r=cmd()", "b"], "n": [1, 2]}), tmp_path / "x.csv")
    with open(tmp_path / "x.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows == [["id", "n"], ["a\r=cmd()", "1"], ["b", "2"]]
    assert unsafe_cells(tmp_path / "x.csv") == []


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> Path:
    """A customer table whose ids, categories and column names are formulas or HTML; the
    customers with risky ids spend far more, so they are the anomalies."""
    d = tmp_path_factory.mktemp("exports")
    rng = np.random.default_rng(0)
    n = 120
    ids = [f"c{i}" for i in range(n)]
    ids[: len(RISKY)] = RISKY
    ids[len(RISKY) : len(RISKY) + 2] = PLAIN[:2]
    df = pd.DataFrame(
        {
            "customer_id": ids,
            "income": rng.normal(50, 10, n).round(1),
            "spend": rng.gamma(2, 100, n).round(1),
            SCRIPT: rng.normal(0, 1, n).round(3),
            CATEGORY: rng.choice(["=1+2", "@evil", "+x", "-y", "plain"], n),
        }
    )
    df.loc[: len(RISKY) - 1, "spend"] = 5000 + np.arange(len(RISKY)) * 500
    # quoted, so the tab and the carriage return stay inside their fields
    df.to_csv(d / "customers.csv", index=False, quoting=csv.QUOTE_NONNUMERIC)
    (d / "fast.yaml").write_text(FAST)
    r = invoke("run", d / "customers.csv", "--config", d / "fast.yaml", "--out", d / "run")
    assert r.exit_code == 0, r.output
    return d


def test_every_csv_of_the_run_is_neutralised(table):
    run = table / "run"
    names = {p.name for p in all_csvs(run)}
    assert {"customers.csv", "anomalies.csv", "segments.csv", "tests.csv"} <= names
    for path in all_csvs(run):
        assert unsafe_cells(path) == [], path
    customers = pd.read_csv(run / "customers.csv", dtype=str, keep_default_na=False)
    raw = pd.read_parquet(run / "customers.parquet")
    assert raw["customer_id"].iloc[: len(RISKY)].tolist() == RISKY  # Parquet keeps raw values
    assert customers["customer_id"].iloc[: len(RISKY)].tolist() == ["'" + v for v in RISKY]
    assert customers["customer_id"].iloc[len(RISKY) : len(RISKY) + 2].tolist() == PLAIN[:2]
    assert "'" + CATEGORY in customers.columns and CATEGORY in raw.columns
    assert {"'=1+2", "'@evil", "'+x", "'-y", "plain"} == set(customers["'" + CATEGORY])
    anomalies = pd.read_csv(run / "anomalies.csv", dtype=str, keep_default_na=False)
    assert {"'" + v for v in RISKY} & set(anomalies["customer_id"])  # they were written


def test_summary_and_report_carry_no_raw_html(table):
    run = table / "run"
    segments = pd.read_csv(run / "segments.csv")
    assert segments["segment_name"].str.contains(SCRIPT, regex=False).any()  # it is used
    summary = (run / "summary.md").read_text(encoding="utf-8")
    assert "<script" not in summary.lower() and "&lt;script&gt;alert(1)" in summary
    report = (run / "report.html").read_text(encoding="utf-8")
    assert SCRIPT not in report and "&lt;script&gt;alert(1)&lt;/script&gt;" in report


def test_predict_scores_csv_is_neutralised(table, tmp_path):
    out = tmp_path / "scores.csv"
    r = invoke("predict", "--run", table / "run", table / "customers.csv", "--out", out)
    assert r.exit_code == 0, r.output
    assert unsafe_cells(out) == []
    scores = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert set(scores["customer_id"]) >= {"'" + v for v in RISKY} | set(PLAIN[:2])


def test_effect_tables_are_neutralised(table, tmp_path):
    out = tmp_path / "effect"
    args = ["--by", CATEGORY, "--on", "spend,income", "--out", out]
    r = invoke("analyze", "effect", table / "customers.csv", *args)
    assert r.exit_code == 0, r.output
    for path in all_csvs(out):
        assert unsafe_cells(path) == [], path
    groups = pd.read_csv(out / "groups.csv", dtype=str, keep_default_na=False)
    assert {"'=1+2", "'@evil", "'+x", "'-y"} <= set(groups["group"])


def test_tracking_tables_are_neutralised(tmp_path):
    from segmint.config import Settings
    from segmint.data.synth import generate_orders
    from segmint.pipeline.tracking import track_segments
    from segmint.store.artifacts import save_tracking

    generate_orders(300, tmp_path / "orders.parquet", seed=5)
    settings = Settings.build(
        {
            "inputs": [str(tmp_path / "orders.parquet")],
            "clustering": {"k": 3, "stability_runs": 0, "bootstrap": 10},
            "explain": {"drivers": False},
            "churn": {"enabled": False},
            "clv": {"enabled": False},
        }
    )
    t, result = track_segments(settings, "quarter")
    t.sizes["segment_name"] = RISKY[0]  # names come from column names and categories
    out = save_tracking(t, tmp_path / "track", "quarter", settings, run=result)
    for path in all_csvs(out):
        assert unsafe_cells(path) == [], path
    assert (out / "run" / "manifest.json").is_file()
    sizes = pd.read_csv(out / "sizes.csv", dtype=str)
    assert set(sizes["segment_name"]) == {"'" + RISKY[0]}
