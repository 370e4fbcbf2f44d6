import pytest

from segmint.data.schema import auto_map, detect_kind
from segmint.exceptions import InputError


@pytest.mark.parametrize(
    "columns, expected",
    [
        (
            [
                "InvoiceNo",
                "StockCode",
                "Description",
                "Quantity",
                "InvoiceDate",
                "UnitPrice",
                "CustomerID",
                "Country",
            ],
            {
                "order_id": "InvoiceNo",
                "customer_id": "CustomerID",
                "unit_price": "UnitPrice",
                "ts": "InvoiceDate",
                "quantity": "Quantity",
                "product_id": "StockCode",
            },
        ),
        (
            [
                "Invoice",
                "StockCode",
                "Description",
                "Quantity",
                "InvoiceDate",
                "Price",
                "Customer ID",
                "Country",
            ],
            {"order_id": "Invoice", "customer_id": "Customer ID", "unit_price": "Price"},
        ),
        (
            ["customer_id", "order_id", "date", "amount"],
            {"customer_id": "customer_id", "ts": "date", "amount": "amount"},
        ),
    ],
)
def test_auto_map_common_spellings(columns, expected):
    cmap = auto_map(columns, {}, path="f.csv")
    for canon, col in expected.items():
        assert cmap.get(canon) == col
    assert detect_kind(cmap) == "transactions"


def test_customer_table_detected():
    cmap = auto_map(["CustomerID", "Genre", "Age", "Annual Income (k$)"], {}, path="m.csv")
    assert cmap.get("customer_id") == "CustomerID"
    assert detect_kind(cmap) == "customers"


def test_override_wins_and_must_exist():
    cmap = auto_map(["Client", "CustomerID", "Date", "Total"], {"customer_id": "Client"}, path="x")
    assert cmap.get("customer_id") == "Client"
    with pytest.raises(InputError, match="'Nope'"):
        auto_map(["a", "b"], {"customer_id": "Nope"}, path="x")
