"""Publication-quality figures drawn from :class:`~metapool.results.OutcomeAnalysis` objects.

``forest_plot`` / ``summary_forest`` (forest plots) and ``funnel_plot`` (contour-enhanced
funnel plots) write PNG and SVG files atomically and byte-identically between runs;
``build_*`` return the :class:`matplotlib.figure.Figure` without saving it.
"""
from .forest import build_forest, build_summary_forest, forest_plot, summary_forest
from .funnel import build_funnel, funnel_plot
from .style import save_figure

__all__ = ["build_forest", "build_summary_forest", "build_funnel", "forest_plot", "summary_forest",
           "funnel_plot", "save_figure"]
