"""Maximum likelihood for the CLV models: positive parameters searched on the log scale
(L-BFGS-B with analytic gradients), Newton steps from that optimum to the precision of the
gradient, standard errors from the Hessian (central differences of the analytic gradient),
and the helpers that let a likelihood run once per *distinct* customer history.

Why written here: scipy provides the optimiser; what it does not provide is the polish the
published estimates need (L-BFGS-B's default stop leaves the flat directions of BG/NBD and
Gamma-Gamma loose in the 4th significant figure) and diagnostics an analyst can read
(convergence, a flat likelihood, unavailable standard errors).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.optimize import minimize

from segmint.exceptions import ModelError


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
            # parameters are positive: the interval is symmetric on the log scale (delta method);
            # none when it spans more than e^700 (an estimate at the edge of its range)
            z = 1.96 * se / v if v > 0 else np.nan
            spread = np.exp(z) if z <= 700 else np.nan
            rows.append(dict(param=k, estimate=v, se=se, ci_low=v / spread, ci_high=v * spread))
        return pd.DataFrame(rows)


def distinct(cols: list[np.ndarray]) -> tuple[list[np.ndarray], np.ndarray]:
    """Distinct rows of the columns and each input row's index among them (a pandas
    group-by: 15x faster than ``np.unique(axis=0)`` at a million rows)."""
    frame = pd.DataFrame({i: c for i, c in enumerate(cols)})
    codes = frame.groupby(list(frame.columns), sort=False).ngroup().to_numpy()
    first = np.empty(int(codes.max()) + 1, dtype=np.int64)
    first[codes[::-1]] = np.arange(len(codes))[::-1]
    return [c[first] for c in cols], codes


def compress(*cols: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """Distinct rows of the columns and how many customers share each."""
    uniq, codes = distinct([np.asarray(c, dtype=float) for c in cols])
    return uniq, np.bincount(codes).astype(float)


NegLL = Callable[[np.ndarray], tuple[float, np.ndarray]]


def _hessian(grad: Callable[[np.ndarray], np.ndarray], x: np.ndarray) -> np.ndarray:
    """Hessian by central differences of the analytic gradient, with relative steps that
    never leave the positive parameters (a step larger than a tiny estimate would evaluate
    logarithms of negative numbers). A gradient that is not finite there makes the Hessian
    not finite, which the caller reports as a flat likelihood."""
    n = len(x)
    h = np.minimum(1e-5 * np.maximum(np.abs(x), 1e-2), 0.5 * np.abs(x))
    H = np.empty((n, n))
    with np.errstate(all="ignore"):
        for i in range(n):
            e = np.zeros(n)
            e[i] = h[i]
            H[:, i] = (grad(x + e) - grad(x - e)) / (2 * h[i])
    return (H + H.T) / 2


def _newton(
    negll: NegLL, params: np.ndarray, max_iter: int = 8
) -> tuple[np.ndarray, np.ndarray, int, bool]:
    """Newton steps from an L-BFGS-B optimum, with the Hessian of the analytic gradient;
    returns the parameters, the Hessian, the number of evaluations and whether the steps
    converged.

    L-BFGS-B stops on a relative reduction of the objective, which leaves the flat
    directions of these likelihoods (BG/NBD's a, b; Gamma-Gamma's p, gamma) loose in the
    4th significant figure by default, and ~1e-5 with the tightest tolerances; Newton steps
    converge from there to the precision of the gradient. The Hessian is computed once, at
    the start (close enough to the optimum that each step gains ~3 digits) and once more at
    the optimum, for the standard errors, if the steps moved. A step is kept only if the
    likelihood does not get worse (beyond rounding); the steps stop once one moves every
    parameter by < 1e-10, or at once where the Hessian is not positive definite (a flat
    ridge)."""

    def hessian(p: np.ndarray) -> np.ndarray:
        return _hessian(lambda q: negll(q)[1], p)

    start = params
    H = hessian(params)
    evals = 2 * len(params)
    try:
        if not np.isfinite(H).all() or np.linalg.eigvalsh(H).min() <= 0:
            return params, H, evals, False
        H_inv = np.linalg.inv(H)
    except np.linalg.LinAlgError:
        return params, H, evals, False
    f0, g = negll(params)
    evals += 1
    for _ in range(max_iter):
        step = H_inv @ g
        t = 1.0
        while t >= 1 / 64:
            cand = params - t * step
            if (cand > 0).all():
                with np.errstate(all="ignore"):
                    f1, g1 = negll(cand)
                evals += 1
                if np.isfinite(f1) and np.isfinite(g1).all() and f1 <= f0 + 1e-14 * abs(f0):
                    break
            t /= 2
        else:
            return params, H, evals, False
        params, f0, g = cand, f1, g1
        if np.max(np.abs(t * step) / params) < 1e-10:
            if np.max(np.abs(params - start) / params) > 1e-8:
                H = hessian(params)
                evals += 2 * len(params)
            return params, H, evals, True
    return params, H, evals, False


def fit_mle(
    negll: NegLL,
    start: np.ndarray,
    names: tuple[str, ...],
    n: int,
    model: str,
) -> Fit:
    """Maximum likelihood: ``negll(params)`` returns the summed negative log-likelihood and its
    gradient in the natural (positive) parameters; the search runs on their logarithms."""

    def obj(logp: np.ndarray) -> tuple[float, np.ndarray]:
        theta = np.exp(logp)
        with np.errstate(all="ignore"):
            v, g = negll(theta)
        if not (np.isfinite(v) and np.isfinite(g).all()):
            return 1e100, np.zeros_like(logp)
        return float(v) / n, g * theta / n

    best = None
    for shift in (0.0, 1.0, -1.0):
        res = minimize(
            obj, np.log(start) + shift, jac=True, method="L-BFGS-B", options={"maxiter": 2000}
        )
        if best is None or res.fun < best.fun:
            best = res
        if res.success:
            break
    assert best is not None
    params, H, polish_evals, done = _newton(negll, np.exp(best.x))
    if best.success and not done:
        # The default stop (a relative reduction of 2e-9) can leave a flat ridge early, where
        # the Hessian is not yet positive definite; a tight pass walks on along it.
        fine = minimize(
            obj, np.log(params), jac=True, method="L-BFGS-B",
            options={"maxiter": 2000, "ftol": 1e-15, "gtol": 1e-10},
        )  # fmt: skip
        further, H2, evals, _ = _newton(negll, np.exp(fine.x))
        polish_evals += int(fine.nfev) + evals + 2
        with np.errstate(all="ignore"):
            better = negll(further)[0] <= negll(params)[0]
        if better:
            params, H = further, H2
    diag: dict = {
        "converged": bool(best.success),
        "message": str(best.message),
        "iterations": int(best.nit),
        "function_evaluations": int(best.nfev) + polish_evals,
    }
    try:
        if not np.isfinite(H).all():
            raise np.linalg.LinAlgError("the Hessian is not finite")
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
        loglik=float(-negll(params)[0]),
        n=n,
        diagnostics=diag,
    )


def dot(a: np.ndarray, b: np.ndarray) -> float:
    """Sum of products without BLAS: OpenBLAS hands long vectors to its threads, whose
    wake-up cost milliseconds per call on a busy machine (tens of them per likelihood)."""
    return float(np.einsum("i,i->", a, b))


def per_distinct(fn: Callable[..., np.ndarray], *cols: np.ndarray) -> np.ndarray:
    """Evaluate ``fn`` once per distinct row of ``cols`` (customers share few histories)."""
    arrays = [np.asarray(c, dtype=float) for c in cols]
    if len(arrays[0]) < 50_000:
        return fn(*arrays)
    uniq, codes = distinct(arrays)
    return fn(*uniq)[codes]
