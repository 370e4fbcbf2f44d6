"""Plotly figures for the report. Each function takes result tables and returns a Figure."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from segmint.evaluate.metrics import knee

PALETTE = [
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
]


def _color(i: int) -> str:
    return "#9aa0a6" if int(i) < 0 else PALETTE[int(i) % len(PALETTE)]


def k_selection(table: pd.DataFrame, chosen: int) -> go.Figure:
    t = table.sort_values("k")
    fig = make_subplots(
        rows=1,
        cols=4,
        subplot_titles=(
            "Silhouette (sample, 95% CI) ↑",
            "Calinski–Harabasz ↑",
            "Davies–Bouldin ↓",
            "Inertia (elbow)",
        ),
    )
    err = dict(
        type="data",
        symmetric=False,
        array=(t.silhouette_high - t.silhouette).tolist(),
        arrayminus=(t.silhouette - t.silhouette_low).tolist(),
    )
    fig.add_trace(go.Scatter(x=t.k, y=t.silhouette, error_y=err, mode="lines+markers"), 1, 1)
    fig.add_trace(go.Scatter(x=t.k, y=t.calinski_harabasz, mode="lines+markers"), 1, 2)
    fig.add_trace(go.Scatter(x=t.k, y=t.davies_bouldin, mode="lines+markers"), 1, 3)
    fig.add_trace(go.Scatter(x=t.k, y=t.inertia, mode="lines+markers"), 1, 4)
    elbow = knee(t.k.tolist(), t.inertia.tolist())
    for col in range(1, 5):
        fig.add_vline(x=chosen, line_dash="dash", line_color="#d62728", row=1, col=col)
    if elbow is not None:
        row = t[t.k == elbow].iloc[0]
        fig.add_trace(
            go.Scatter(
                x=[elbow],
                y=[row.inertia],
                mode="markers",
                marker_size=14,
                marker_symbol="circle-open",
                marker_color="#d62728",
            ),
            1,
            4,
        )
    fig.update_layout(height=320, showlegend=False, margin=dict(t=40, b=30, l=40, r=10))
    fig.update_xaxes(title_text="k", dtick=1)
    return fig


def sizes(segments: pd.DataFrame) -> go.Figure:
    names = _seg_labels(segments)
    fig = go.Figure()
    fig.add_bar(name="share of customers", x=names, y=segments.share_customers)
    if "share_revenue" in segments:
        fig.add_bar(name="share of revenue", x=names, y=segments.share_revenue)
    fig.update_layout(
        barmode="group",
        height=360,
        yaxis_tickformat=".0%",
        margin=dict(t=20, b=10),
        legend=dict(orientation="h", y=1.1),
    )
    return fig


def heatmap(segments: pd.DataFrame, features: list[str]) -> go.Figure:
    cols = [f"z_{f}" for f in features if f"z_{f}" in segments]
    z = segments[cols].to_numpy(dtype=float)
    names = _seg_labels(segments)
    means = segments[[c.replace("z_", "mean_", 1) for c in cols]].to_numpy(dtype=float)
    text = np.vectorize(lambda v: f"{v:,.3g}")(means) if means.size else means
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=[c[2:] for c in cols],
            y=names,
            zmid=0,
            colorscale="RdBu_r",
            text=text,
            texttemplate="%{text}",
            colorbar_title="std. diff.",
            hovertemplate="%{y}<br>%{x}: mean %{text} (%{z:.2f} sd from base)<extra></extra>",
        )
    )
    fig.update_layout(height=120 + 40 * len(names), margin=dict(t=10, b=10, l=10, r=10))
    fig.update_yaxes(autorange="reversed")
    return fig


def scatter(emb: pd.DataFrame, names: list[str], three_d: bool) -> go.Figure:
    fig = go.Figure()
    ex = emb.attrs.get("explained", [])
    for s in sorted(emb.segment.unique()):
        part = emb[emb.segment == s]
        label = (
            f"{s}: {names[int(s)]}"
            if 0 <= int(s) < len(names)
            else f"{s}: Outliers"
            if int(s) < 0
            else str(s)
        )
        common = dict(
            mode="markers",
            name=label,
            text=part.customer_id.astype(str),
            marker=dict(size=3 if three_d else 5, color=_color(s), opacity=0.7),
            hovertemplate="customer %{text}<extra>" + label + "</extra>",
        )
        if three_d:
            fig.add_trace(go.Scatter3d(x=part.pc1, y=part.pc2, z=part.pc3, **common))
        else:
            fig.add_trace(go.Scattergl(x=part.pc1, y=part.pc2, **common))

    def lab(i: int) -> str:
        return f"PC{i + 1}" + (f" ({ex[i]:.0%})" if i < len(ex) else "")

    if three_d:
        fig.update_layout(scene=dict(xaxis_title=lab(0), yaxis_title=lab(1), zaxis_title=lab(2)))
    else:
        fig.update_layout(xaxis_title=lab(0), yaxis_title=lab(1))
    fig.update_layout(height=520, margin=dict(t=10, b=10, l=10, r=10))
    return fig


def quarantine(reasons: dict[str, int]) -> go.Figure | None:
    if not reasons:
        return None
    items = sorted(reasons.items(), key=lambda kv: -kv[1])
    fig = go.Figure(go.Bar(x=[n for _, n in items], y=[r for r, _ in items], orientation="h"))
    fig.update_layout(height=80 + 30 * len(items), margin=dict(t=10, b=10, l=10, r=10))
    fig.update_yaxes(autorange="reversed")
    return fig


def _seg_labels(segments: pd.DataFrame) -> list[str]:
    return [f"{s}: {n}" for s, n in zip(segments.segment, segments.segment_name, strict=True)]


def importance(imp: pd.DataFrame, top: int = 12) -> go.Figure:
    """Global permutation importance with 95% intervals, most important on top."""
    t = imp[imp["scope"].astype(str) == "all"].sort_values("rank").head(top)
    fig = go.Figure(
        go.Bar(
            x=t.importance,
            y=t.feature,
            orientation="h",
            error_x=dict(
                type="data",
                symmetric=False,
                array=(t.ci_high - t.importance).tolist(),
                arrayminus=(t.importance - t.ci_low).tolist(),
            ),
            hovertemplate="%{y}: accuracy drop %{x:.3f}<extra></extra>",
        )
    )
    fig.update_layout(
        height=100 + 28 * len(t),
        margin=dict(t=10, b=40, l=10, r=10),
        xaxis_title="drop in surrogate accuracy when shuffled",
    )
    fig.update_yaxes(autorange="reversed")
    return fig


def importance_by_segment(imp: pd.DataFrame, segments: pd.DataFrame, top: int = 12) -> go.Figure:
    """Segments × features: drop in one-vs-rest AUC when a feature is shuffled."""
    glob = imp[imp["scope"].astype(str) == "all"].sort_values("rank").head(top).feature.tolist()
    per = imp[imp["scope"].astype(str) != "all"]
    z = (
        per.assign(scope=per["scope"].astype(str))
        .pivot(index="scope", columns="feature", values="importance")
        .reindex(index=[str(s) for s in segments.segment], columns=glob)
    )
    fig = go.Figure(
        go.Heatmap(
            z=z.to_numpy(dtype=float),
            x=glob,
            y=_seg_labels(segments),
            colorscale="Blues",
            zmin=0,
            colorbar_title="AUC drop",
            hovertemplate="%{y}<br>%{x}: AUC drop %{z:.3f}<extra></extra>",
        )
    )
    fig.update_layout(height=120 + 40 * len(segments), margin=dict(t=10, b=10, l=10, r=10))
    fig.update_yaxes(autorange="reversed")
    return fig


def distributions(
    customers: pd.DataFrame,
    segments: pd.DataFrame,
    features: list[str],
    *,
    per_segment: int = 1500,
    seed: int = 0,
) -> go.Figure | None:
    """Box plots of up to six features by segment, on a sample of each segment."""
    features = [f for f in features if f in customers][:6]
    if not features:
        return None
    rng = np.random.default_rng(seed)
    seg = customers["segment"].to_numpy()
    picks = []
    for s in np.unique(seg):
        ix = np.flatnonzero(seg == s)
        picks.append(ix if len(ix) <= per_segment else rng.choice(ix, per_segment, replace=False))
    sample = customers.iloc[np.sort(np.concatenate(picks))]
    cols = 3 if len(features) > 2 else len(features)
    rows = int(np.ceil(len(features) / cols))
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=features)
    names = dict(zip(segments.segment, segments.segment_name, strict=True))
    for i, f in enumerate(features):
        r, c = divmod(i, cols)
        values = pd.to_numeric(sample[f], errors="coerce")
        for s in segments.segment:
            v = values[sample.segment == s]
            fig.add_trace(
                go.Box(
                    y=v,
                    name=str(s),
                    marker_color=_color(s),
                    boxpoints=False,
                    showlegend=False,
                    hovertext=names[s],
                ),
                r + 1,
                c + 1,
            )
        v = values.dropna()
        if not len(v):
            continue
        lo, hi = float(v.quantile(0.01)), float(v.quantile(0.99))
        if v.min() > 0 and v.max() > 50 * v.median():
            fig.update_yaxes(type="log", row=r + 1, col=c + 1)
        elif v.max() > hi + 3 * (hi - lo) or v.min() < lo - 3 * (hi - lo):
            pad = 0.05 * (hi - lo or 1.0)
            fig.update_yaxes(range=[lo - pad, hi + pad], row=r + 1, col=c + 1)
    fig.update_layout(height=300 * rows, margin=dict(t=30, b=20, l=30, r=10))
    fig.update_xaxes(title_text="segment")
    return fig


def clv_holdout(table: pd.DataFrame, unit: str) -> go.Figure:
    """The classic BG/NBD check: mean holdout purchases, actual vs predicted, by the number
    of repeat purchases in the calibration period."""
    fig = go.Figure()
    x = table["calibration_repeat_purchases"].astype(str)
    fig.add_trace(go.Scatter(x=x, y=table["actual"], mode="lines+markers", name="actual"))
    fig.add_trace(
        go.Scatter(x=x, y=table["predicted"], mode="lines+markers", name="predicted (BG/NBD)")
    )
    fig.update_layout(
        height=420,
        xaxis_title=f"repeat purchases in the calibration period ({unit} with a purchase)",
        yaxis_title="mean purchases in the holdout period",
        legend=dict(orientation="h", y=1.08),
        margin=dict(t=40, b=40, l=50, r=10),
    )
    return fig


def sankey(migration: pd.DataFrame, names: list[str], dates: list) -> go.Figure:
    """Customers flowing between segments from one snapshot to the next (``new`` enters)."""
    labels: list[str] = []
    index: dict[tuple, int] = {}
    colors: list[str] = []

    def node(at: object, seg: str) -> int:
        key = (str(at)[:10], seg)
        if key not in index:
            index[key] = len(labels)
            name = (
                "new customers"
                if seg == "new"
                else names[int(seg)]
                if int(seg) < len(names)
                else seg
            )
            labels.append(f"{key[0]} · {name}")
            colors.append("#cccccc" if seg == "new" else _color(int(seg)))
        return index[key]

    src, dst, val = [], [], []
    for r in migration.itertuples():
        src.append(node(r.from_snapshot, str(r.from_segment)))
        dst.append(node(r.to_snapshot, str(r.to_segment)))
        val.append(int(r.customers))
    fig = go.Figure(
        go.Sankey(
            node=dict(label=labels, color=colors, pad=8, thickness=12),
            link=dict(source=src, target=dst, value=val),
        )
    )
    fig.update_layout(height=520, margin=dict(t=10, b=10, l=10, r=10))
    return fig


def trends(sizes: pd.DataFrame) -> go.Figure:
    """Segment size and in-period revenue at each snapshot."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("customers", "revenue in the period"))
    for s, part in sizes.groupby("segment"):
        label = f"{s}: {part.segment_name.iloc[0]}"
        style = dict(mode="lines+markers", line_color=_color(int(s)), legendgroup=str(s))
        fig.add_trace(go.Scatter(x=part.snapshot, y=part.customers, name=label, **style), 1, 1)
        fig.add_trace(
            go.Scatter(x=part.snapshot, y=part.revenue, name=label, showlegend=False, **style), 1, 2
        )
    fig.update_layout(height=380, margin=dict(t=30, b=20, l=40, r=10))
    return fig


def drift_heatmap(drift: pd.DataFrame) -> go.Figure | None:
    if drift.empty:
        return None
    z = drift.pivot(index="feature", columns="snapshot", values="psi")
    fig = go.Figure(
        go.Heatmap(
            z=z.to_numpy(dtype=float),
            x=[str(c)[:10] for c in z.columns],
            y=z.index.tolist(),
            colorscale=[[0, "#f7fbff"], [0.4, "#fdd49e"], [1, "#d7301f"]],
            zmin=0,
            zmax=max(0.3, float(np.nanmax(z.to_numpy(dtype=float)))),
            colorbar_title="PSI",
            hovertemplate="%{y} at %{x}: PSI %{z:.3f}<extra></extra>",
        )
    )
    fig.update_layout(height=120 + 24 * len(z), margin=dict(t=10, b=10, l=10, r=10))
    return fig
