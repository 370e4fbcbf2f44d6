"""``analyze effect``: does a customer attribute change an outcome? Reads a customer table
through ``ingest`` and runs ``explain.effect``; writes nothing."""

from __future__ import annotations

from typing import Any

from segmint.config import Settings
from segmint.data import readers
from segmint.data.ingest import ingest
from segmint.explain.effect import EffectResult, attribute_effect


def analyze_effect(
    data: Any,
    by: str,
    on: list[str],
    settings: Settings | None = None,
    *,
    order: list[str] | None = None,
    bins: int = 5,
) -> tuple[EffectResult, dict[str, Any]]:
    """Read a customer table (with ``settings.derive`` columns) and test the effect of ``by``
    on each outcome in ``on`` (see ``segmint.explain.effect``). Returns the result and the
    input's row accounting."""
    settings = (settings or Settings()).merged({"kind": "customers"})
    with readers.engine(memory_limit=settings.memory_limit) as con:
        ing = ingest([data], settings, con)
    assert ing.customers is not None  # a customer table is pandas: usable after the engine
    frame = ing.customers.frame
    result = attribute_effect(
        frame,
        by,
        on,
        order=order,
        bins=bins,
        alpha=settings.explain.alpha,
        posthoc_sample=settings.explain.posthoc_sample,
        seed=settings.seed,
        source=ing.inputs[0]["path"],
    )
    return result, ing.rows
