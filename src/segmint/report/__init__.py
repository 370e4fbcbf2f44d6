"""Run reports: a self-contained HTML report (plotly.js inlined once) and ``summary.md``."""

from .html import render_report, write_report
from .markdown import render_summary, write_summary

__all__ = ["render_report", "render_summary", "write_report", "write_summary"]
