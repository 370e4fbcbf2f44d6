"""segmint: customer segmentation and market intelligence.

>>> import segmint
>>> result = segmint.segment("orders.csv")             # doctest: +SKIP
>>> result.segments[["segment_name", "share_customers"]]  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from segmint._version import __version__
from segmint.config import Settings
from segmint.exceptions import (
    AmbiguousRunError,
    ArtifactError,
    ConfigError,
    InputError,
    OutputError,
    RegistryError,
    RunNotFoundError,
    RunStateError,
    SegmintError,
)

if TYPE_CHECKING:
    from segmint.explain.effect import EffectResult
    from segmint.model import SegmentationModel
    from segmint.pipeline.segmentation import run
    from segmint.results import RunManifest, RunResult

# Imported on first use: the pipeline pulls in scikit-learn, SciPy and skops (~2 s), which
# ``segmint --help`` and ``segmint generate`` never need.
_LAZY = {
    "EffectResult": ".explain.effect",
    "SegmentationModel": ".model",
    "RunResult": ".results",
    "RunManifest": ".results",
    "run": ".pipeline.segmentation",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'segmint' has no attribute {name!r}")


def segment(data: Any, *more: Any, settings: Settings | None = None, **options: Any) -> RunResult:
    """Segment customers from order lines and/or a customer table.

    Parameters
    ----------
    data, *more : path or pandas.DataFrame
        Order lines and/or a customer table (CSV, Parquet, Excel, or a DataFrame).
    settings : Settings, optional
        Full settings; ``options`` override them.
    **options
        Any ``Settings`` field, e.g. ``features=["recency_days", "monetary"]``,
        ``clustering={"k": 5}``, ``columns={"customer_id": "Client"}``, ``seed=1``.

    Returns
    -------
    RunResult
        ``customers``, ``segments``, ``k_selection``, ``manifest``, ``model`` (plain values);
        ``segmint.save(result)`` writes its folder, ``segmint.predict(result, data)`` scores
        new customers.
    """
    base = settings or Settings()
    s = base.merged(options)
    inputs = [data, *more]
    paths = [str(x) for x in inputs if not hasattr(x, "columns")]
    if len(paths) == len(inputs):
        s = s.merged({"inputs": paths})
    from segmint.pipeline.segmentation import run

    return run(s, inputs=inputs)


def analyze_effect(
    data: Any,
    by: str,
    on: str | list[str],
    *,
    derive: dict[str, str] | None = None,
    order: list[str] | None = None,
    bins: int = 5,
    settings: Settings | None = None,
    **options: Any,
) -> EffectResult:
    """Does attribute ``by`` change outcome(s) ``on``? Kruskal–Wallis with post-hoc pairs,
    Spearman when ``by`` is ordinal, effect sizes.

    >>> r = segmint.analyze_effect("marketing_campaign.csv", "Education", "Total_Spend",
    ...     derive={"Total_Spend": "MntWines + MntFruits + MntMeatProducts"})  # doctest: +SKIP
    >>> r.tests[["outcome", "statistic", "p_holm", "effect_size"]]  # doctest: +SKIP
    """
    from segmint.pipeline.effect import analyze_effect as _analyze

    s = (settings or Settings()).merged({**options, "derive": derive})
    outcomes = [on] if isinstance(on, str) else list(on)
    return _analyze(data, by, outcomes, s, order=order, bins=bins)[0]


def save(
    result: RunResult,
    out: str | Path | None = None,
    *,
    workspace: str | Path | None = None,
    name: str | None = None,
    tags: tuple[str, ...] | list[str] = (),
) -> Path:
    """Write ``result``'s run folder and register it in the workspace (``workspace``, else
    ``$SEGMINT_WORKSPACE``, else ``./segmint-workspace``). The folder is ``out``, else
    ``<workspace>/runs/<id>``; it is written atomically (the old folder stays whole until
    the new one is; a folder segmint did not write is refused)."""
    from segmint.pipeline.jobs import job
    from segmint.store.artifacts import save_run
    from segmint.store.workspace import Workspace

    kind = "compare" if result.comparison is not None else "run"
    with (
        Workspace.open(workspace) as ws,
        job(ws, kind, result.settings, out=out, name=name, tags=tags) as work,
    ):
        folder = save_run(result, work.folder)
        work.succeeded_with(result.manifest)
    return folder


def predict(run: RunResult | SegmentationModel | str | Path, data: Any, **options: Any) -> Any:
    """Score new customers (``data``: path(s) or DataFrame) with a run's model: a
    ``RunResult``, a ``SegmentationModel`` or a run folder. Returns ``customer_id, segment,
    segment_name, distance, confidence`` (and churn probability when the run modelled it)."""
    from segmint.pipeline.scoring import predict as _predict

    is_folder = isinstance(run, str | Path)
    model = load_model(str(run)) if is_folder else getattr(run, "model", run)
    return _predict(model, data, **options)


def load_run(ref: str | Path = "latest", *, workspace: str | Path | None = None) -> RunResult:
    """A saved run as the ``RunResult`` a fresh run returns: ``ref`` is a run folder, or a run
    id, unique id prefix, tag, name or ``"latest"`` in the workspace (``workspace``, else
    ``$SEGMINT_WORKSPACE``, else ``./segmint-workspace``). Large tables, features, insights
    and the model are read from the folder on first access."""
    from segmint.pipeline.jobs import find_run_folder
    from segmint.store.loading import load_run_folder

    return load_run_folder(find_run_folder(ref, workspace))


def load_model(run_dir: str) -> SegmentationModel:
    """The model saved in a run folder (checked against its manifest)."""
    from segmint.store.loading import load_run_model

    return load_run_model(run_dir)


__all__ = [
    "AmbiguousRunError",
    "ArtifactError",
    "ConfigError",
    "EffectResult",
    "InputError",
    "OutputError",
    "RegistryError",
    "RunManifest",
    "RunNotFoundError",
    "RunResult",
    "RunStateError",
    "SegmentationModel",
    "SegmintError",
    "Settings",
    "__version__",
    "analyze_effect",
    "load_model",
    "load_run",
    "predict",
    "run",
    "save",
    "segment",
]
