from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

DATASETS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"


pytest_plugins = ["tests.postgres"]


@pytest.fixture(autouse=True, scope="session")
def _private_environment(tmp_path_factory):
    """Models are signed with a per-session key file and runs are registered in a
    per-session workspace: tests never touch ~/.config or ./segmint-workspace. A registry
    URL from the developer's environment is not used (the registry tests choose theirs)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("SEGMINT_SIGNING_KEY", raising=False)
        mp.delenv("SEGMINT_DATABASE_URL", raising=False)
        mp.setenv("SEGMINT_KEY_FILE", str(tmp_path_factory.mktemp("key") / "signing.key"))
        mp.setenv("SEGMINT_WORKSPACE", str(tmp_path_factory.mktemp("workspace")))
        yield


def dataset(name: str) -> Path:
    path = DATASETS / name
    if not path.is_file():
        pytest.skip(f"{path} is absent: real-data tests need ../shared/datasets beside the repo")
    return path


@pytest.fixture
def orders_frame() -> pd.DataFrame:
    """A tiny, hand-checkable set of order lines (Online Retail spelling)."""
    rows = [
        # InvoiceNo, StockCode, Quantity, InvoiceDate, UnitPrice, CustomerID
        ("1001", "A", 2, "2024-01-01 10:00:00", 5.0, "1"),
        ("1001", "B", 1, "2024-01-01 10:00:00", 10.0, "1"),
        ("1002", "A", 1, "2024-01-11 09:00:00", 5.0, "1"),
        ("1003", "A", 4, "2024-01-31 12:00:00", 5.0, "1"),
        ("C1004", "A", -1, "2024-02-01 12:00:00", 5.0, "1"),
        ("2001", "B", 3, "2024-01-20 08:00:00", 10.0, "2"),
        ("2001", "B", 3, "2024-01-20 08:00:00", 10.0, "2"),  # exact duplicate
        ("2002", "C", 1, "2024-01-21 08:00:00", 0.0, "2"),  # zero price
        ("3001", "C", 1, "2024-01-05 08:00:00", 7.0, ""),  # missing customer
        ("3002", "C", 1, "2099-01-05 08:00:00", 7.0, "3"),  # future date
        ("3003", "C", 1, "not a date", 7.0, "3"),  # unparseable date
    ]
    return pd.DataFrame(
        rows,
        columns=["InvoiceNo", "StockCode", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID"],
    )
