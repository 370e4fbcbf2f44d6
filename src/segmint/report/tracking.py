"""The tracking report: alerts, Sankey of migrations, size/revenue trends, drift, shifts."""

from __future__ import annotations

from pathlib import Path

from plotly.offline import get_plotlyjs

from segmint._version import __version__
from segmint.report import charts
from segmint.report.html import _ENV, _div
from segmint.tracking.snapshots import PSI_MAJOR, PSI_MODERATE, Tracking

SANKEY_STEPS = 6


def write_tracking_report(
    t: Tracking, path: Path, *, every: str, lapsed: int, shift_alert: float = 0.5
) -> Path:
    # the Sankey shows the last SANKEY_STEPS transitions; migration.csv has them all
    last = t.snapshots[-SANKEY_STEPS - 1 :]
    recent = t.migration[t.migration.from_snapshot >= last[0]] if len(t.migration) else t.migration
    shifts = (
        t.shifts.pivot(index="snapshot", columns="segment", values="shift")
        if len(t.shifts)
        else t.shifts
    )
    html = _ENV.get_template("track.html.j2").render(
        t=t,
        version=__version__,
        every=every,
        plotlyjs=get_plotlyjs(),
        moderate=PSI_MODERATE,
        major=PSI_MAJOR,
        shift_alert=shift_alert,
        lapsed_days=lapsed,
        seg_ids=list(shifts.columns) if len(t.shifts) else [],
        shifts=shifts,
        fig_sankey=_div(charts.sankey(recent, t.names, t.snapshots)) if len(recent) else "",
        sankey_from=str(recent.from_snapshot.min())[:10] if len(recent) else "",
        fig_trends=_div(charts.trends(t.sizes)),
        fig_drift=_div(charts.drift_heatmap(t.drift)),
    )
    path.write_text(html, encoding="utf-8")
    return path
