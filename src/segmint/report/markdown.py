"""``summary.md``: the run in a page of Markdown, for pasting into chat or email.

Every piece of text that comes from the data (column names become segment names, features and
personas; categories and reasons too) goes through ``md``: Markdown renderers pass raw HTML
through, so a column named ``<script>…</script>`` would otherwise run in a viewer.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from segmint.explain.personas import num, pct

if TYPE_CHECKING:
    from segmint.results import RunResult


_MARKUP = re.compile(r"[\\`\[\]<>|]")
_ENTITIES = {"<": "&lt;", ">": "&gt;"}


def md(v: Any) -> str:
    """``v`` as inert Markdown text: ``<`` and ``>`` become entities (no HTML tags, no
    autolinks), ``[ ] ` \\ |`` are backslash-escaped (no links, images, code or broken table
    cells), line breaks become spaces (no headings or lists). Emphasis characters stay: at
    worst they restyle the text."""
    text = " ".join(str(v).splitlines())
    return _MARKUP.sub(lambda m: _ENTITIES.get(m[0], "\\" + m[0]), text)


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(md(v) for v in r) + " |" for r in rows]
    return lines


def render_summary(result: RunResult) -> str:
    m = result.manifest
    h = result.insights.headline
    segs = result.segments
    rows = m.rows
    lines = [
        f"# Customer segments: {m.k} segments of {m.customers:,} customers",
        "",
        f"segmint {m.version} · config {m.config_hash} · {m.created.isoformat()}",
        "",
    ]
    facts = [f"**{h['customers']:,}** customers", f"**{h['segments']}** segments"]
    if h.get("revenue") is not None:
        facts.append(f"revenue **{num(h['revenue'])}**")
    facts.append(f"**{h['anomalies_flagged']:,}** unusual customers flagged")
    lines += ["- " + " · ".join(facts)]
    for key, label, what in (
        ("opportunity", "Biggest opportunity", "growth potential"),
        ("risk", "Biggest risk", "revenue at stake"),
    ):
        item = h.get(key)
        if item:
            lines.append(
                f"- **{label}:** segment {item['segment']} *{md(item['segment_name'])}* "
                f"({pct(item['share_customers'])} of customers), {what} {num(item['value'])}. "
                f"{md(item['action'])}"
            )
    lines += ["", f"Why {m.k} segments: {md(m.selection.reason)}", "", "## Segments", ""]
    header = ["#", "name", "customers"]
    has_rev = "share_revenue" in segs
    if has_rev:
        header.append("revenue")
    header += ["strategy", "KPI"]
    body = []
    for s in segs.itertuples():
        r: list[Any] = [s.segment, s.segment_name, f"{s.size:,} ({pct(s.share_customers)})"]
        if has_rev:
            r.append(pct(s.share_revenue))
        r += [s.action, s.kpi]
        body.append(r)
    lines += _table(header, body)
    lines += ["", "## Personas", ""]
    for s in segs.itertuples():
        lines.append(f"**{s.segment}. {md(s.segment_name)}**: {md(s.description)}")
        if s.distinguishing:
            lines.append(f"  Sets them apart: {md(s.distinguishing)}.")
        lines.append(
            f"  Message: “{md(s.message)}”; discount: {md(s.discount)}; watch: {md(s.kpi)}."
        )
        extra = []
        if "expected_churn_rate" in segs:
            days = (m.churn or {}).get("horizon_days", "")
            extra.append(f"churn risk ({days} days) {pct(s.expected_churn_rate)}")
        if "clv_total" in segs:
            extra.append(f"predicted CLV {num(s.clv_total)}")
        if extra:
            text = "; ".join(extra)
            lines.append(f"  {md(text[:1].upper() + text[1:])}.")
        lines.append("")
    q = rows.quarantined
    lines += [
        "## Data",
        "",
        f"{rows.read:,} rows read = {rows.kept:,} kept + {sum(q.values()):,} quarantined"
        + (" (" + ", ".join(f"{md(r)}: {n:,}" for r, n in q.items()) + ")" if q else "")
        + ". Every rejected row is in `quarantine.parquet` with its reason.",
        "",
    ]
    return "\n".join(lines)


def write_summary(result: RunResult, path: Path) -> Path:
    path.write_text(render_summary(result), encoding="utf-8")
    return path
