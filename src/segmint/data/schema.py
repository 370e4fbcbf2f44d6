"""Canonical columns of order lines, auto-mapping of common spellings, and kind detection."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from segmint.exceptions import InputError

REQUIRED_TX = ("customer_id", "ts")  # no order id: each customer timestamp is one order
OPTIONAL_TX = ("product_id", "category", "channel", "country")

# Normalised spellings (lower case, letters and digits only) per canonical column, most
# specific first. Covers Online Retail I (InvoiceNo, UnitPrice, CustomerID) and II (Invoice,
# Price, Customer ID) and the usual warehouse names.
ALIASES: dict[str, tuple[str, ...]] = {
    "customer_id": (
        "customerid",
        "customer",
        "custid",
        "clientid",
        "client",
        "userid",
        "user",
        "accountid",
        "memberid",
        "buyerid",
        "customernumber",
        "customerno",
        "id",
    ),
    "order_id": (
        "orderid",
        "invoiceno",
        "invoice",
        "invoiceid",
        "invoicenumber",
        "order",
        "orderno",
        "ordernumber",
        "transactionid",
        "transaction",
        "receiptid",
        "basketid",
    ),
    "ts": (
        "ts",
        "invoicedate",
        "orderdate",
        "timestamp",
        "datetime",
        "date",
        "purchasedate",
        "transactiondate",
        "orderdatetime",
        "createdat",
        "time",
    ),
    "quantity": ("quantity", "qty", "units", "quantityordered", "count", "items"),
    "unit_price": ("unitprice", "price", "priceeach", "itemprice", "unitcost"),
    "amount": (
        "amount",
        "lineamount",
        "linetotal",
        "total",
        "totalamount",
        "revenue",
        "sales",
        "value",
        "spend",
        "netamount",
        "salesamount",
        "orderamount",
    ),
    "product_id": ("productid", "stockcode", "sku", "itemid", "product", "productcode", "item"),
    "category": ("category", "productcategory", "categoryname", "department", "productline"),
    "channel": ("channel", "saleschannel", "source"),
    "country": ("country", "countryname", "region", "market"),
}


# Words that make a column a money column when no alias matched the whole name:
# ``dollar_value``, ``OrderTotalEUR``, ``net_sales``.
MONEY_WORDS = ("amount", "revenue", "sales", "value", "total", "spend", "price")


def normalise(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def words(name: str) -> set[str]:
    """Lower-case words of a column name, split at non-letters and camelCase humps."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    return {w for w in re.split(r"[^a-z0-9]+", spaced.lower()) if w}


@dataclass(frozen=True)
class ColumnMap:
    """Canonical name → the user's column name, for the columns present."""

    mapping: Mapping[str, str]

    def get(self, canonical: str) -> str | None:
        return self.mapping.get(canonical)

    def has(self, canonical: str) -> bool:
        return canonical in self.mapping

    def source_columns(self) -> set[str]:
        return set(self.mapping.values())


def auto_map(columns: Iterable[str], overrides: Mapping[str, str], *, path: str) -> ColumnMap:
    """Map the file's columns to canonical names; explicit overrides win and must exist."""
    cols = list(columns)
    wrong = [canon for canon, name in overrides.items() if name not in cols]
    missing = [f"{canon}={overrides[canon]!r}" for canon in wrong]
    if missing:
        raise InputError(
            f"the column mapping names column(s) the file does not have: {', '.join(missing)}.",
            expected=f"one of the file's columns: {', '.join(map(repr, cols))}",
            path=path,
            code="input.unknown_column",
            settings=[f"columns.{canon}" for canon in wrong],
        )
    mapping = dict(overrides)
    taken = set(mapping.values())
    by_norm: dict[str, str] = {}
    for c in cols:
        by_norm.setdefault(normalise(c), c)
    for canon, aliases in ALIASES.items():
        if canon in mapping:
            continue
        for alias in aliases:
            col = by_norm.get(alias)
            if col is not None and col not in taken:
                mapping[canon] = col
                taken.add(col)
                break
    if not ("amount" in mapping or ("quantity" in mapping and "unit_price" in mapping)):
        _map_money_word(cols, mapping, taken)
    return ColumnMap(mapping)


def _map_money_word(cols: list[str], mapping: dict[str, str], taken: set[str]) -> None:
    """The first column whose name contains a money word becomes the amount (or the unit
    price, when it says price and a quantity column is mapped)."""
    for word in MONEY_WORDS:
        for c in cols:
            if c in taken or word not in words(c):
                continue
            canon = "unit_price" if word == "price" and "quantity" in mapping else "amount"
            if canon in mapping:
                continue
            mapping[canon] = c
            taken.add(c)
            return


def detect_kind(cmap: ColumnMap, *, ids_repeat: bool = False) -> str:
    """'transactions' when the file has an order or date column and a money column, or
    when customer ids repeat beside a date column (a purchase log, even one whose amount
    column was not recognised: the caller then asks for it); else 'customers'."""
    has_money = cmap.has("amount") or (cmap.has("quantity") and cmap.has("unit_price"))
    has_event = cmap.has("order_id") or cmap.has("ts")
    if has_money and has_event:
        return "transactions"
    if ids_repeat and cmap.has("customer_id") and cmap.has("ts"):
        return "transactions"
    return "customers"


def may_be_order_lines(cmap: ColumnMap) -> bool:
    """Whether ``detect_kind`` needs to know if ids repeat (a query the caller runs)."""
    return cmap.has("customer_id") and cmap.has("ts") and detect_kind(cmap) == "customers"


def require_transaction_columns(cmap: ColumnMap, columns: list[str], *, path: str) -> None:
    """Raise one error that lists every required canonical column that is missing."""
    missing = [c for c in REQUIRED_TX if not cmap.has(c)]
    if not (cmap.has("amount") or (cmap.has("quantity") and cmap.has("unit_price"))):
        missing.append("amount (or quantity and unit_price)")
    if missing:
        raise InputError(
            "order lines need the columns "
            + ", ".join(missing)
            + "; none of the file's columns could be matched to them.",
            expected=(
                "columns such as CustomerID, InvoiceNo, InvoiceDate, Quantity, UnitPrice "
                f"(file has: {', '.join(map(repr, columns))}); map them in the column "
                "mapping (the columns setting: canonical name = the file's column)"
            ),
            path=path,
            code="input.missing_column",
            settings=("columns",),
        )
