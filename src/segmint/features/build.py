"""Assemble ``CustomerFeatures``: one row per customer from order lines and/or attributes."""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from segmint.config import Clv
from segmint.data.clean_customers import CleanCustomers
from segmint.data.clean_lines import CleanTransactions
from segmint.data.readers import temp_name, to_pandas
from segmint.exceptions import InputError, ModelError
from segmint.features import behaviour
from segmint.features.clv import customer_clv
from segmint.features.clv_summary import clv_summary
from segmint.features.rfm import rfm_scores

# Behaviour features meaningful for every customer: segmented on by default (with the top
# category shares) and the churn model's inputs. ``distinct_products`` needs a product column.
BEHAVIOUR = (
    "recency_days",
    "frequency",
    "monetary",
    "avg_order_value",
    "tenure_days",
    "mean_interpurchase_days",
    "regularity",
    "return_rate",
    "distinct_products",
    "avg_basket_items",
)

# Columns computed for every customer but not used for clustering by default: they restate
# features (scores of R, F, M) or are bookkeeping.
DESCRIPTIVE = (
    "r_score",
    "f_score",
    "m_score",
    "rfm_code",
    "rfm_segment",
    "purchase_value",
    "returned_value",
    "n_return_lines",
    "avg_basket_lines",
)


def con_of(table: Any) -> Any:
    """The backend an Ibis table runs on."""
    return table.get_backend()


@dataclass
class CustomerFeatures:
    """One row per ``customer_id``: features and descriptive columns.

    Attributes
    ----------
    frame : DataFrame, shape (n_customers, ...)
        ``customer_id`` plus every computed column.
    numeric, categorical : list of str
        Feature columns used for segmentation, by kind.
    observation_end : datetime or None
        End of the observation window for order-line features.
    info : dict
        Counts worth reporting (customers without purchases, unmatched attributes).
    """

    frame: pd.DataFrame
    numeric: list[str]
    categorical: list[str]
    observation_end: _dt.datetime | None = None
    info: dict = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return [*self.numeric, *self.categorical]

    def drop_uninformative(self) -> tuple[CustomerFeatures, dict[str, str]]:
        """Features without variation (all missing, or one value) cannot separate customers;
        drop them and say why. Raises when nothing is left."""
        dropped: dict[str, str] = {}
        for c in self.names:
            col = self.frame[c]
            if col.notna().sum() == 0:
                dropped[c] = "all values missing"
            elif col.nunique(dropna=True) <= 1:
                dropped[c] = "the same value for every customer"
        if dropped and len(dropped) == len(self.names):
            raise InputError(
                "no feature varies across customers, so there is nothing to segment on "
                f"({'; '.join(f'{c}: {r}' for c, r in dropped.items())}).",
                expected="features that differ between customers",
            )
        keep_num = [c for c in self.numeric if c not in dropped]
        keep_cat = [c for c in self.categorical if c not in dropped]
        return (
            CustomerFeatures(self.frame, keep_num, keep_cat, self.observation_end, self.info),
            dropped,
        )

    def select(self, names: list[str], *, source: str = "features") -> CustomerFeatures:
        """Restrict the features used for segmentation, checking every name; ``source`` is
        the setting the names come from, as the error names it."""
        available = [c for c in self.frame.columns if c != "customer_id"]
        unknown = [n for n in names if n not in available]
        if unknown:
            raise InputError(
                f"the {source} setting names feature(s) that do not exist: "
                f"{', '.join(map(repr, unknown))}.",
                expected=f"some of: {', '.join(available)}",
                code="input.unknown_column",
                settings=(source,),
            )
        numeric = [n for n in names if pd.api.types.is_numeric_dtype(self.frame[n])]
        categorical = [n for n in names if n not in numeric]
        return CustomerFeatures(self.frame, numeric, categorical, self.observation_end, self.info)


def _add_clv(
    frame: pd.DataFrame,
    orders: Any,
    end: _dt.datetime,
    clv: Clv,
    params: dict | None,
) -> tuple[pd.DataFrame, dict]:
    summary = clv_summary(orders, end, unit_days=clv.unit_days)
    try:
        values, report = customer_clv(
            summary,
            unit_days=clv.unit_days,
            months=clv.horizon_months,
            annual_discount=clv.annual_discount,
            params=params,
        )
    except ModelError as exc:
        return frame, {"skipped": str(exc)}
    report = {
        **report,
        "time_unit": clv.time_unit,
        "horizon_months": clv.horizon_months,
        "annual_discount": clv.annual_discount,
    }
    return frame.merge(values, on="customer_id", how="left"), report


def build_features(
    tx: CleanTransactions | None,
    customers: CleanCustomers | None,
    *,
    observation_end: _dt.datetime | None = None,
    top_categories: int = 5,
    categories: dict | None = None,
    clv: Clv | None = None,
    clv_params: dict | None = None,
) -> CustomerFeatures:
    """Per-customer features from cleaned order lines and/or a customer table.

    With both, attributes are joined to the customers who have purchases; attribute rows
    without purchases are counted in ``info`` and not segmented. ``categories`` (as saved in
    a model: ``{"column": ..., "values": [...]}``) fixes the category-share features so new
    data gets the same columns as the training data.

    With order lines and ``clv.enabled``, BG/NBD + Gamma-Gamma are fitted at the observation
    end (or applied with ``clv_params`` from a saved run) and add ``p_alive``,
    ``expected_purchases``, ``expected_order_value`` and ``clv``: profiled and selectable with
    ``features``, not clustered by default because they are functions of recency, frequency,
    tenure and spend, which are. Data that cannot identify the models skips them with a note
    in ``info["clv"]``.
    """
    info: dict = {}
    numeric: list[str] = []
    categorical: list[str] = []
    frame: pd.DataFrame | None = None
    end = observation_end
    if tx is not None:
        lines = tx.lines
        last = tx.span()[1]
        end = end or behaviour.default_observation_end(last)
        if last is not None and pd.Timestamp(last) > pd.Timestamp(end):
            raise InputError(
                f"the observation end {end} is before the last order line ({last}): recency "
                "and tenure would be negative for the customers who bought after it.",
                column=tx.cmap.get("ts"),
                expected=(
                    "observation_end on or after the last order (default: the day after it), "
                    "or data filtered to the period you want to look at"
                ),
                path=tx.source.path,
                settings=("observation_end",),
            )
        if categories is not None:
            cat_col, cats = categories.get("column"), list(categories.get("values") or [])
            if cat_col and cat_col not in tx.optional:
                cat_col, cats = None, []
        else:
            cat_col = "category" if "category" in tx.optional else None
            if cat_col is None and "product_id" in tx.optional:
                cat_col = "product_id"
            cats = behaviour.top_categories(lines, cat_col, top_categories) if cat_col else []
        orders = con_of(lines).create_table(
            temp_name("orders"), behaviour.order_table(lines, cats, cat_col), temp=True
        )
        feats = behaviour.order_features(orders, end, cats, cat_col)
        if "product_id" in tx.optional:
            dp = behaviour.distinct_products(lines)
            feats = feats.left_join(dp, "customer_id").drop("customer_id_right")
        frame = to_pandas(feats)
        only_returns = frame["frequency"].fillna(0) == 0
        frame = frame[~only_returns].sort_values("customer_id", kind="stable")
        frame = frame.reset_index(drop=True)
        frame["frequency"] = frame["frequency"].astype("int64")
        if "distinct_products" in frame:
            frame["distinct_products"] = frame["distinct_products"].fillna(0).astype("int64")
        info["customers_with_purchases"] = len(frame)
        info["customers_only_returns"] = int(only_returns.sum())
        frame = pd.concat(
            [frame, rfm_scores(frame.recency_days, frame.frequency, frame.monetary)], axis=1
        )
        # Default segmentation features: behaviour that is meaningful for every customer.
        # Quarter, weekend and product-level shares are 0-or-1 for one-order customers, so
        # they would split the base by "which quarter was the one order"; they are computed
        # and profiled, and can be chosen with ``features``.
        cat_shares = [c for c in frame.columns if c.startswith("share_cat_")]
        numeric = [*(c for c in BEHAVIOUR if c in frame.columns), *cat_shares]
        if clv is not None and clv.enabled:
            frame, info["clv"] = _add_clv(frame, orders, end, clv, clv_params)
        profiled = [c for c in frame.columns if c.startswith("share_") and c not in cat_shares]
        info["profiled_only"] = profiled
        info["top_categories"] = {"column": cat_col, "values": cats}
    if customers is not None:
        attrs = customers.frame
        if frame is None:
            frame = attrs.copy()
        else:
            clash = [c for c in attrs.columns if c in frame.columns and c != "customer_id"]
            attrs = attrs.rename(columns={c: f"attr_{c}" for c in clash})
            matched = frame["customer_id"].isin(attrs["customer_id"])
            info["customers_without_attributes"] = int((~matched).sum())
            info["attribute_rows_without_purchases"] = int(
                (~attrs["customer_id"].isin(frame["customer_id"])).sum()
            )
            frame = frame.merge(attrs, on="customer_id", how="left")
        rename = {c: f"attr_{c}" for c in customers.numeric + customers.categorical}
        numeric += [c if c in frame else rename[c] for c in customers.numeric]
        categorical += [c if c in frame else rename[c] for c in customers.categorical]
    if frame is None or frame.empty:
        raise InputError(
            "no customer is left to segment after cleaning.",
            expected="at least one customer with a valid purchase or attribute row",
            code="input.too_few_customers",
        )
    return CustomerFeatures(frame, numeric, categorical, end, info)
