"""Method-specific clustering charts: BIC curve, k-distance plot, dendrogram."""

from __future__ import annotations

from typing import Any

import numpy as np
import plotly.graph_objects as go
from scipy.cluster.hierarchy import dendrogram as _dendrogram


def bic_curve(bic: dict[str, list], chosen: int) -> go.Figure:
    """Gaussian mixture: BIC per k (lower is better), the chosen k marked."""
    fig = go.Figure(go.Scatter(x=bic["k"], y=bic["bic"], mode="lines+markers", name="BIC"))
    fig.add_vline(x=chosen, line_dash="dash", line_color="#d62728")
    fig.update_layout(
        height=300,
        xaxis_title="k",
        yaxis_title="BIC (lower is better)",
        margin=dict(t=10, b=40, l=60, r=10),
    )
    fig.update_xaxes(dtick=1)
    return fig


def kdistance(kd: dict[str, Any]) -> go.Figure:
    """DBSCAN/HDBSCAN: sorted distance to the min_samples-th neighbour, eps marked."""
    fig = go.Figure(go.Scatter(x=kd["rank"], y=kd["distance"], mode="lines", name="k-distance"))
    fig.add_hline(
        y=kd["eps"], line_dash="dash", line_color="#d62728", annotation_text=f"eps {kd['eps']:.3g}"
    )
    fig.update_layout(
        height=300,
        xaxis_title="customers, sorted",
        yaxis_title="distance to the min_samples-th neighbour",
        margin=dict(t=10, b=40, l=60, r=10),
    )
    return fig


def dendrogram(linkage: np.ndarray, cut_k: int, leaves: int = 30) -> go.Figure:
    """The top of the tree (its last ``leaves`` merges), with the cut giving ``cut_k``."""
    d = _dendrogram(linkage, truncate_mode="lastp", p=leaves, no_plot=True)
    fig = go.Figure()
    for xs, ys in zip(d["icoord"], d["dcoord"], strict=True):
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line_color="#1f77b4", hoverinfo="skip"))
    heights = np.sort(linkage[:, 2])[::-1]
    if 1 < cut_k <= len(heights):
        cut = (heights[cut_k - 2] + heights[cut_k - 1]) / 2
        fig.add_hline(y=cut, line_dash="dash", line_color="#d62728", annotation_text=f"k = {cut_k}")
    fig.update_layout(
        height=340,
        showlegend=False,
        xaxis=dict(
            tickvals=[5 + 10 * i for i in range(len(d["ivl"]))],
            ticktext=d["ivl"],
            title="merged groups (size in brackets)",
        ),
        yaxis_title="merge distance",
        margin=dict(t=10, b=60, l=60, r=10),
    )
    return fig


def stability(segments: Any, threshold: float) -> go.Figure:
    """Per-segment bootstrap stability (mean best-match Jaccard), unstable ones in red."""
    t = segments[segments["segment"] >= 0]
    colors = ["#d62728" if u else "#2ca02c" for u in t["unstable"].astype(bool)]
    fig = go.Figure(
        go.Bar(
            x=[f"{s}: {n}" for s, n in zip(t.segment, t.segment_name, strict=True)],
            y=t["stability_jaccard"],
            marker_color=colors,
            hovertemplate="%{x}: Jaccard %{y:.2f}<extra></extra>",
        )
    )
    fig.add_hline(y=threshold, line_dash="dash", annotation_text=f"unstable below {threshold}")
    fig.update_layout(
        height=300,
        yaxis=dict(range=[0, 1.05], title="mean Jaccard with its refit"),
        margin=dict(t=10, b=60, l=60, r=10),
    )
    return fig


def agreement(matrix: Any) -> go.Figure:
    """Adjusted Rand index between every two methods' segmentations."""
    fig = go.Figure(
        go.Heatmap(
            z=matrix.to_numpy(dtype=float),
            x=list(matrix.columns),
            y=list(matrix.index),
            zmin=0,
            zmax=1,
            colorscale="Blues",
            text=np.round(matrix.to_numpy(dtype=float), 2),
            texttemplate="%{text}",
            colorbar_title="ARI",
        )
    )
    fig.update_layout(height=140 + 34 * len(matrix), margin=dict(t=10, b=10, l=10, r=10))
    fig.update_yaxes(autorange="reversed")
    return fig


def methods_scatter(emb: Any, method_labels: dict[str, Any]) -> go.Figure:
    """The same customers in the same PCA plane, coloured by each method's segments."""
    from plotly.subplots import make_subplots

    from segmint.report.charts import _color

    names = list(method_labels)
    cols = 3
    rows = int(np.ceil(len(names) / cols))
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=names)
    for i, name in enumerate(names):
        r, c = divmod(i, cols)
        lab = np.asarray(method_labels[name])
        fig.add_trace(
            go.Scattergl(
                x=emb.pc1,
                y=emb.pc2,
                mode="markers",
                marker=dict(size=3, color=[_color(v) for v in lab], opacity=0.7),
                showlegend=False,
                hovertemplate=name + ": segment %{text}<extra></extra>",
                text=lab,
            ),
            r + 1,
            c + 1,
        )
    fig.update_layout(height=300 * rows, margin=dict(t=30, b=10, l=10, r=10))
    return fig


def methods_scatter_3d(emb: Any, method_labels: dict[str, Any]) -> go.Figure | None:
    """One interactive 3D PCA scatter; a menu switches the colouring between methods."""
    from segmint.report.charts import _color

    names = list(method_labels)
    if not names:
        return None
    fig = go.Figure()
    for i, name in enumerate(names):
        lab = np.asarray(method_labels[name])
        fig.add_trace(
            go.Scatter3d(
                x=emb.pc1,
                y=emb.pc2,
                z=emb.pc3,
                mode="markers",
                marker=dict(size=2, color=[_color(v) for v in lab], opacity=0.7),
                name=name,
                visible=i == 0,
                text=lab,
                hovertemplate=name + ": segment %{text}<extra></extra>",
            )
        )
    buttons = [
        dict(
            label=name,
            method="update",
            args=[{"visible": [j == i for j in range(len(names))]}, {"title.text": name}],
        )
        for i, name in enumerate(names)
    ]
    fig.update_layout(
        height=520,
        title=dict(text=names[0], x=0.5),
        updatemenus=[dict(buttons=buttons, x=0, y=1.12, xanchor="left", direction="down")],
        scene=dict(xaxis_title="PC1", yaxis_title="PC2", zaxis_title="PC3"),
        margin=dict(t=40, b=10, l=10, r=10),
        showlegend=False,
    )
    return fig
