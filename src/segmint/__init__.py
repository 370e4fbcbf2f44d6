"""segmint: customer segmentation and market intelligence.

>>> import segmint
>>> result = segmint.segment("orders.csv")             # doctest: +SKIP
>>> result.segments[["segment_name", "share_customers"]]  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .config import Settings
from .exceptions import ArtifactError, ConfigError, InputError, SegmintError

if TYPE_CHECKING:
    from .explain.effect import EffectResult
    from .model import SegmentationModel
    from .pipeline import RunResult, run

# Imported on first use: the pipeline pulls in scikit-learn, SciPy and skops (~2 s), which
# ``segmint --help`` and ``segmint generate`` never need.
_LAZY = {
    "EffectResult": ".explain.effect",
    "SegmentationModel": ".model",
    "RunResult": ".pipeline",
    "run": ".pipeline",
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
        ``customers``, ``segments``, ``k_selection``, ``manifest``, ``model``; ``save(dir)``
        writes the run folder, ``predict(data)`` scores new customers.
    """
    base = settings or Settings()
    s = base.merged(options)
    inputs = [data, *more]
    paths = [str(x) for x in inputs if not hasattr(x, "columns")]
    if len(paths) == len(inputs):
        s = s.merged({"inputs": paths})
    from .pipeline import run

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
    from .analyses import analyze_effect as _analyze

    s = (settings or Settings()).merged({**options, "derive": derive})
    outcomes = [on] if isinstance(on, str) else list(on)
    return _analyze(data, by, outcomes, s, order=order, bins=bins)[0]


def load_model(run_dir: str) -> SegmentationModel:
    """The model saved in a run folder (checked against its manifest)."""
    from .predict import load_run_model

    return load_run_model(run_dir)


__all__ = [
    "ArtifactError",
    "ConfigError",
    "EffectResult",
    "InputError",
    "RunResult",
    "SegmentationModel",
    "SegmintError",
    "Settings",
    "__version__",
    "analyze_effect",
    "load_model",
    "run",
    "segment",
]
