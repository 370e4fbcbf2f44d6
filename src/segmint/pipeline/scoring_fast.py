"""A saved model's predict, compiled for one request's few customers.

``SegmentationModel.predict_frame`` costs ~5 ms whatever the number of rows: the
``ColumnTransformer`` and pandas overhead around a few microseconds of arithmetic. Real-time
scoring answers one customer in well under a millisecond by evaluating the *same fitted
objects* without the overhead: the numeric branch (median imputer → ``LogClip`` →
``StandardScaler``) from the imputer's statistics, ``LogClip.transform`` itself and the
scaler's mean and scale, in the same order and precision as scikit-learn; the categorical
branch, the segmenter's ``Assigner``, ``score_matrix`` and the churn model are called as
they are.

The compiled form is trusted only after it reproduces ``model.transform`` bit for bit on
probe rows built from the model (medians, values around and beyond the clipping bounds,
missing values, unknown categories); a preprocessor of another shape, or any difference,
makes ``FastModel`` use ``model.transform`` instead (``compiled`` says which). Compiled
models are kept per model object (weakly: they go when the model leaves the cache).
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

import numpy as np
import pandas as pd

from segmint import preprocess
from segmint.config import Settings
from segmint.model import SegmentationModel, score_matrix

__all__ = ["FastModel", "fast_model"]


class FastModel:
    """``model.predict_frame`` for a features frame, without the per-call overhead.

    ``predict(frame)`` gives exactly the columns and values ``model.predict_frame(frame)``
    gives (checked on every customer of real runs by ``tests/test_scoring_api.py``).
    """

    def __init__(self, model: SegmentationModel) -> None:
        self.model = model
        self.numeric = model.numeric
        self.categorical = model.categorical
        settings = model.meta.get("settings", {}) or {}
        self.low_confidence = settings.get("clustering", {}).get("low_confidence", 0.6)
        self._settings: Settings | None = None
        self._num: tuple[np.ndarray, Any, np.ndarray, np.ndarray] | None = None
        self._cat: Any = None
        self.compiled = self._compile() and self._agrees()

    @property
    def settings(self) -> Settings:
        """The run's settings, validated once (``Settings`` are immutable values)."""
        if self._settings is None:
            self._settings = Settings.build(self.model.meta["settings"])
        return self._settings

    # -- compile ---------------------------------------------------------------------------
    def _compile(self) -> bool:
        """Recognise make_preprocessor's shape and keep its fitted parameters."""
        pre = self.model.preprocessor
        try:
            fitted = [(n, t, list(c)) for n, t, c in pre.transformers_ if n != "remainder"]
        except (AttributeError, TypeError, ValueError):
            return False
        expected = [("num", self.numeric)] if self.numeric else []
        expected += [("cat", self.categorical)] if self.categorical else []
        if [(n, c) for n, t, c in fitted] != expected:
            return False
        for name, pipe, _ in fitted:
            steps = getattr(pipe, "named_steps", {})
            if name == "num":
                if list(steps) != ["impute", "logclip", "scale"]:
                    return False
                imp, lc, sc = steps["impute"], steps["logclip"], steps["scale"]
                if getattr(imp, "add_indicator", True) or imp.strategy != "median":
                    return False
                if not isinstance(lc, preprocess.LogClip):
                    return False
                if not (sc.with_mean and sc.with_std):
                    return False
                stats = np.asarray(imp.statistics_, dtype=np.float64)
                if stats.shape != (len(self.numeric),) or np.isnan(stats).any():
                    return False
                self._num = (stats, lc, np.asarray(sc.mean_), np.asarray(sc.scale_))
            else:
                self._cat = pipe
        return True

    def _agrees(self) -> bool:
        """Whether the compiled transform equals ``model.transform`` on probe rows."""
        probe = self._probe()
        try:
            fast = self._transform_compiled(probe)
        except Exception:  # a shape the compiled form does not cover: use the model's own
            return False
        ref = self.model.transform(probe)
        return fast.shape == ref.shape and bool(np.array_equal(fast, ref, equal_nan=True))

    def _probe(self) -> pd.DataFrame:
        cols: dict[str, list[Any]] = {}
        if self._num is not None:
            stats, lc, mean, scale = self._num
            with np.errstate(all="ignore"):
                big = np.expm1(np.minimum(np.asarray(lc.upper_, dtype=np.float64), 700.0)) * 2
            for j, c in enumerate(self.numeric):
                lo, hi = float(lc.lower_[j]), float(lc.upper_[j])
                span = max(abs(hi - lo), 1.0)
                base = [float(stats[j]), float(mean[j]), float(mean[j]) + float(scale[j])]
                edges = [lo - span, hi + span, float(big[j])]
                cols[c] = [*base, *edges, 0.0, -1.0, np.nan]
        n = max((len(v) for v in cols.values()), default=0)
        if self._cat is not None:
            enc = self._cat.named_steps.get("onehot") if hasattr(self._cat, "named_steps") else None
            cats = getattr(enc, "categories_", None) or [[] for _ in self.categorical]
            for j, c in enumerate(self.categorical):
                known = [str(v) for v in list(cats[j])[:3]]
                vals = [*known, "\x00unseen\x00", None]
                cols[c] = vals
                n = max(n, len(vals))
        if not cols:
            return pd.DataFrame({"customer_id": []})
        out = {c: (v * n)[:n] for c, v in cols.items()}
        frame = pd.DataFrame(out)
        frame.insert(0, "customer_id", [f"probe{i}" for i in range(n)])
        return frame

    # -- transform and predict --------------------------------------------------------------
    def _transform_compiled(self, frame: Any, numeric: np.ndarray | None = None) -> np.ndarray:
        blocks: list[np.ndarray] = []
        if self._num is not None:
            stats, lc, mean, scale = self._num
            A = numeric_matrix(frame, self.numeric) if numeric is None else numeric
            missing = np.isnan(A)
            if missing.any():
                A = np.where(missing, stats, A)
            Z = lc.transform(A)  # float64, a fresh array
            Z -= mean
            Z /= scale
            blocks.append(Z)
        if self._cat is not None:
            cats = pd.DataFrame({c: np.asarray(frame[c], dtype=object) for c in self.categorical})
            prepared = preprocess.prepare_frame(cats, [], self.categorical)
            blocks.append(np.asarray(self._cat.transform(prepared)))
        X = blocks[0] if len(blocks) == 1 else np.hstack(blocks)
        return np.ascontiguousarray(X, dtype=np.float32)

    def transform(self, frame: Any, numeric: np.ndarray | None = None) -> np.ndarray:
        """The float32 matrix ``model.transform(frame)`` gives. ``frame`` is a DataFrame or
        a dict of columns; ``numeric``, when the caller has it, is the float64 matrix of
        the model's numeric columns (``numeric_matrix``)."""
        if self.compiled:
            return self._transform_compiled(frame, numeric)
        return self.model.transform(pd.DataFrame(frame) if isinstance(frame, dict) else frame)

    def predict(self, frame: Any, numeric: np.ndarray | None = None) -> pd.DataFrame:
        """What ``model.predict_frame(frame)`` returns. ``frame`` (a DataFrame or a dict of
        columns) has ``customer_id`` and every feature the model and its churn model use
        (``scoring`` checks that first)."""
        m = self.model
        X = self.transform(frame, numeric)
        ids = pd.Series(np.asarray(frame["customer_id"], dtype=object))
        scores = score_matrix(
            X, m.estimator, m.segment_names, ids, low_confidence=self.low_confidence
        )
        if m.churn is not None:
            churn = m.churn
            # churn_probability(model, features, frame) is predict_proba(frame[features])[:, 1];
            # here the frame holds exactly those columns, in order, as one float64 block
            # under a plain (object) column index: what the classifier converts any frame
            # to, without pandas' selection and per-column checks (two thirds of its time)
            names = list(churn["features"])
            inputs = pd.DataFrame(
                numeric_matrix(frame, names), columns=pd.Index(names, dtype=object)
            )
            scores["churn_probability"] = churn["model"].predict_proba(inputs)[:, 1]
        return scores


def numeric_matrix(frame: Any, columns: list[str]) -> np.ndarray:
    """``preprocess.prepare_frame``'s numbers as one float64 matrix (non-numbers NaN)."""
    out = np.empty((len(frame["customer_id"]), len(columns)), dtype=np.float64)
    for j, c in enumerate(columns):
        col = frame[c]
        if isinstance(col, np.ndarray) and col.dtype.kind in "fiub":
            out[:, j] = col
        elif isinstance(col, pd.Series) and col.dtype.kind in "fiub":
            out[:, j] = col.to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            out[:, j] = pd.to_numeric(pd.Series(col), errors="coerce").astype("float64")
    return out


_compiled: weakref.WeakKeyDictionary[SegmentationModel, FastModel] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def fast_model(model: SegmentationModel) -> FastModel:
    """The compiled form of ``model``, built once per model object (thread-safe)."""
    with _lock:
        found = _compiled.get(model)
        if found is None:
            found = _compiled[model] = FastModel(model)
        return found
