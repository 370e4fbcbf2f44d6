"""Render the run report with Jinja2; charts are Plotly divs sharing one inlined plotly.js."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import jinja2
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from ..evaluate.select_k import __doc__ as RULE_DOC
from ..explain.personas import num, pct
from ..store import finite
from . import charts, charts_cluster

if TYPE_CHECKING:
    from ..pipeline import RunResult

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("segmint", "report/templates"),
    autoescape=jinja2.select_autoescape(["html", "j2"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


def _div(fig: go.Figure | None) -> str:
    if fig is None:
        return ""
    return fig.to_html(full_html=False, include_plotlyjs=False, config={"displaylogo": False})


def _fmt(v: object) -> str:
    if isinstance(v, float):
        if v != v:
            return "–"
        return f"{v:,.3f}" if abs(v) < 100 else f"{v:,.0f}"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, list | tuple):
        return ", ".join(map(str, v)) or "none"
    if isinstance(v, dict):
        return "; ".join(f"{k}: {_fmt(x)}" for k, x in v.items()) or "none"
    return str(v)


def render_report(result: RunResult) -> str:
    m = finite(result.manifest)  # NaN (e.g. an undefined standard error) → None
    segs = result.segments
    names = segs.segment_name.tolist()
    feats = result.features.numeric
    profile_cols = ["segment", "segment_name", "size", "share_customers"]
    if "share_revenue" in segs:
        profile_cols.append("share_revenue")
    profile_cols += [f"mean_{f}" for f in feats[:8]]
    profile_cols += [f"top_{c}" for c in result.features.categorical[:3]]
    profile = segs[profile_cols].rename(
        columns=lambda c: (c[5:] if c.startswith("mean_") else c).replace("_", " ")
    )
    ksel = result.k_selection.copy()
    ins = result.insights
    drivers = ins.drivers
    if drivers is not None:
        ranked = drivers.top("all", 6).feature.tolist()
    else:
        t = ins.tests.tests
        ranked = t[t.kind == "numeric"].sort_values("effect_size", ascending=False).feature
        ranked = ranked.tolist()[:6]
    dist_feats = [f for f in ranked if f in result.features.numeric]
    tests = ins.tests.tests.sort_values(["meaningful", "effect_size"], ascending=[False, False])
    post = ins.tests.posthoc
    pair_counts = (
        post.groupby("feature")
        .agg(pairs=("significant", "size"), different=("significant", "sum"))
        .to_dict("index")
        if len(post)
        else {}
    )
    rule = "\n".join((RULE_DOC or "").strip().splitlines()[3:]).replace("``", "")
    tmpl = _ENV.get_template("report.html.j2")
    return tmpl.render(
        m=m,
        plotlyjs=get_plotlyjs(),
        segments=segs,
        profile=profile,
        ksel=ksel,
        rule=rule,
        fmt=_fmt,
        fig_k=_div(charts.k_selection(ksel, result.k)),
        fig_sizes=_div(charts.sizes(segs)),
        fig_heat=_div(charts.heatmap(segs, feats)) if feats else "",
        fig_2d=_div(charts.scatter(result.embedding_sample, names, three_d=False)),
        fig_3d=_div(charts.scatter(result.embedding_sample, names, three_d=True)),
        fig_quarantine=_div(charts.quarantine(m["rows"]["quarantined"])),
        prep=result.preprocessing,
        h=ins.headline,
        fig_method=_method_figures(result),
        fig_stability=_stability_figure(result),
        comparison=result.comparison,
        fig_agreement=_div(charts_cluster.agreement(result.comparison.agreement))
        if result.comparison is not None
        else "",
        fig_methods=_div(
            charts_cluster.methods_scatter(
                result.embedding_sample, result.diagnostics.get("method_labels", {})
            )
        )
        if result.comparison is not None
        else "",
        diag=result.diagnostics,
        drivers=drivers,
        fig_importance=_div(charts.importance(drivers.importance)) if drivers else "",
        fig_importance_seg=(
            _div(charts.importance_by_segment(drivers.importance, segs)) if drivers else ""
        ),
        fig_dist=_div(
            charts.distributions(result.customers, segs, dist_feats, seed=result.settings.seed)
        ),
        tests=tests,
        pair_counts=pair_counts,
        alpha=result.settings.explain.alpha,
        anomalies=ins.anomalies,
        num=num,
        pct=pct,
    )


def _method_figures(result: RunResult) -> str:
    """BIC curve, k-distance plot or dendrogram, when the algorithm has one."""
    diag = result.diagnostics
    parts = []
    if "bic" in diag:
        parts.append(_div(charts_cluster.bic_curve(diag["bic"], result.k)))
    if "kdist" in diag:
        parts.append(_div(charts_cluster.kdistance(diag["kdist"])))
    if "linkage" in diag:
        parts.append(_div(charts_cluster.dendrogram(diag["linkage"], result.k)))
    return "".join(parts)


def _stability_figure(result: RunResult) -> str:
    from ..evaluate.stability import UNSTABLE

    if "stability_jaccard" not in result.segments:
        return ""
    return _div(charts_cluster.stability(result.segments, UNSTABLE))


def write_report(result: RunResult, path: Path) -> Path:
    path.write_text(render_report(result), encoding="utf-8")
    return path
