"""Score new customers with a saved model: same reading, cleaning and features as training."""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from . import io
from .config import Settings
from .exceptions import ArtifactError, InputError
from .features import build_features
from .ingest import Ingested, ingest
from .model import SegmentationModel


@dataclass
class Prediction:
    scores: pd.DataFrame
    ingested: Ingested
    info: dict


def load_run_model(run_dir: str | Path) -> SegmentationModel:
    """The model of a run folder, checked against the folder's manifest: the config hash, and
    the model's sha256 the manifest records (a folder whose model was copied from another run,
    or left over from an interrupted write by an older segmint, is refused)."""
    import json

    from .digest import file_sha256

    d = Path(run_dir)
    manifest = d / "manifest.json"
    if not manifest.is_file():
        raise ArtifactError(f"{d}: not a segmint run folder (no manifest.json).")
    try:
        m = json.loads(manifest.read_text())
        expected = m["config_hash"]
    except (ValueError, KeyError, TypeError):
        raise ArtifactError(
            f"{manifest}: the manifest is not valid JSON with a config_hash."
        ) from None
    # absent in run folders written before the hashes were recorded
    want = ((m.get("artifacts") or {}).get("model.skops") or {}).get("sha256")
    path = d / "model.skops"
    if want is not None:
        got = file_sha256(path) if path.is_file() else None
        if got != want:
            found = f"sha256 {got[:12]}" if got else "missing"
            raise ArtifactError(
                f"{path}: the file does not match the run's manifest ({found}; the manifest "
                f"records sha256 {want[:12]}): the folder mixes files from two runs. Use the "
                "run folder the model came from, or run 'segmint run' again into this folder."
            )
    return SegmentationModel.load(path, expected_hash=expected)


def predict_detailed(
    model: SegmentationModel, data: Any, *, observation_end: str | None = None
) -> Prediction:
    """Score ``data`` (path, DataFrame, or a list of them) with ``model``."""
    inputs = data if isinstance(data, list) else [data]
    settings = Settings.build(model.meta["settings"])
    if observation_end:
        settings = settings.merged({"observation_end": observation_end})
    end = _dt.datetime.fromisoformat(settings.observation_end) if settings.observation_end else None
    con = io.connect(memory_limit=settings.memory_limit)
    ing = ingest(inputs, settings, con, reference=end)
    kinds_trained = set(model.meta.get("kinds", []))
    kinds_now = {i["kind"] for i in ing.inputs}
    if kinds_trained != kinds_now:
        raise InputError(
            f"the model was trained on {' + '.join(sorted(kinds_trained))} data but was given "
            f"{' + '.join(sorted(kinds_now))} data.",
            expected="inputs of the same kind(s) as the training run",
            path=", ".join(i["path"] for i in ing.inputs),
        )
    feats = build_features(
        ing.transactions,
        ing.customers,
        observation_end=end,
        categories=model.meta.get("categories"),
        clv=settings.clv if model.meta.get("clv_params") else None,
        clv_params=model.meta.get("clv_params"),
    )
    churn_inputs = model.churn["features"] if model.churn else []
    needed = [*model.numeric, *model.categorical, *churn_inputs]
    missing = [c for c in needed if c not in feats.frame.columns]
    if missing:
        raise InputError(
            f"the data lacks feature(s) the model uses: {', '.join(map(repr, missing))}.",
            expected="the same attribute columns as the training data",
            path=", ".join(i["path"] for i in ing.inputs),
        )
    return Prediction(model.predict_frame(feats.frame), ing, feats.info)


def predict(model: SegmentationModel, data: Any, **kwargs: Any) -> pd.DataFrame:
    """``customer_id, segment, segment_name, distance, confidence`` for each customer."""
    return predict_detailed(model, data, **kwargs).scores
