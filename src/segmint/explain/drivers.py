"""What drives the segments: a surrogate classifier and permutation importance.

A histogram gradient-boosting classifier (scikit-learn; native missing values and
categoricals, fast on large samples) learns the segment labels from the *original*
features — unscaled, in the units a marketer knows. Its held-out accuracy is the
*fidelity*: how well these features, read plainly, reproduce the segmentation.

Permutation importance (scikit-learn's ``permutation_importance``) on the held-out part:
shuffling a feature and measuring how much the surrogate gets worse. Globally the score is
accuracy; per segment it is the one-vs-rest ROC AUC of that segment's predicted
probability, so "what sets segment 3 apart" has its own ranking. All scores come from one
``predict_proba`` per permutation. Intervals are 95% t-intervals over the repeats.
Correlated features share credit (shuffling one leaves the other), which the report says.

Small data (a few hundred customers, segments of one or two): the held-out split is
stratified by segment when every segment can be on both sides; otherwise each segment sends
``round(30%)`` of its customers (at least one, never all) to the test part and a
one-customer segment stays in training, so the surrogate still learns it. Such a segment has
no held-out customer, so its one-vs-rest importance is undefined and left out (listed in
``fidelity["undefined_segments"]``) rather than reported as a number. Early stopping holds
out 10% of the training part, stratified, so it is used only when every segment has at
least ``EARLY_STOPPING_MIN`` training customers; below that the surrogate runs its fixed 50
rounds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sps
from scipy.stats import rankdata
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.inspection import permutation_importance
from sklearn.metrics import accuracy_score, make_scorer
from sklearn.model_selection import train_test_split

from segmint.exceptions import InputError

EARLY_STOPPING_MIN = 10  # training customers per segment for a stratified 10% validation


@dataclass
class Drivers:
    """Surrogate fidelity and permutation importances.

    Attributes
    ----------
    fidelity : dict
        ``accuracy``, ``balanced_accuracy`` on held-out customers, ``n_train``, ``n_test``.
    importance : DataFrame
        One row per feature × scope (``scope`` = ``"all"`` or the segment label) with
        ``importance`` (mean score drop), ``ci_low``, ``ci_high``, ``rank`` within scope.
    """

    fidelity: dict
    importance: pd.DataFrame

    def top(self, scope: object = "all", n: int = 5) -> pd.DataFrame:
        t = self.importance[self.importance["scope"].astype(str) == str(scope)]
        return t.sort_values("rank").head(n)


def _proba2d(p: np.ndarray) -> np.ndarray:
    # scikit-learn hands binary scorers only the positive-class column.
    return np.column_stack([1 - p, p]) if p.ndim == 1 else p


def _auc(positive: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC as the Mann–Whitney statistic on ranks (equals ``roc_auc_score``; written out
    because that function's input checks cost ten times the sum when called per permutation)."""
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(score)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _scorers(columns: dict[int, int]) -> dict:
    """Accuracy, and one one-vs-rest AUC per segment code in ``columns`` (code → column of
    the surrogate's ``predict_proba``)."""

    def acc(y: np.ndarray, p: np.ndarray) -> float:
        return accuracy_score(y, _proba2d(p).argmax(axis=1))

    def one_vs_rest(s: int, col: int) -> Callable[[np.ndarray, np.ndarray], float]:
        def auc(y: np.ndarray, p: np.ndarray) -> float:
            return _auc(y == s, _proba2d(p)[:, col])

        return auc

    out = {"all": make_scorer(acc, response_method="predict_proba")}
    for s, col in columns.items():
        out[str(s)] = make_scorer(one_vs_rest(s, col), response_method="predict_proba")
    return out


def holdout_split(y: np.ndarray, test_share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) positions: stratified by ``y`` when scikit-learn can (every class on
    both sides), else per class with one-member classes kept in training (module doc)."""
    classes, counts = np.unique(y, return_counts=True)
    n, k = len(y), len(classes)
    n_test = int(np.ceil(test_share * n))
    if counts.min() >= 2 and n_test >= k and n - n_test >= k:
        return train_test_split(np.arange(n), test_size=test_share, stratify=y, random_state=seed)
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c, m in zip(classes, counts, strict=True):
        members = rng.permutation(np.flatnonzero(y == c))
        t = 0 if m < 2 else int(np.clip(round(m * test_share), 1, m - 1))
        test.append(members[:t])
        train.append(members[t:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def explain_drivers(
    frame: pd.DataFrame,
    labels: np.ndarray,
    numeric: list[str],
    categorical: list[str],
    *,
    sample: int = 20_000,
    test_share: float = 0.3,
    repeats: int = 10,
    seed: int = 0,
) -> Drivers:
    """Fit the surrogate on a stratified sample and rank features by permutation importance.

    Parameters
    ----------
    frame : DataFrame, shape (n_customers, ...)
        Original feature values (not preprocessed).
    labels : array of int, shape (n_customers,)
        Segment labels; ``-1`` (noise) is its own class.
    sample : int, default 20,000
        Customers used in total (train + test); drawn stratified by segment.
    repeats : int, default 10
        Permutations per feature.
    """
    features = [*numeric, *categorical]
    if not features:
        raise InputError("explain_drivers needs at least one feature")
    y_all = np.asarray(labels)
    n = len(y_all)
    rng = np.random.default_rng(seed)
    idx = np.arange(n)
    if n > sample:
        _, y_codes = np.unique(y_all, return_inverse=True)
        idx, _ = train_test_split(
            idx, train_size=sample, stratify=_strata(y_codes), random_state=seed
        )
        idx = np.sort(idx)
    X = frame.iloc[idx][features].reset_index(drop=True).copy()
    for c in numeric:
        X[c] = pd.to_numeric(X[c], errors="coerce").astype("float64")
    for c in categorical:
        X[c] = X[c].astype("string").fillna("(missing)").astype(object).astype("category")
    classes, y = np.unique(y_all[idx], return_inverse=True)  # segments in the sample
    tr, te = holdout_split(y, test_share, seed)
    # a number no training customer has (a few customers, one with a value, held out) cannot
    # be learnt from, and the boosting model's binning fails on an all-missing column
    unseen = [c for c in numeric if X[c].iloc[tr].isna().all()]
    features = [f for f in features if f not in unseen]
    X = X[features]
    counts = np.bincount(y[tr], minlength=len(classes))
    model = HistGradientBoostingClassifier(  # 50 rounds at 0.2: as 100 at 0.1, half the time
        categorical_features="from_dtype",
        max_iter=50,
        learning_rate=0.2,
        early_stopping=bool(counts.min() >= EARLY_STOPPING_MIN),
        random_state=seed,
    )
    model.fit(X.iloc[tr], y[tr])
    pred = model.predict(X.iloc[te])
    held_out = np.isin(np.arange(len(classes)), y[te])
    fidelity = {
        "accuracy": float(accuracy_score(y[te], pred)),
        "balanced_accuracy": _balanced_accuracy(y[te], pred),
        "n_train": len(tr),
        "n_test": len(te),
        "model": "HistGradientBoostingClassifier",
        "undefined_segments": [_plain(classes[c]) for c in np.flatnonzero(~held_out)],
        "features_unseen": unseen,
    }
    columns = {int(c): i for i, c in enumerate(model.classes_) if held_out[c]}
    res = permutation_importance(
        model,
        X.iloc[te],
        y[te],
        scoring=_scorers(columns),
        n_repeats=repeats,
        random_state=int(rng.integers(2**31 - 1)),
    )
    imp = _importance_table(res, features, classes, repeats)
    return Drivers(fidelity=fidelity, importance=imp)


def _importance_table(
    res: dict, features: list[str], classes: np.ndarray, repeats: int
) -> pd.DataFrame:
    """One row per scope × feature: mean score drop, 95% t-interval and rank in its scope."""
    t = sps.t.ppf(0.975, repeats - 1) / np.sqrt(repeats) if repeats > 1 else 0.0
    rows = []
    for scope, r in res.items():
        mean = r.importances_mean
        sd = r.importances_std * np.sqrt(repeats / max(repeats - 1, 1))
        order = np.argsort(-np.nan_to_num(mean, nan=-np.inf), kind="stable")
        rank = np.empty(len(features), dtype=int)
        rank[order] = np.arange(1, len(features) + 1)
        label = scope if scope == "all" else classes[int(scope)]
        for j, f in enumerate(features):
            rows.append(
                dict(
                    scope=str(label),  # one type: "all" or the segment label as text
                    feature=f,
                    importance=float(mean[j]),
                    ci_low=float(mean[j] - t * sd[j]),
                    ci_high=float(mean[j] + t * sd[j]),
                    rank=int(rank[j]),
                )
            )
    return pd.DataFrame(rows)


def _balanced_accuracy(y: np.ndarray, pred: np.ndarray) -> float:
    """Mean recall over the segments among the held-out customers (scikit-learn's
    ``balanced_accuracy_score``, which warns when a tiny test part holds one segment only)."""
    return float(np.mean([np.mean(pred[y == c] == c) for c in np.unique(y)]))


def _plain(v: object) -> object:
    return v.item() if isinstance(v, np.generic) else v


def _strata(y: np.ndarray) -> np.ndarray | None:
    """Stratify when every class has at least two members (else scikit-learn refuses)."""
    _, counts = np.unique(y, return_counts=True)
    return y if counts.min() >= 2 else None
