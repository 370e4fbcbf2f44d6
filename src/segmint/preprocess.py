"""Features → float32 matrix: impute, log-transform skewed columns, clip outliers, scale, one-hot.

``LogClip`` is written here because scikit-learn has no transformer that *learns* which
columns are skewed and robust (IQR) clip bounds, and we need the counts of what it changed
for the run's report; the rest is stock scikit-learn.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.utils.validation import check_is_fitted


def signed_log1p(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.log1p(np.abs(x))


class LogClip(TransformerMixin, BaseEstimator):
    """Signed log1p on skewed columns, then clip to robust bounds learned at fit.

    Parameters
    ----------
    skew_threshold : float, default=1.0
        Columns with |sample skewness| above this are log-transformed.
    iqr_factor : float, default=3.0
        Bounds are Q1 - f*IQR and Q3 + f*IQR (after the log), widened to the 0.1% and
        99.9% quantiles so a column that is mostly one value is not flattened.

    Attributes
    ----------
    log_mask_ : ndarray of bool, shape (n_features,)
    lower_, upper_ : ndarray, shape (n_features,)
    n_clipped_ : ndarray of int, shape (n_features,)
        Values clipped in the data it was fitted on.
    """

    def __init__(self, *, skew_threshold: float = 1.0, iqr_factor: float = 3.0) -> None:
        self.skew_threshold = skew_threshold
        self.iqr_factor = iqr_factor

    def fit(self, X: Any, y: Any = None) -> LogClip:
        X = np.asarray(X, dtype=np.float64)
        self.n_features_in_ = X.shape[1]
        with np.errstate(all="ignore"):
            skew = np.nan_to_num(stats.skew(X, axis=0, bias=False), nan=0.0)
        self.log_mask_ = np.abs(skew) > self.skew_threshold
        Z = self._log(X)
        q = np.quantile(Z, [0.001, 0.25, 0.75, 0.999], axis=0)
        iqr = q[2] - q[1]
        self.lower_ = np.minimum(q[1] - self.iqr_factor * iqr, q[0])
        self.upper_ = np.maximum(q[2] + self.iqr_factor * iqr, q[3])
        self.n_clipped_ = ((Z < self.lower_) | (Z > self.upper_)).sum(axis=0)
        return self

    def _log(self, X: np.ndarray) -> np.ndarray:
        Z = np.array(X, dtype=np.float64, order="F")  # column-major: each column contiguous
        for j in np.flatnonzero(self.log_mask_):
            col = Z[:, j]
            if np.nanmin(col, initial=0.0) >= 0:
                np.log1p(col, out=col)
            else:
                col[:] = signed_log1p(col)
        return Z

    def count_clipped(self, X: Any) -> np.ndarray:
        """Values per column that ``transform`` clips in ``X``."""
        check_is_fitted(self, "log_mask_")
        Z = self._log(np.asarray(X, dtype=np.float64))
        return ((Z < self.lower_) | (Z > self.upper_)).sum(axis=0)

    def transform(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "log_mask_")
        X = np.asarray(X, dtype=np.float64)
        return np.clip(self._log(X), self.lower_, self.upper_)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray(input_features, dtype=object)


def make_preprocessor(
    numeric: list[str],
    categorical: list[str],
    *,
    skew_threshold: float = 1.0,
    iqr_factor: float = 3.0,
    max_categories: int = 12,
) -> ColumnTransformer:
    """A ColumnTransformer for the given feature columns (float32 output)."""
    transformers = []
    if numeric:
        transformers.append(
            (
                "num",
                Pipeline(
                    [
                        ("impute", SimpleImputer(strategy="median")),
                        (
                            "logclip",
                            LogClip(skew_threshold=skew_threshold, iqr_factor=iqr_factor),
                        ),
                        ("scale", StandardScaler()),
                    ]
                ),
                numeric,
            )
        )
    if categorical:
        transformers.append(
            (
                "cat",
                Pipeline(
                    [
                        ("impute", SimpleImputer(strategy="most_frequent")),
                        (
                            "onehot",
                            OneHotEncoder(
                                handle_unknown="infrequent_if_exist",
                                max_categories=max_categories,
                                sparse_output=False,
                                dtype=np.float32,
                            ),
                        ),
                    ]
                ),
                categorical,
            )
        )
    return ColumnTransformer(transformers, remainder="drop", sparse_threshold=0.0)


def prepare_frame(frame: pd.DataFrame, numeric: list[str], categorical: list[str]) -> pd.DataFrame:
    """Columns in the dtypes the transformer expects (float64 numbers, object categories)."""
    out = pd.DataFrame(index=frame.index)
    for c in numeric:
        out[c] = pd.to_numeric(frame[c], errors="coerce").astype("float64")
    for c in categorical:
        out[c] = frame[c].astype(object).where(frame[c].notna(), np.nan)
    return out


FIT_SAMPLE = 200_000


def fit_transform(
    pre: ColumnTransformer,
    frame: pd.DataFrame,
    numeric: list[str],
    categorical: list[str],
    *,
    fit_sample: int = FIT_SAMPLE,
    seed: int = 0,
) -> np.ndarray:
    """Fit on at most ``fit_sample`` random customers (medians, quantiles, means and scales
    from 200k rows are as good as from millions, and full-column sorts dominate otherwise),
    then transform everyone."""
    data = prepare_frame(frame, numeric, categorical)
    if len(data) > fit_sample:
        idx = np.sort(np.random.default_rng(seed).choice(len(data), fit_sample, replace=False))
        pre.fit(data.iloc[idx])
    else:
        pre.fit(data)
    return np.ascontiguousarray(pre.transform(data), dtype=np.float32)


def transform(
    pre: ColumnTransformer, frame: pd.DataFrame, numeric: list[str], categorical: list[str]
) -> np.ndarray:
    X = pre.transform(prepare_frame(frame, numeric, categorical))
    return np.ascontiguousarray(X, dtype=np.float32)


def preprocessing_report(
    pre: ColumnTransformer, frame: pd.DataFrame, numeric: list[str], categorical: list[str]
) -> dict[str, Any]:
    """What the fitted transformer did to the training data: imputed, logged, clipped."""
    imputed = {c: int(n) for c in [*numeric, *categorical] if (n := frame[c].isna().sum())}
    report: dict[str, Any] = {"imputed": imputed, "log_transformed": [], "clipped": {}}
    if numeric:
        steps = pre.named_transformers_["num"].named_steps
        lc: LogClip = steps["logclip"]
        report["log_transformed"] = [c for c, m in zip(numeric, lc.log_mask_, strict=True) if m]
        imputed_values = steps["impute"].transform(prepare_frame(frame, numeric, []))
        clipped = lc.count_clipped(imputed_values)
        report["clipped"] = {c: int(n) for c, n in zip(numeric, clipped, strict=True) if n > 0}
    if categorical:
        enc: OneHotEncoder = pre.named_transformers_["cat"].named_steps["onehot"]
        report["one_hot"] = {
            c: [str(v) for v in cats] for c, cats in zip(categorical, enc.categories_, strict=True)
        }
    return report


def categorical_groups(pre: ColumnTransformer, n_numeric: int) -> list[list[int]]:
    """Output-column indices of each categorical feature's one-hot block, in order (the
    numeric block comes first, ``n_numeric`` columns)."""
    if "cat" not in pre.named_transformers_:
        return []
    onehot = pre.named_transformers_["cat"].named_steps["onehot"]
    infrequent = getattr(onehot, "infrequent_categories_", None) or [None] * len(onehot.categories_)
    groups, start = [], n_numeric
    for cats, rare in zip(onehot.categories_, infrequent, strict=True):
        width = len(cats) - (len(rare) - 1 if rare is not None else 0)
        groups.append(list(range(start, start + width)))
        start += width
    return groups
