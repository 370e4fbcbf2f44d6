"""Probabilistic customer lifetime value: BG/NBD (Fader, Hardie & Lee 2005) for purchase
counts and P(alive), Gamma-Gamma (Fader, Hardie & Lee 2005, "RFM and CLV") for spend per
purchase, fitted by maximum likelihood with scipy.

Why here and not a library: ``lifetimes`` is unmaintained (last release 2020; it breaks on
current pandas/numpy); ``pymc-marketing`` fits by MCMC or MAP under priors, pulls in PyMC and
PyTensor (hundreds of MB, a compile step) and takes minutes where this takes seconds. The
likelihoods are a few lines each, and owning them lets us vectorise over *distinct*
(x, t_x, T) triples with weights — a million customers collapse to a fraction of that — and
report standard errors and diagnostics the way an analyst needs.

Conventions (per customer, in the chosen time unit): ``x`` repeat purchases (purchase
periods after the first), ``t_x`` time from first to last purchase, ``T`` time from first
purchase to the end of calibration, ``m`` mean value of the repeat purchases.

Parameters are optimised on the log scale (L-BFGS-B); standard errors come from the inverse
of a central-difference Hessian of the negative log-likelihood in the natural parameters.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import betaln, gammaln, hyp2f1

from ..exceptions import SegmintError


class ModelError(SegmintError):
    """The data cannot identify the model, or the fit did not converge."""


MIN_REPEAT_BUYERS = 20
MIN_REPEAT_SHARE = 0.02


@dataclass
class Fit:
    """Fitted parameters with standard errors and diagnostics."""

    params: dict[str, float]
    se: dict[str, float]
    loglik: float
    n: int
    diagnostics: dict = field(default_factory=dict)

    def table(self) -> pd.DataFrame:
        rows = []
        for k, v in self.params.items():
            se = self.se.get(k, float("nan"))
            # parameters are positive: the interval is symmetric on the log scale (delta method)
            spread = np.exp(1.96 * se / v) if v > 0 else np.nan
            rows.append(dict(param=k, estimate=v, se=se, ci_low=v / spread, ci_high=v * spread))
        return pd.DataFrame(rows)


def _distinct(cols: list[np.ndarray]) -> tuple[list[np.ndarray], np.ndarray]:
    """Distinct rows of the columns and each input row's index among them (a pandas
    group-by: 15x faster than ``np.unique(axis=0)`` at a million rows)."""
    frame = pd.DataFrame({i: c for i, c in enumerate(cols)})
    codes = frame.groupby(list(frame.columns), sort=False).ngroup().to_numpy()
    first = np.empty(int(codes.max()) + 1, dtype=np.int64)
    first[codes[::-1]] = np.arange(len(codes))[::-1]
    return [c[first] for c in cols], codes


def _compress(*cols: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """Distinct rows of the columns and how many customers share each."""
    uniq, codes = _distinct([np.asarray(c, dtype=float) for c in cols])
    return uniq, np.bincount(codes).astype(float)


def _hessian(f, x: np.ndarray) -> np.ndarray:
    """Central-difference Hessian with relative steps."""
    n = len(x)
    h = 1e-4 * np.maximum(np.abs(x), 1e-2)
    H = np.empty((n, n))
    for i in range(n):
        for j in range(i, n):
            ei = np.zeros(n)
            ej = np.zeros(n)
            ei[i] = h[i]
            ej[j] = h[j]
            v = (f(x + ei + ej) - f(x + ei - ej) - f(x - ei + ej) + f(x - ei - ej)) / (
                4 * h[i] * h[j]
            )
            H[i, j] = H[j, i] = v
    return H


def _fit(
    negll,
    start: np.ndarray,
    names: tuple[str, ...],
    n: int,
    model: str,
) -> Fit:
    def obj(logp: np.ndarray) -> float:
        v = negll(np.exp(logp)) / n
        return float(v) if np.isfinite(v) else 1e100

    best = None
    for shift in (0.0, 1.0, -1.0):
        res = minimize(obj, np.log(start) + shift, method="L-BFGS-B", options={"maxiter": 2000})
        if best is None or res.fun < best.fun:
            best = res
        if res.success:
            break
    assert best is not None
    params = np.exp(best.x)
    H = _hessian(negll, params)
    diag: dict = {
        "converged": bool(best.success),
        "message": str(best.message),
        "iterations": int(best.nit),
        "function_evaluations": int(best.nfev),
    }
    try:
        cov = np.linalg.inv(H)
        eig = np.linalg.eigvalsh(H)
        diag["hessian_positive_definite"] = bool(eig.min() > 0)
        diag["hessian_condition"] = float(eig.max() / eig.min()) if eig.min() > 0 else None
        se = np.sqrt(np.where(np.diag(cov) > 0, np.diag(cov), np.nan))
    except np.linalg.LinAlgError:
        diag["hessian_positive_definite"] = False
        se = np.full(len(params), np.nan)
    if not diag["hessian_positive_definite"]:
        flat = [k for k, v in zip(names, se, strict=True) if not np.isfinite(v)] or list(names)
        diag.setdefault("warnings", []).append(
            "standard errors unavailable for "
            + ", ".join(flat)
            + ": the likelihood is flat there (an estimate at the edge of its range)"
        )
    if not diag["converged"]:
        raise ModelError(
            f"{model} did not converge ({best.message}); the data may not identify it. "
            "Try a longer calibration period or another time unit."
        )
    return Fit(
        params=dict(zip(names, map(float, params), strict=True)),
        se=dict(zip(names, map(float, se), strict=True)),
        loglik=float(-negll(params)),
        n=n,
        diagnostics=diag,
    )


def _per_distinct(fn: Callable[..., np.ndarray], *cols: np.ndarray) -> np.ndarray:
    """Evaluate ``fn`` once per distinct row of ``cols`` (customers share few histories)."""
    arrays = [np.asarray(c, dtype=float) for c in cols]
    if len(arrays[0]) < 50_000:
        return fn(*arrays)
    uniq, codes = _distinct(arrays)
    return fn(*uniq)[codes]


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
        (ux, ut, uT), w = _compress(x, t_x, T)

        def negll(p: np.ndarray) -> float:
            return -float(np.dot(w, bgnbd_loglik(p, ux, ut, uT)))

        start = np.array([1.0, max(float(np.mean(T)), 1.0), 1.0, 1.0])
        self.fit_ = _fit(negll, start, self.names, n, "BG/NBD")
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
        return _per_distinct(self._p_alive, x, t_x, T)

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
        return _per_distinct(lambda *v: self._expected(t, *v), x, t_x, T)

    def _expected(self, t: float, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
        r, alpha, a, b = self.params_
        x, t_x, T = (np.asarray(v, dtype=float) for v in (x, t_x, T))
        if t <= 0:
            return np.zeros_like(x)
        z = t / (alpha + T + t)
        hyp = hyp2f1(r + x, b + x, a + b + x - 1, z)
        num = (
            (a + b + x - 1)
            / (a - 1)
            * (1 - np.exp((r + x) * np.log((alpha + T) / (alpha + T + t))) * hyp)
        )
        return num * self._p_alive(x, t_x, T)


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


def gamma_gamma_negll(x: np.ndarray, m: np.ndarray) -> Callable[[np.ndarray], float]:
    """The summed Gamma-Gamma negative log-likelihood as a function of (p, q, gamma), with one
    logarithm per customer per call: the terms in ``x`` alone are summed once per distinct
    ``x`` (few: purchase counts), and the terms linear in ``log m`` are precomputed. Equal to
    ``-gamma_gamma_loglik(params, x, m).sum()``; 5x faster at 700k repeat buyers, where
    ``m`` is continuous and the histories do not compress."""
    xs, counts = np.unique(x, return_counts=True)
    log_m = np.log(m)
    sum_x_log_m = float(np.dot(x, log_m))
    sum_log_m = float(log_m.sum())
    xs_log_xs = xs * np.log(xs)
    spend = m * x

    def negll(params: np.ndarray) -> float:
        p, q, gamma = params
        log_total = np.log(gamma + spend)
        per_x = gammaln(p * xs + q) - gammaln(p * xs) + p * xs_log_xs
        ll = (
            float(np.dot(counts, per_x))
            + len(x) * (q * np.log(gamma) - gammaln(q))
            + p * sum_x_log_m
            - sum_log_m
            - p * float(np.dot(x, log_total))
            - q * float(log_total.sum())
        )
        return -ll

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
        negll = gamma_gamma_negll(x[use], m[use])
        start = np.array([1.0, 2.0, max(float(np.median(m[use])), 1e-3)])
        self.fit_ = _fit(negll, start, self.names, int(use.sum()), "Gamma-Gamma")
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

    def discounted_purchases(x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
        total = np.zeros(len(x))
        prev = np.zeros(len(x))
        for i in range(1, months + 1):
            cur = bg._expected(i * step, x, t_x, T)
            total += (cur - prev) / (1 + monthly) ** i
            prev = cur
        return total

    # spend per purchase is constant per customer, so the sum factors: one pass over the
    # distinct (x, t_x, T) histories, then one multiplication per customer
    return _per_distinct(discounted_purchases, x, t_x, T) * gg.expected_spend(x, m)


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
