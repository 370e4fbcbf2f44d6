"""Render the run report with Jinja2; charts are Plotly divs sharing one inlined plotly.js."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import jinja2
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from segmint.evaluate.select_k import __doc__ as RULE_DOC
from segmint.explain.personas import num, pct
from segmint.report import charts, charts_cluster
from segmint.results import finite

if TYPE_CHECKING:
    from segmint.results import RunResult

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("segmint", "report/templates"),
    autoescape=True,  # every template is HTML; user text (column names, ids) is escaped
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


def figures(result: RunResult) -> dict[str, go.Figure]:
    """Every chart of the report by name (the report embeds them; ``write_charts`` writes
    them as standalone files)."""
    segs = result.segments
    names = segs.loc[segs.segment >= 0, "segment_name"].tolist()
    feats = result.features.numeric
    ins = result.insights
    out: dict[str, go.Figure | None] = {
        "k_selection": charts.k_selection(result.k_selection, result.k),
        "sizes": charts.sizes(segs),
        "heatmap": charts.heatmap(segs, feats) if feats else None,
        "scatter_2d": charts.scatter(result.embedding_sample, names, three_d=False),
        "scatter_3d": charts.scatter(result.embedding_sample, names, three_d=True),
        "quarantine": charts.quarantine(result.manifest.rows.quarantined),
        "distributions": charts.distributions(
            result.customers, segs, _distribution_features(result), seed=result.settings.seed
        ),
    }
    if ins.drivers is not None:
        out["importance"] = charts.importance(ins.drivers.importance)
        out["importance_by_segment"] = charts.importance_by_segment(ins.drivers.importance, segs)
    diag = result.diagnostics
    if "bic" in diag:
        out["bic"] = charts_cluster.bic_curve(diag["bic"], result.k)
    if "kdist" in diag:
        out["k_distance"] = charts_cluster.kdistance(diag["kdist"])
    if "linkage" in diag:
        out["dendrogram"] = charts_cluster.dendrogram(diag["linkage"], result.k)
    if "stability_jaccard" in segs:
        from segmint.evaluate.stability import UNSTABLE

        out["stability"] = charts_cluster.stability(segs, UNSTABLE)
    if result.comparison is not None:
        labels = diag.get("method_labels", {})
        out["agreement"] = charts_cluster.agreement(result.comparison.agreement)
        out["methods_2d"] = charts_cluster.methods_scatter(result.embedding_sample, labels)
        out["methods_3d"] = charts_cluster.methods_scatter_3d(result.embedding_sample, labels)
    return {k: v for k, v in out.items() if v is not None}


def _distribution_features(result: RunResult) -> list[str]:
    ins = result.insights
    if ins.drivers is not None:
        ranked = ins.drivers.top("all", 6).feature.tolist()
    else:
        t = ins.tests.tests
        ranked = t[t.kind == "numeric"].sort_values("effect_size", ascending=False).feature
        ranked = ranked.tolist()[:6]
    return [f for f in ranked if f in result.features.numeric]


def write_charts(result: RunResult, folder: Path) -> list[Path]:
    """Each chart as a standalone HTML file; plotly.js is written once beside them."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, fig in figures(result).items():
        path = folder / f"{name}.html"
        fig.write_html(path, include_plotlyjs="directory", full_html=True)
        paths.append(path)
    return paths


def render_report(result: RunResult) -> str:
    # the template reads the manifest as JSON data; an undefined number (None, NaN) is absent
    # or None there, so `is defined` and `if` both test it
    m = finite(result.manifest.model_dump(mode="json", exclude_none=True))
    segs = result.segments
    feats = result.features.numeric
    profile_cols = ["segment", "segment_name", "size", "share_customers"]
    if "share_revenue" in segs:
        profile_cols.append("share_revenue")
    profile_cols += [f"mean_{f}" for f in feats[:8]]
    profile_cols += [f"top_{c}" for c in result.features.categorical[:3]]
    profile = segs[profile_cols].rename(
        columns=lambda c: (c[5:] if c.startswith("mean_") else c).replace("_", " ")
    )
    ins = result.insights
    tests = ins.tests.tests.sort_values(["meaningful", "effect_size"], ascending=[False, False])
    post = ins.tests.posthoc
    pair_counts = (
        post.groupby("feature")
        .agg(pairs=("significant", "size"), different=("significant", "sum"))
        .to_dict("index")
        if len(post)
        else {}
    )
    figs = {k: _div(v) for k, v in figures(result).items()}
    method = "".join(figs.get(k, "") for k in ("bic", "k_distance", "dendrogram"))
    rule = "\n".join((RULE_DOC or "").strip().splitlines()[3:]).replace("``", "")
    tmpl = _ENV.get_template("report.html.j2")
    return tmpl.render(
        m=m,
        plotlyjs=get_plotlyjs(),
        segments=segs,
        profile=profile,
        ksel=result.k_selection,
        rule=rule,
        fmt=_fmt,
        fig_k=figs["k_selection"],
        fig_sizes=figs["sizes"],
        fig_heat=figs.get("heatmap", ""),
        fig_2d=figs["scatter_2d"],
        fig_3d=figs["scatter_3d"],
        fig_quarantine=figs.get("quarantine", ""),
        prep=result.preprocessing,
        h=ins.headline,
        fig_method=method,
        fig_stability=figs.get("stability", ""),
        comparison=result.comparison,
        fig_agreement=figs.get("agreement", ""),
        fig_methods=figs.get("methods_2d", "") + figs.get("methods_3d", ""),
        drivers=ins.drivers,
        fig_importance=figs.get("importance", ""),
        fig_importance_seg=figs.get("importance_by_segment", ""),
        fig_dist=figs.get("distributions", ""),
        tests=tests,
        pair_counts=pair_counts,
        alpha=result.settings.explain.alpha,
        anomalies=ins.anomalies,
        num=num,
        pct=pct,
        diag=result.diagnostics,
    )


def write_report(result: RunResult, path: Path) -> Path:
    path.write_text(render_report(result), encoding="utf-8")
    return path
