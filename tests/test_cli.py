"""The command line: the issue's commands work, and every kind of bad input gives one clear
paragraph (file, column, row, expectation), exit code 2 and no traceback."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from segmint.cli import app

from .conftest import dataset

runner = CliRunner()


def invoke(*args):
    result = runner.invoke(app, [str(a) for a in args])
    assert "Traceback" not in result.output, result.output
    return result


def test_cli_starts_without_the_models():
    # `segmint --help` and `segmint generate` must not wait ~2 s for scikit-learn and SciPy.
    code = (
        "import sys, segmint.cli; "
        "print(sorted(m for m in ('segmint.pipeline.segmentation', 'sklearn', 'scipy')"
        " if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    r = invoke("generate", "--customers", 3000, "--seed", 1, "--out", d / "orders.parquet")
    assert r.exit_code == 0, r.output
    return d


def test_generate_run_predict(generated):
    d = generated
    r = invoke("run", d / "orders.parquet", "--out", d / "run")
    assert r.exit_code == 0, r.output
    assert "report:" in r.output
    manifest = json.loads((d / "run" / "manifest.json").read_text())
    customers = pd.read_parquet(d / "run" / "customers.parquet")
    assert manifest["customers"] == len(customers) == 3000
    for out in ("scored.csv", "scored.parquet"):
        r = invoke("predict", "--run", d / "run", d / "orders.parquet", "--out", d / out)
        assert r.exit_code == 0, r.output
        scored = pd.read_csv(d / out) if out.endswith("csv") else pd.read_parquet(d / out)
        # the four columns, then the churn risk from the run's churn model
        assert list(scored.columns) == [
            "customer_id",
            "segment",
            "segment_name",
            "confidence",
            "churn_probability",
        ]
        both = scored.merge(
            customers[["customer_id", "segment", "churn_probability"]], on="customer_id"
        )
        assert len(both) == 3000 and (both.segment_x == both.segment_y).all()
        np.testing.assert_allclose(both.churn_probability_x, both.churn_probability_y)
        assert scored.confidence.between(0, 1).all()
        q = pd.read_parquet(d / "scored.quarantine.parquet")  # beside the scores
        assert len(q) == sum(manifest["rows"]["quarantined"].values())
        assert set(q["reason"]) <= {"duplicate"}


def test_predict_needs_the_features_of_the_run(generated):
    d = generated
    if not (d / "run" / "model.skops").exists():
        assert invoke("run", d / "orders.parquet", "--out", d / "run").exit_code == 0
    lines = pd.read_parquet(d / "orders.parquet").drop(columns=["product_id"])
    lines.to_parquet(d / "no_products.parquet")
    r = invoke("predict", "--run", d / "run", d / "no_products.parquet", "--out", d / "x.csv")
    assert r.exit_code == 2
    assert "'distinct_products'" in r.output and "no_products.parquet" in r.output


def test_mall_with_features_flag(tmp_path):
    r = invoke(
        "run",
        dataset("mall_customers.csv"),
        "--features",
        "Annual Income (k$),Spending Score (1-100)",
        "--out",
        tmp_path / "mall",
    )
    assert r.exit_code == 0, r.output
    m = json.loads((tmp_path / "mall" / "manifest.json").read_text())
    assert m["k"] == 5


def test_config_file_reproduces_run(tmp_path):
    cfg = tmp_path / "seg.toml"
    cfg.write_text(
        f'inputs = ["{dataset("mall_customers.csv")}"]\n'
        'features = ["Annual Income (k$)", "Spending Score (1-100)"]\n'
        "seed = 2\n[clustering]\nk = 4\n"
    )
    r = invoke("run", "--config", cfg, "--out", tmp_path / "a")
    assert r.exit_code == 0, r.output
    again = invoke("run", "--config", tmp_path / "a" / "config.yaml", "--out", tmp_path / "b")
    assert again.exit_code == 0, again.output
    a = json.loads((tmp_path / "a" / "manifest.json").read_text())
    b = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert a["k"] == b["k"] == 4 and a["config_hash"] == b["config_hash"]
    ca = pd.read_parquet(tmp_path / "a" / "customers.parquet")
    cb = pd.read_parquet(tmp_path / "b" / "customers.parquet")
    assert (ca.segment == cb.segment).all()


ORDERS_HEADER = "CustomerID,InvoiceNo,InvoiceDate,Quantity,UnitPrice\n"


def _orders(tmp_path, body, name="orders.csv", header=ORDERS_HEADER):
    p = tmp_path / name
    p.write_text(header + body)
    return p


# the stable code each bad input is reported with (``error [<code>]: ...``)
BAD_INPUT_CODES = {
    "missing_file": "input.unreadable",
    "empty_file": "input.unreadable",
    "missing_column": "input.missing_column",
    "text_in_number": "input.invalid",
    "unknown_date": "input.invalid",
    "wrong_delimiter": "input.unreadable",
    "binary": "input.unreadable",
    "ragged": "input.unreadable",
    "unclosed_quote": "input.unreadable",
    "bad_feature": "input.unknown_column",
    "bad_k": "config.invalid",
    "bad_memory_limit": "config.invalid",
    "mixed_decimals": "input.invalid",
    "ambiguous_dates": "input.ambiguous_dates",
    "repeated_header": "input.invalid",
    "unknown_map": "input.unknown_column",
    "observation_end_word": "config.invalid",
    "observation_end_early": "input.invalid",
    "nothing_left": "input.invalid",
    "truncated_gzip": "input.unreadable",
}


@pytest.mark.parametrize(
    "case, expect",
    [
        ("missing_file", ["does not exist", "nope.csv"]),
        ("empty_file", ["empty", "empty.csv"]),
        ("missing_column", ["InvoiceDate", "ts", "no_date.csv"]),
        ("text_in_number", ["'UnitPrice'", "Row: 1", "'abc'", "a number"]),
        (
            "unknown_date",
            ["date format is not recognised", "'InvoiceDate'", "Row: 1", "'next tuesday'"],
        ),
        ("wrong_delimiter", ["tab", "delimiter"]),
        ("binary", ["binary", "garbage.csv"]),
        ("ragged", ["line 3 has 7 field(s)", "Row: 2", "EXTRA"]),
        ("unclosed_quote", ["line 3", "unclosed quote", "Row: 2"]),
        ("bad_feature", ["'no_such_feature'", "recency_days"]),
        ("bad_k", ["clustering.k", "greater than or equal to 2", "(command-line option --k)"]),
        ("bad_memory_limit", ["memory_limit", "'lots'"]),
        ("mixed_decimals", ["mixes number conventions", "'UnitPrice'", "row 1: '2,55'"]),
        (
            "ambiguous_dates",
            [
                "read in 2 ways",
                "'InvoiceDate'",
                "date_format",
                "(command-line option --date-format)",
            ],
        ),
        ("repeated_header", ["repeats a column name", "'UnitPrice'"]),
        (
            "unknown_map",
            ["customer_id='NoSuchCol'", "no input has", "option --map customer_id=COLUMN"],
        ),
        ("observation_end_word", ["observation_end", "ISO date", "'yesterday'"]),
        ("observation_end_early", ["before the last order line", "'InvoiceDate'"]),
        ("nothing_left", ["no purchases are left after cleaning", "future_date: 2"]),
        ("truncated_gzip", ["truncated or corrupt", "cut.csv.gz"]),
    ],
)
def test_bad_input_is_one_clear_error(tmp_path, case, expect):
    good = "c1,1,2024-01-01 10:00,1,2.5\nc2,2,2024-01-02 10:00,2,3.5\n"
    args: list = []
    if case == "missing_file":
        args = [tmp_path / "nope.csv"]
    elif case == "empty_file":
        (tmp_path / "empty.csv").write_text("")
        args = [tmp_path / "empty.csv"]
    elif case == "missing_column":
        p = tmp_path / "no_date.csv"
        p.write_text("CustomerID,InvoiceNo,Amount\nc1,1,3\n")
        args = [p]
    elif case == "text_in_number":
        args = [_orders(tmp_path, "c1,1,2024-01-01,1,abc\nc2,2,2024-01-01,1,xyz\n")]
    elif case == "unknown_date":
        args = [_orders(tmp_path, "c1,1,next tuesday,1,2\nc2,2,last friday,1,3\n")]
    elif case == "wrong_delimiter":
        p = tmp_path / "tabs.csv"
        p.write_text(ORDERS_HEADER.replace(",", "\t") + good.replace(",", "\t"))
        args = [p, "--delimiter", ","]
    elif case == "binary":
        p = tmp_path / "garbage.csv"
        p.write_bytes(bytes(range(256)) * 40)
        args = [p]
    elif case == "ragged":
        args = [_orders(tmp_path, "c1,1,2024-01-01,1,2\nc2,2,2024-01-02,1,3,EXTRA,X\n")]
    elif case == "unclosed_quote":
        args = [
            _orders(tmp_path, 'c1,1,2024-01-01,1,2\nc2,"2,2024-01-02,1,3\nc3,3,2024-01-03,2,5\n')
        ]
    elif case == "bad_feature":
        args = [_orders(tmp_path, good * 3), "--features", "recency_days,no_such_feature"]
    elif case == "bad_memory_limit":
        args = [_orders(tmp_path, good), "--memory-limit", "lots"]
    elif case == "bad_k":
        args = [_orders(tmp_path, good), "--k", "1"]
    elif case == "mixed_decimals":
        rows = "".join(f'c{i},{i},2024-01-0{i % 9 + 1},1,"{"2.55" if i % 2 else "2,55"}"\n'
                       for i in range(40))  # fmt: skip
        args = [_orders(tmp_path, rows)]
    elif case == "ambiguous_dates":
        rows = "".join(f"c{i},{i},0{i % 9 + 1}/0{i % 3 + 1}/2024,1,2\n" for i in range(40))
        args = [_orders(tmp_path, rows)]
    elif case == "repeated_header":
        args = [_orders(tmp_path, "c1,1,2024-01-01,1,2,2\n", header=ORDERS_HEADER.strip()
                        + ",UnitPrice\n")]  # fmt: skip
    elif case == "unknown_map":
        args = [_orders(tmp_path, good), "--map", "customer_id=NoSuchCol"]
    elif case == "observation_end_word":
        args = [_orders(tmp_path, good), "--observation-end", "yesterday"]
    elif case == "observation_end_early":
        args = [_orders(tmp_path, good * 3), "--observation-end", "2024-01-01"]
    elif case == "nothing_left":
        args = [_orders(tmp_path, "c1,1,2099-01-01,1,2\nc2,2,2099-01-02,1,3\n")]
    elif case == "truncated_gzip":
        import gzip

        body = gzip.compress((ORDERS_HEADER + good * 100_000).encode())
        p = tmp_path / "cut.csv.gz"
        p.write_bytes(body[: len(body) // 2])
        args = [p]
    r = invoke("run", *args, "--out", tmp_path / "out")
    assert r.exit_code == 2, r.output
    text = " ".join(r.output.split())
    assert text.count("error [") == 1 and f"error [{BAD_INPUT_CODES[case]}]: " in text, text
    for piece in expect:
        assert piece in text, (piece, text)


def test_verbose_shows_traceback(tmp_path):
    r = runner.invoke(app, ["-v", "run", str(tmp_path / "nope.csv")])
    assert r.exit_code == 2
    assert "Traceback" in r.output


def test_predict_against_non_run_folder(tmp_path):
    p = _orders(tmp_path, "c1,1,2024-01-01,1,2\n")
    r = invoke("predict", "--run", tmp_path, p, "--out", tmp_path / "s.csv")
    assert r.exit_code == 2 and "manifest.json" in r.output


def test_example_config_is_valid():
    from pathlib import Path

    from segmint.config import Settings

    s = Settings.from_file(Path(__file__).parents[1] / "examples" / "segmint.toml")
    assert s.clustering.k_max == 10
