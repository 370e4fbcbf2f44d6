"""Run reports: a self-contained HTML report (plotly.js inlined once) and ``summary.md``."""

from segmint.report.html import render_report, write_report
from segmint.report.markdown import render_summary, write_summary

__all__ = ["render_report", "render_summary", "write_report", "write_summary"]
