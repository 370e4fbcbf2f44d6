"""Probabilistic customer lifetime value: BG/NBD (Fader, Hardie & Lee 2005) for purchase
counts and P(alive), Gamma-Gamma (Fader, Hardie & Lee 2005, "RFM and CLV") for spend per
purchase, fitted by maximum likelihood with scipy.

Why here and not a library: ``lifetimes`` is unmaintained (last release 2020; it breaks on
current pandas/numpy); ``pymc-marketing`` fits by MCMC or MAP under priors, pulls in PyMC and
PyTensor (hundreds of MB, a compile step) and takes minutes where this takes seconds. The
likelihoods are a few lines each, and owning them lets us vectorise over *distinct*
(x, t_x, T) triples with weights — a million customers collapse to a fraction of that — and
report standard errors and diagnostics the way an analyst needs.

Conventions (per customer; ``segmint.features.clv_summary`` computes them): ``x`` repeat
purchases (distinct purchase days after the first; a zero-value purchase counts), ``t_x``
time from the first to the last purchase day, ``T`` time from the first purchase day to the
last observed day (inclusive), both in the chosen time unit (fractional weeks by default),
``m`` mean spend of the repeat purchase days. These are FHL's and lifetimes' conventions;
on the CDNOW 1/10th sample they give the published estimates (BG/NBD r 0.243, alpha 4.41,
a 0.793, b 2.43; Gamma-Gamma p 6.25, q 3.74, gamma 15.4 on 946 repeat buyers; see
``tests/test_clv_golden.py``). The spend model uses the customers with ``x > 0`` and
``m > 0`` (a customer whose repeat purchases were all worth nothing has no spend to model).

Fitting (``segmint.features.mle``): parameters are optimised on the log scale (L-BFGS-B with
analytic gradients, then Newton steps to the precision of the gradient); standard errors come
from the inverse of the Hessian of the negative log-likelihood in the natural parameters.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
from scipy.special import betaln, digamma, expit, gammaln, hyp2f1

from segmint.exceptions import ModelError
from segmint.features.mle import Fit, compress, distinct, dot, fit_mle, per_distinct

__all__ = [
    "CLV_COLUMNS",
    "BetaGeo",
    "Fit",
    "GammaGamma",
    "ModelError",
    "bgnbd_loglik",
    "bgnbd_negll",
    "customer_clv",
    "gamma_gamma_loglik",
    "gamma_gamma_negll",
    "lifetime_value",
]


MIN_REPEAT_BUYERS = 20
MIN_REPEAT_SHARE = 0.02


# ---------------------------------------------------------------- BG/NBD


def bgnbd_loglik(
    params: np.ndarray | list[float], x: np.ndarray, t_x: np.ndarray, T: np.ndarray
) -> np.ndarray:
    """Per-customer BG/NBD log-likelihood (FHL 2005, eq. 6)."""
    r, alpha, a, b = params
    x = np.asarray(x, dtype=float)
    t_x = np.asarray(t_x, dtype=float)
    T = np.asarray(T, dtype=float)
    common = gammaln(r + x) - gammaln(r) + r * np.log(alpha) + betaln(a, b + x) - betaln(a, b)
    term1 = -(r + x) * np.log(alpha + T)
    with np.errstate(divide="ignore", invalid="ignore"):
        term2 = np.where(
            x > 0,
            np.log(a) - np.log(np.maximum(b + x - 1, 1e-300)) - (r + x) * np.log(alpha + t_x),
            -np.inf,
        )
    return common + np.logaddexp(term1, term2)


def bgnbd_negll(
    x: np.ndarray,
    t_x: np.ndarray,
    T: np.ndarray,
    weights: np.ndarray | None = None,
    *,
    grad: bool = False,
) -> Callable[[np.ndarray], float | tuple[float, np.ndarray]]:
    """The summed (``weights``: per row) BG/NBD negative log-likelihood as a function of
    (r, alpha, a, b); with ``grad``, the function returns it with its analytic gradient.
    Equal to ``-(weights * bgnbd_loglik(params, x, t_x, T)).sum()``.

    Each term is evaluated once per distinct value of what it depends on: the terms in ``x``
    per distinct ``x``, the logarithms per distinct ``(T, t_x)`` pair (few: days or weeks),
    and the "alive at T" term summed per pair. Per repeat buyer's history a call costs a few
    array passes: the log-odds of having dropped out after ``t_x``, its softplus and (with
    ``grad``) its logistic. Customers without repeats contribute through ``T`` alone."""
    x, t_x, T = (np.asarray(v, dtype=float) for v in (x, t_x, T))
    w = np.ones(len(x)) if weights is None else np.asarray(weights, dtype=float)
    xs, ix = np.unique(x, return_inverse=True)
    cw = np.bincount(ix, weights=w, minlength=len(xs))  # weight of each distinct x
    total = float(w.sum())
    rep = x > 0
    # no repeats: likelihood common(0) * (alpha / (alpha + T))^r; by distinct T
    T0, i0 = np.unique(T[~rep], return_inverse=True)
    w0 = np.bincount(i0, weights=w[~rep], minlength=len(T0))
    # repeat buyers: rows, with indices into the distinct x and the distinct (T, t_x) pairs
    xr, wr = x[rep], w[rep]
    xu, ixr = np.unique(xr, return_inverse=True)
    (Tp, tp), ip = distinct([T[rep], t_x[rep]])
    wp = np.bincount(ip, weights=wr, minlength=len(Tp))
    wxp = np.bincount(ip, weights=wr * xr, minlength=len(Tp))

    def negll(params: np.ndarray) -> float | tuple[float, np.ndarray]:
        r, alpha, a, b = params
        per_x = gammaln(r + xs) + betaln(a, b + xs)
        ll = dot(cw, per_x) + total * (r * np.log(alpha) - gammaln(r) - betaln(a, b))
        log_T0 = np.log(alpha + T0)
        ll -= r * dot(w0, log_T0)
        # repeat buyers: log L = b1 + softplus(d), b1 = -(r + x) log(alpha + T) (alive at T),
        # d = log(a / (b + x - 1)) + (r + x) log((alpha + T) / (alpha + t_x)) (dropped vs alive)
        log_Tp = np.log(alpha + Tp)
        gap = log_Tp - np.log(alpha + tp)
        gap_row = gap[ip]
        rx = r + xr
        d = (np.log(a) - np.log(b + xu - 1))[ixr] + rx * gap_row
        ll += -dot(log_Tp, r * wp + wxp) + dot(wr, np.logaddexp(0.0, d))
        if not grad:
            return -ll
        w2 = wr * expit(d)  # each repeat buyer's weight x P(dropped | history)
        psi_abx = digamma(a + b + xs)
        d_r = (
            dot(cw, digamma(r + xs))
            + total * (np.log(alpha) - digamma(r))
            - dot(w0, log_T0)
            - dot(log_Tp, wp)
            + dot(w2, gap_row)
        )
        inv_Tp = 1.0 / (alpha + Tp)
        d_alpha = (
            total * r / alpha
            - r * dot(w0, 1.0 / (alpha + T0))
            - dot(inv_Tp, r * wp + wxp)
            + dot(np.bincount(ip, weights=w2 * rx, minlength=len(Tp)), inv_Tp - 1.0 / (alpha + tp))
        )
        d_a = dot(cw, digamma(a + b) - psi_abx) + float(w2.sum()) / a
        d_b = dot(cw, digamma(b + xs) - psi_abx - digamma(b) + digamma(a + b)) - dot(
            np.bincount(ixr, weights=w2, minlength=len(xu)), 1.0 / (b + xu - 1)
        )
        return -ll, -np.array([d_r, d_alpha, d_a, d_b])

    return negll


class BetaGeo:
    """BG/NBD model of repeat purchasing and dropout.

    Attributes (after ``fit``): ``fit_`` (:class:`Fit`), ``params_`` (r, alpha, a, b).
    """

    names = ("r", "alpha", "a", "b")

    @classmethod
    def from_params(cls, params: dict[str, float]) -> BetaGeo:
        """A fitted model from saved parameters (to score new data the same way)."""
        self = cls()
        self.params_ = np.array([float(params[k]) for k in cls.names])
        return self

    def fit(self, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> BetaGeo:
        x, t_x, T = (np.asarray(v, dtype=float) for v in (x, t_x, T))
        n = len(x)
        repeat = int((x > 0).sum())
        if repeat < MIN_REPEAT_BUYERS or repeat < MIN_REPEAT_SHARE * n:
            raise ModelError(
                f"BG/NBD cannot be identified: only {repeat:,} of {n:,} customers "
                f"({repeat / max(n, 1):.1%}) bought again in the calibration period; it needs "
                f"at least {MIN_REPEAT_BUYERS} and {MIN_REPEAT_SHARE:.0%} repeat buyers to tell "
                "purchase rate from dropout. Use a longer calibration period."
            )
        if (t_x > T + 1e-9).any() or (t_x < 0).any():
            raise ModelError("BG/NBD needs 0 <= t_x <= T for every customer")
        (ux, ut, uT), w = compress(x, t_x, T)
        negll = bgnbd_negll(ux, ut, uT, w, grad=True)
        start = np.array([1.0, max(float(np.mean(T)), 1.0), 1.0, 1.0])
        self.fit_ = fit_mle(negll, start, self.names, n, "BG/NBD")
        self.fit_.diagnostics["distinct_triples"] = len(w)
        self.fit_.diagnostics["repeat_buyers"] = repeat
        self.params_ = np.array([self.fit_.params[k] for k in self.names])
        a, b = self.params_[2:]
        mean_dropout = a / (a + b)
        self.fit_.diagnostics["mean_dropout_per_purchase"] = float(mean_dropout)
        if mean_dropout < 1e-3:
            self.fit_.diagnostics.setdefault("warnings", []).append(
                f"almost no dropout detected (mean dropout per purchase {mean_dropout:.1e}): "
                "P(alive) is close to 1 for everyone and BG/NBD behaves like the NBD model"
            )
        return self

    def p_alive(self, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
        """P(customer still active at T | x, t_x, T) (FHL 2005, eq. 11)."""
        return per_distinct(self._p_alive, x, t_x, T)

    def _p_alive(self, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
        r, alpha, a, b = self.params_
        x, t_x, T = (np.asarray(v, dtype=float) for v in (x, t_x, T))
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            odds = np.where(
                x > 0,
                a
                / np.maximum(b + x - 1, 1e-300)
                * np.exp((r + x) * np.log((alpha + T) / (alpha + t_x))),
                0.0,
            )
        return 1.0 / (1.0 + odds)

    def expected_purchases(
        self, t: float, x: np.ndarray, t_x: np.ndarray, T: np.ndarray
    ) -> np.ndarray:
        """E[purchases in (T, T + t] | history] (FHL 2005, eq. 10)."""
        return per_distinct(lambda *v: self._expected(t, *v), x, t_x, T)

    def _expected(self, t: float, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
        x, t_x, T = (np.asarray(v, dtype=float) for v in (x, t_x, T))
        return self._if_alive(t, x, T) * self._p_alive(x, t_x, T)

    def _if_alive(self, t: float, x: np.ndarray, T: np.ndarray) -> np.ndarray:
        """E[purchases in (T, T + t] | alive at T]: a function of (x, T) only, evaluated once
        per distinct pair (the hypergeometric function is the costly part of scoring)."""
        return per_distinct(lambda x, T: self._if_alive_rows(t, x, T), x, T)

    def _if_alive_rows(self, t: float, x: np.ndarray, T: np.ndarray) -> np.ndarray:
        r, alpha, a, b = self.params_
        if t <= 0:
            return np.zeros_like(x)
        z = t / (alpha + T + t)
        hyp = hyp2f1(r + x, b + x, a + b + x - 1, z)
        return (
            (a + b + x - 1)
            / (a - 1)
            * (1 - np.exp((r + x) * np.log((alpha + T) / (alpha + T + t))) * hyp)
        )


# ---------------------------------------------------------------- Gamma-Gamma


def gamma_gamma_loglik(
    params: np.ndarray | list[float], x: np.ndarray, m: np.ndarray
) -> np.ndarray:
    """Per-customer Gamma-Gamma log-likelihood of the mean spend ``m`` over ``x`` purchases."""
    p, q, gamma = params
    x = np.asarray(x, dtype=float)
    m = np.asarray(m, dtype=float)
    px = p * x
    return (
        gammaln(px + q)
        - gammaln(px)
        - gammaln(q)
        + q * np.log(gamma)
        + (px - 1) * np.log(m)
        + px * np.log(x)
        - (px + q) * np.log(gamma + m * x)
    )


def gamma_gamma_negll(
    x: np.ndarray, m: np.ndarray, *, grad: bool = False
) -> Callable[[np.ndarray], float | tuple[float, np.ndarray]]:
    """The summed Gamma-Gamma negative log-likelihood as a function of (p, q, gamma), with one
    logarithm per customer per call: the terms in ``x`` alone are summed once per distinct
    ``x`` (few: purchase counts), and the terms linear in ``log m`` are precomputed. Equal to
    ``-gamma_gamma_loglik(params, x, m).sum()``; 5x faster at 700k repeat buyers, where
    ``m`` is continuous and the histories do not compress. With ``grad``, the function
    returns it with its analytic gradient."""
    x = np.asarray(x, dtype=float)
    m = np.asarray(m, dtype=float)
    xs, counts = np.unique(x, return_counts=True)
    log_m = np.log(m)
    sum_x_log_m = dot(x, log_m)
    sum_log_m = float(log_m.sum())
    xs_log_xs = xs * np.log(xs)
    spend = m * x
    n = len(x)

    def negll(params: np.ndarray) -> float | tuple[float, np.ndarray]:
        p, q, gamma = params
        total = gamma + spend
        log_total = np.log(total)
        sum_x_log_total = dot(x, log_total)
        sum_log_total = float(log_total.sum())
        per_x = gammaln(p * xs + q) - gammaln(p * xs) + p * xs_log_xs
        ll = (
            dot(counts, per_x)
            + n * (q * np.log(gamma) - gammaln(q))
            + p * sum_x_log_m
            - sum_log_m
            - p * sum_x_log_total
            - q * sum_log_total
        )
        if not grad:
            return -ll
        psi = digamma(p * xs + q)
        inv_total = 1.0 / total
        d_p = dot(counts, xs * (psi - digamma(p * xs)) + xs_log_xs) + sum_x_log_m - sum_x_log_total
        d_q = dot(counts, psi) + n * (np.log(gamma) - digamma(q)) - sum_log_total
        d_gamma = n * q / gamma - p * dot(x, inv_total) - q * float(inv_total.sum())
        return -ll, -np.array([d_p, d_q, d_gamma])

    return negll


class GammaGamma:
    """Gamma-Gamma model of spend per purchase (repeat buyers with positive mean spend).

    Attributes (after ``fit``): ``fit_``, ``params_`` (p, q, gamma).
    """

    names = ("p", "q", "gamma")

    @classmethod
    def from_params(cls, params: dict[str, float]) -> GammaGamma:
        """A fitted model from saved parameters (to score new data the same way)."""
        self = cls()
        self.params_ = np.array([float(params[k]) for k in cls.names])
        return self

    def fit(self, x: np.ndarray, m: np.ndarray) -> GammaGamma:
        x = np.asarray(x, dtype=float)
        m = np.asarray(m, dtype=float)
        use = (x > 0) & (m > 0) & np.isfinite(m)
        if use.sum() < MIN_REPEAT_BUYERS:
            raise ModelError(
                f"Gamma-Gamma needs repeat buyers with positive spend; only {int(use.sum())} "
                f"found (at least {MIN_REPEAT_BUYERS} needed)."
            )
        negll = gamma_gamma_negll(x[use], m[use], grad=True)
        start = np.array([1.0, 2.0, max(float(np.median(m[use])), 1e-3)])
        self.fit_ = fit_mle(negll, start, self.names, int(use.sum()), "Gamma-Gamma")
        self.fit_.diagnostics["spend_frequency_correlation"] = float(
            np.corrcoef(x[use], m[use])[0, 1]
        )
        self.params_ = np.array([self.fit_.params[k] for k in self.names])
        if self.params_[1] <= 1:
            raise ModelError(
                f"Gamma-Gamma q = {self.params_[1]:.3f} <= 1: expected spend is undefined "
                "(spend per purchase is too heavy-tailed for the model)."
            )
        return self

    def expected_spend(self, x: np.ndarray, m: np.ndarray) -> np.ndarray:
        """E[spend per purchase | x, m]; the population mean for customers without repeats."""
        p, q, gamma = self.params_
        x = np.asarray(x, dtype=float)
        m = np.nan_to_num(np.asarray(m, dtype=float), nan=0.0)
        pop = p * gamma / (q - 1)
        w = p * x / (p * x + q - 1)
        return np.where(x > 0, (1 - w) * pop + w * m, pop)


def lifetime_value(
    bg: BetaGeo,
    gg: GammaGamma,
    x: np.ndarray,
    t_x: np.ndarray,
    T: np.ndarray,
    m: np.ndarray,
    *,
    months: int = 12,
    unit_days: float = 1.0,
    annual_discount: float = 0.1,
) -> np.ndarray:
    """Discounted CLV over ``months``: expected purchases in each month × expected spend,
    discounted monthly at the rate equivalent to ``annual_discount``."""
    monthly = (1 + annual_discount) ** (1 / 12) - 1
    step = 365.25 / 12 / unit_days

    def discounted_if_alive(x: np.ndarray, T: np.ndarray) -> np.ndarray:
        total = np.zeros(len(x))
        prev = np.zeros(len(x))
        for i in range(1, months + 1):
            cur = bg._if_alive_rows(i * step, x, T)
            total += (cur - prev) / (1 + monthly) ** i
            prev = cur
        return total

    def discounted_purchases(x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
        # E[purchases up to t] = E[... | alive] x P(alive): the sum over months factors too
        return per_distinct(discounted_if_alive, x, T) * bg._p_alive(x, t_x, T)

    # spend per purchase is constant per customer, so the sum factors: one pass over the
    # distinct (x, t_x, T) histories, then one multiplication per customer
    return per_distinct(discounted_purchases, x, t_x, T) * gg.expected_spend(x, m)


CLV_COLUMNS = ("p_alive", "expected_purchases", "expected_order_value", "clv")


def customer_clv(
    summary: pd.DataFrame,
    *,
    unit_days: int,
    months: int = 12,
    annual_discount: float = 0.1,
    params: dict | None = None,
) -> tuple[pd.DataFrame, dict]:
    """Fit (or, with ``params`` from a saved run, apply) BG/NBD + Gamma-Gamma to a
    ``clv_summary`` and return per-customer ``customer_id`` + ``CLV_COLUMNS`` and a report
    (parameters, standard errors, diagnostics) that ``params`` can be rebuilt from."""
    x, t_x, T, m = (summary[c].to_numpy(dtype=float) for c in ("x", "t_x", "T", "m"))
    if params is None:
        bg = BetaGeo().fit(x, t_x, T)
        gg = GammaGamma().fit(x, m)
        report = {
            "bgnbd": {"params": bg.fit_.params, "se": bg.fit_.se, "loglik": bg.fit_.loglik,
                      "n": bg.fit_.n, "diagnostics": bg.fit_.diagnostics},
            "gamma_gamma": {"params": gg.fit_.params, "se": gg.fit_.se,
                            "loglik": gg.fit_.loglik, "n": gg.fit_.n,
                            "diagnostics": gg.fit_.diagnostics},
        }  # fmt: skip
    else:
        bg = BetaGeo.from_params(params["bgnbd"]["params"])
        gg = GammaGamma.from_params(params["gamma_gamma"]["params"])
        report = params
    horizon = months * 365.25 / 12 / unit_days
    out = pd.DataFrame({"customer_id": summary["customer_id"].to_numpy()})
    out["p_alive"] = bg.p_alive(x, t_x, T)
    out["expected_purchases"] = bg.expected_purchases(horizon, x, t_x, T)
    out["expected_order_value"] = gg.expected_spend(x, m)
    out["clv"] = lifetime_value(
        bg, gg, x, t_x, T, m, months=months, unit_days=unit_days, annual_discount=annual_discount
    )
    return out, report
