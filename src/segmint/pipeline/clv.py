"""``segmint clv``: fit BG/NBD + Gamma-Gamma on a calibration period and compare their
predictions with a holdout period. Reads through ``ingest``; writes nothing."""

from __future__ import annotations

import datetime as _dt
from typing import Any

import numpy as np
import pandas as pd

from segmint.config import Settings
from segmint.data import readers
from segmint.data.ingest import Ingested, ingest
from segmint.exceptions import InputError
from segmint.features.clv import BetaGeo, GammaGamma
from segmint.features.clv_summary import clv_summary
from segmint.results import ClvValidation


def validate_clv(
    data: Any,
    calibration_end: _dt.date,
    settings: Settings | None = None,
    *,
    holdout_end: _dt.date | None = None,
) -> ClvValidation:
    """Fit the CLV models on the orders up to and including the day ``calibration_end``;
    predict each customer's purchases from the next day through ``holdout_end`` (default: the
    day of the last order) and compare with what happened.

    Both ends are *days* and both are inclusive, as in Fader, Hardie & Lee (2005) and
    lifetimes' ``calibration_period_end`` / ``observation_period_end``: CDNOW's calibration
    period 1997-01-01..1997-09-30 is ``calibration_end=1997-09-30``, and a customer whose
    first purchase is on 1997-01-01 has T = 272 days = 38.86 weeks. A time of day is
    ignored. Repeat purchases are counted per day and t_x, T are in ``settings.clv`` time
    units (see ``segmint.features.clv_summary``). This is the model a run fits (its CLV
    columns) on the same orders with ``observation_end`` the day after ``calibration_end``.
    """
    settings = (settings or Settings()).merged({"kind": "transactions"})
    with readers.engine(memory_limit=settings.memory_limit) as con:
        ing = ingest([data], settings, con)
        return _validate(ing, calibration_end, holdout_end, settings)


def _validate(
    ing: Ingested,
    calibration_end: _dt.date,
    holdout_end: _dt.date | None,
    settings: Settings,
) -> ClvValidation:
    assert ing.transactions is not None
    lines = ing.transactions.lines
    path = ing.inputs[0]["path"]
    first_ts, last_ts = ing.transactions.span()
    cal_day = pd.Timestamp(calibration_end).normalize()
    hold_day = pd.Timestamp(holdout_end if holdout_end is not None else last_ts).normalize()
    first_day = pd.Timestamp(first_ts).normalize()
    if not (first_day < cal_day < hold_day):
        raise InputError(
            f"calibration_end {cal_day.date()} must fall after the first order "
            f"({first_day.date()}) and before the last day of the holdout "
            f"({hold_day.date()}).",
            path=path,
            column="ts",
            settings=("calibration_end", "holdout_end"),
        )
    unit = settings.clv.unit_days
    # clv_summary takes windows by their exclusive ends: midnight after each last day
    cal_stop = (cal_day + pd.Timedelta(days=1)).to_pydatetime()
    hold_stop = (hold_day + pd.Timedelta(days=1)).to_pydatetime()
    summary = clv_summary(lines, cal_stop, unit_days=unit, holdout_end=hold_stop)
    x, t_x, T, m = (summary[c].to_numpy(dtype=float) for c in ("x", "t_x", "T", "m"))
    bg = BetaGeo().fit(x, t_x, T)
    gg = GammaGamma().fit(x, m)
    t_hold = (hold_day - cal_day).days / unit
    summary["predicted"] = bg.expected_purchases(t_hold, x, t_x, T)
    summary["p_alive"] = bg.p_alive(x, t_x, T)
    summary["expected_order_value"] = gg.expected_spend(x, m)
    params = pd.concat(
        [bg.fit_.table().assign(model="BG/NBD"), gg.fit_.table().assign(model="Gamma-Gamma")],
        ignore_index=True,
    )[["model", "param", "estimate", "se", "ci_low", "ci_high"]]
    bucket = np.minimum(summary["x"], 7).astype(int).astype(str).replace("7", "7+")
    holdout = (
        summary.groupby(bucket, sort=False)
        .agg(customers=("x", "size"), actual=("holdout_x", "mean"), predicted=("predicted", "mean"))
        .reset_index(names="calibration_repeat_purchases")
    )
    holdout["_k"] = holdout["calibration_repeat_purchases"].str.rstrip("+").astype(int)
    holdout = holdout.sort_values("_k").drop(columns="_k").reset_index(drop=True)
    act, pred = summary["holdout_x"].to_numpy(), summary["predicted"].to_numpy()
    diagnostics = {
        "bgnbd": {**bg.fit_.diagnostics, "loglik": bg.fit_.loglik, "n": bg.fit_.n},
        "gamma_gamma": {**gg.fit_.diagnostics, "loglik": gg.fit_.loglik, "n": gg.fit_.n},
        "periods": {
            "calibration": [first_day.date().isoformat(), cal_day.date().isoformat()],
            "holdout": [
                (cal_day + pd.Timedelta(days=1)).date().isoformat(),
                hold_day.date().isoformat(),
            ],
            "ends_inclusive": True,
            "purchase_events": "distinct purchase days",
        },
        "holdout": {
            "customers": len(summary),
            "length": float(t_hold),
            "actual_total": float(act.sum()),
            "predicted_total": float(pred.sum()),
            "relative_error_total": float(pred.sum() / act.sum() - 1) if act.sum() else None,
            "mean_absolute_error": float(np.mean(np.abs(pred - act))),
            "correlation": float(np.corrcoef(pred, act)[0, 1]) if len(act) > 1 else None,
        },
    }
    return ClvValidation(
        params=params,
        diagnostics=diagnostics,
        holdout=holdout,
        customers=summary,
        calibration_end=cal_day.to_pydatetime(),
        holdout_end=hold_day.to_pydatetime(),
        time_unit=settings.clv.time_unit,
        inputs=ing.inputs,
    )
