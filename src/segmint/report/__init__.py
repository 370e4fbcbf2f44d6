"""Self-contained HTML report of a run (opens offline: plotly.js is inlined once)."""

from .html import render_report, write_report

__all__ = ["render_report", "write_report"]
