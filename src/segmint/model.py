"""The fitted preprocessing + clustering model: predict new customers, save and load safely.

Saved with skops (no pickle). A model file must never run code, so loading it is guarded
twice, both before anything in it is built:

1. its HMAC signature (``model.skops.sig``, ``segmint.signing``) must prove that this
   installation's key wrote these exact bytes — a swapped or edited file is refused;
2. every type it names must be in segmint's exact allow-list (``segmint.model_types``:
   only the classes segmint writes, never a function) — so even a file signed with a
   stolen key cannot smuggle in ``FunctionTransformer(numpy.vectorize(...))`` or
   ``builtins.eval``.

``save`` checks its own output against the same list and signs it. The file carries
segmint's version and the run's config hash; a model from another minor version is
refused with a clear message. ``trust_model_file`` (``segmint trust``) re-signs a model
copied from another machine after checking its types without loading it.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import skops.io as sio

from segmint import model_types, preprocess, signing
from segmint._version import __version__
from segmint.cluster.base import Assigner
from segmint.exceptions import ArtifactError, InputError
from segmint.explain.personas import NOISE_NAME


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
            from segmint.predictive.churn import churn_probability

            churn = self.churn
            missing = [c for c in churn["features"] if c not in frame.columns]
            if missing:
                raise InputError(
                    f"the run's churn model needs feature(s) {', '.join(map(repr, missing))}.",
                    expected="order lines with the same columns as the training data",
                    code="input.missing_column",
                )
            scores["churn_probability"] = churn_probability(
                churn["model"], churn["features"], frame
            )
        return scores

    def save(self, path: str | Path) -> None:
        """Write the model and its signature (``<path>.sig``). A type outside the
        allow-list in what would be written is a segmint bug: nothing is written then."""
        p = Path(path)
        payload = {
            "preprocessor": self.preprocessor,
            "estimator": self.estimator,
            "meta": json.dumps(self.meta, default=str),
        }
        if self.churn is not None:
            payload["churn"] = self.churn
        data = sio.dumps(payload)
        bad = model_types.audit(data).unexpected
        if bad:
            raise RuntimeError(
                f"segmint bug: the model to save holds types outside segmint's allow-list "
                f"({', '.join(bad)}), so it could not be loaded again; nothing was written. "
                "Add them to segmint.model_types.ALLOWED_TYPES if they are classes, with a test."
            )
        key = signing.load_key()  # before writing: a key problem leaves no unsigned model
        p.write_bytes(data)  # store.py writes the run folder aside and swaps it in whole
        signing.write_signature(p, data, key)

    @classmethod
    def load(cls, path: str | Path, *, expected_hash: str | None = None) -> SegmentationModel:
        """The model at ``path``, after its signature and types are checked (see the module
        docstring); ``expected_hash`` is the run manifest's config hash."""
        p = Path(path)
        data = _read_model_bytes(p)
        signing.verify(p, data)  # on the raw bytes, before anything is parsed
        untrusted = _checked_types(p, data).untrusted
        try:
            payload = sio.loads(data, trusted=list(untrusted))
            meta = json.loads(payload["meta"])
        except Exception as exc:  # signed and allowed, yet not buildable: corrupt/foreign
            raise ArtifactError(
                f"{p}: the model could not be rebuilt ({type(exc).__name__}: {exc}). "
                "Re-run the segmentation."
            ) from None
        saved = str(meta.get("version", "?"))
        if saved.split(".")[:2] != __version__.split(".")[:2]:
            raise ArtifactError(
                f"{p}: the model was saved by segmint {saved}; this is {__version__}. "
                "Re-run the segmentation with this version."
            )
        if expected_hash and meta.get("config_hash") != expected_hash:
            raise ArtifactError(
                f"{p}: the model's config hash {meta.get('config_hash')} does not match the "
                f"run manifest's {expected_hash}; the run folder mixes files from two runs.",
                code="model.mismatch",
            )
        return cls(payload["preprocessor"], payload["estimator"], meta, payload.get("churn"))


def _read_model_bytes(p: Path) -> bytes:
    """The model file's bytes, read once: the signature, the type check and the load all
    see the same bytes, so the file cannot be swapped between the checks and the load."""
    if not p.is_file():
        raise ArtifactError(
            f"{p}: the model file does not exist (is this a segmint run?).", code="artifact.missing"
        )
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise ArtifactError(f"{p}: the model file cannot be read ({exc}).") from None
    if not zipfile.is_zipfile(io.BytesIO(data)):  # the zip's directory only, nothing built
        raise ArtifactError(f"{p}: not a readable skops model (not a zip archive).")
    return data


def _checked_types(p: Path, data: bytes) -> model_types.Audit:
    """The file's types, listed without loading it; refuses any outside the allow-list."""
    try:
        found = model_types.audit(data)
    except Exception as exc:  # zipfile/json/skops errors on a damaged or foreign file
        raise ArtifactError(f"{p}: not a readable skops model ({exc}).") from None
    if found.unexpected:
        raise ArtifactError(
            f"{p}: the model file contains types segmint never writes: "
            f"{', '.join(found.unexpected)}. A segmint model holds only the classes segmint "
            "writes, never functions, so this file was not made by segmint (or was tampered "
            "with); it was not loaded.",
            code="model.untrusted",
        )
    return found


def trust_model_file(path: str | Path) -> dict[str, Any]:
    """Check a model's types against the allow-list WITHOUT loading it, then sign it with
    this machine's key (for a run copied from another machine). Returns the types, the
    key id and source, and what the signature was before."""
    p = Path(path)
    data = _read_model_bytes(p)
    found = _checked_types(p, data)
    key = signing.load_key()
    before = signing.status(p, data, key)
    signing.write_signature(p, data, key)
    return {
        "path": p,
        "types": sorted(found.declared),
        "key_id": key.key_id,
        "key_source": key.source,
        "before": before,
    }
