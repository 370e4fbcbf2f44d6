"""The fitted preprocessing + clustering model: predict new customers, save and load safely.

Saved with skops (no pickle): loading lists the file's types and refuses any that are not
scikit-learn/numpy or segmint's own transformers. The file carries segmint's version and the
run's config hash; a model from another minor version is refused with a clear message.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import skops.io as sio

from . import preprocess
from ._version import __version__
from .cluster.base import Assigner
from .exceptions import ArtifactError, InputError

_TRUSTED_PREFIXES = ("sklearn.", "numpy.", "scipy.", "segmint.", "builtins.")


NOISE_NAME = "Outliers"


def score_matrix(
    X: np.ndarray,
    assigner: Assigner,
    names: list[str],
    ids: pd.Series,
    *,
    labels: np.ndarray | None = None,
    low_confidence: float = 0.6,
) -> pd.DataFrame:
    """customer_id, segment, segment_name, distance, confidence for preprocessed rows (noise
    is segment -1, "Outliers"). Mixture models add ``prob_<segment>`` columns and
    ``low_confidence`` (top posterior below the threshold). ``labels`` (from the fit)
    override the assigner's labels for the training customers."""
    lab, dist, conf = assigner.score(X)
    if labels is not None:
        lab = np.asarray(labels, dtype=np.int32)
    named = np.asarray([*names, NOISE_NAME], dtype=object)
    out = pd.DataFrame(
        {
            "customer_id": ids.to_numpy(),
            "segment": lab.astype(np.int32),
            "segment_name": named[np.where(lab < 0, len(names), lab)],
            "distance": dist,
            "confidence": conf,
        }
    )
    proba = assigner.proba(X)
    if proba is not None:
        for j in range(proba.shape[1]):
            out[f"prob_{j}"] = proba[:, j]
        out["low_confidence"] = out["confidence"] < low_confidence
    return out


class SegmentationModel:
    """Preprocessor + fitted centres + everything needed to featurise new data.

    Parameters
    ----------
    preprocessor : sklearn ColumnTransformer (fitted)
    estimator : segmint.cluster.base.Assigner (places new customers in the segments)
    meta : dict
        JSON-serialisable: version, config_hash, settings, kind, numeric, categorical,
        categories (for category-share features), segment_names.
    churn : dict or None
        ``{"model": fitted classifier, "features": [...]}`` when the run fitted a churn
        model: new customers then get ``churn_probability`` too.
    """

    def __init__(
        self,
        preprocessor: Any,
        estimator: Any,
        meta: dict[str, Any],
        churn: dict[str, Any] | None = None,
    ) -> None:
        self.preprocessor = preprocessor
        self.estimator = estimator
        self.meta = meta
        self.churn = churn

    @property
    def numeric(self) -> list[str]:
        return list(self.meta["numeric"])

    @property
    def categorical(self) -> list[str]:
        return list(self.meta["categorical"])

    @property
    def segment_names(self) -> list[str]:
        return list(self.meta["segment_names"])

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        return preprocess.transform(self.preprocessor, frame, self.numeric, self.categorical)

    def predict_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        """customer_id, segment, segment_name, distance, confidence for a features frame,
        and ``churn_probability`` when the run fitted a churn model."""
        X = self.transform(frame)
        low = self.meta.get("settings", {}).get("clustering", {}).get("low_confidence", 0.6)
        scores = score_matrix(
            X, self.estimator, self.segment_names, frame["customer_id"], low_confidence=low
        )
        if self.churn is not None:
            from .churn import churn_probability

            churn = self.churn
            missing = [c for c in churn["features"] if c not in frame.columns]
            if missing:
                raise InputError(
                    f"the run's churn model needs feature(s) {', '.join(map(repr, missing))}.",
                    expected="order lines with the same columns as the training data",
                )
            scores["churn_probability"] = churn_probability(
                churn["model"], churn["features"], frame
            )
        return scores

    def save(self, path: str | Path) -> None:
        payload = {
            "preprocessor": self.preprocessor,
            "estimator": self.estimator,
            "meta": json.dumps(self.meta, default=str),
        }
        if self.churn is not None:
            payload["churn"] = self.churn
        sio.dump(payload, str(path))

    @classmethod
    def load(cls, path: str | Path, *, expected_hash: str | None = None) -> SegmentationModel:
        p = Path(path)
        if not p.is_file():
            raise ArtifactError(f"{p}: the model file does not exist (is this a segmint run?).")
        try:
            untrusted = sio.get_untrusted_types(file=str(p))
        except Exception as exc:  # skops raises zipfile/KeyError/... on foreign files
            raise ArtifactError(f"{p}: not a readable skops model ({exc}).") from None
        bad = [t for t in untrusted if not t.startswith(_TRUSTED_PREFIXES)]
        if bad:
            raise ArtifactError(
                f"{p}: the model file contains types segmint does not trust: {', '.join(bad)}. "
                "It was not made by segmint; it was not loaded."
            )
        payload = sio.load(str(p), trusted=untrusted)
        meta = json.loads(payload["meta"])
        saved = str(meta.get("version", "?"))
        if saved.split(".")[:2] != __version__.split(".")[:2]:
            raise ArtifactError(
                f"{p}: the model was saved by segmint {saved}; this is {__version__}. "
                "Re-run the segmentation with this version."
            )
        if expected_hash and meta.get("config_hash") != expected_hash:
            raise ArtifactError(
                f"{p}: the model's config hash {meta.get('config_hash')} does not match the "
                f"run manifest's {expected_hash}; the run folder mixes files from two runs."
            )
        return cls(payload["preprocessor"], payload["estimator"], meta, payload.get("churn"))
