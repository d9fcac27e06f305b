"""Figures drawn from an :class:`~metapool.analysis.OutcomeAnalysis` (nothing is refitted).

:func:`draw_figures` draws an outcome's figures (``forest``, ``funnel``, ``loo``, ``cumulative``,
``influence``, ``baujat``, ``gosh``, ``bubble``: :data:`metapool.registry.FIGURE_KINDS`) into a
folder as ``{kind}.png`` and ``{kind}.svg``, atomically and byte-identically between runs.  The
``build_*`` functions of :mod:`.forest`, :mod:`.funnel` and :mod:`.diagnostics` return the
:class:`matplotlib.figure.Figure` without saving it.
"""
from __future__ import annotations

import time
from pathlib import Path

__all__ = ["draw_figures", "build_figure", "FORMATS"]

FORMATS = ("png", "svg")


def _ok(res):
    from ..results import NotRun

    return res is not None and not isinstance(res, NotRun)


def _cumulative_label(label: str, key) -> str:
    """``"+ Feng 2019"``; the ordering key is appended only when the label does not already show
    it (ordering by year gives no "+ Feng 2019 (2019)"); numbers print without a trailing .0."""
    if key is None:
        return f"+ {label}"
    text = f"{key:g}" if isinstance(key, float) else str(key)
    shown = any(w == text or (w[:-1] == text and w[-1].isalpha()) for w in label.split())   # 2019, 2019a
    return f"+ {label}" if shown else f"+ {label} ({text})"


def build_figure(analysis, kind: str):
    """The :class:`~matplotlib.figure.Figure` of one figure kind of an outcome."""
    from . import diagnostics
    from .forest import build_forest, build_summary_forest
    from .funnel import build_funnel

    a = analysis
    label, measure = a.label, a.effects.measure
    if kind == "forest":
        return build_forest(a)
    if kind == "funnel":
        ss = a.small_study if _ok(a.small_study) else None
        filled = ss.trim_and_fill if ss is not None and _ok(ss.trim_and_fill) else None
        egger = ss.egger if ss is not None and _ok(ss.egger) else None
        return build_funnel(a, contours=True, filled=filled, egger=egger)
    from ..registry import FIGURE_SOURCE, FIGURE_TITLES

    res = getattr(a, FIGURE_SOURCE[kind])
    if not _ok(res):
        return diagnostics.build_not_run(f"{FIGURE_TITLES[kind]}: {label}",
                                         str(res) if res is not None else "not switched on")
    if kind in ("loo", "cumulative"):
        fit = next((f for f in a.fits if f.method == res.method), a.primary)
        if kind == "loo":
            labels = [f"omitting {a.label_of(s)}" for s in res.study]
            title = f"Leave-one-out ({res.method}): {label}"
        else:
            labels = [_cumulative_label(a.label_of(s), o) for s, o in zip(res.study, res.order)]
            by = "" if res.order_by == "year" else f" by {res.order_by}"
            title = f"Cumulative meta-analysis{by} ({res.method}, oldest first): {label}"
        notes = [n.rstrip(".") + "." for n in getattr(res, "notes", ())]
        if kind == "loo":
            notes.insert(0, f"Each row: the {res.method} model refitted without that study; "
                            f"the diamond: all {a.k} studies.")
        else:
            notes.insert(0, f"Each row: the {res.method} model of the studies up to and including that row.")
        return build_summary_forest(labels, res.estimate, res.ci_lb, res.ci_ub, measure=measure, title=title,
                                    pooled=fit, ni=a.effects.ni, level=fit.level, footers=notes)
    names = [a.label_of(s) for s in getattr(res, "study", ())]
    if kind == "influence":
        return diagnostics.build_influence(res, labels=names, title=f"Influence diagnostics ({res.method}): {label}")
    if kind == "baujat":
        return diagnostics.build_baujat(res, labels=names, title=f"Baujat plot ({res.method}): {label}")
    if kind == "gosh":
        return diagnostics.build_gosh(res, measure=measure, title=f"GOSH plot ({res.method}): {label}")
    if kind == "bubble":
        reg = res.regression
        return diagnostics.build_bubble(reg, moderator=reg.coef[1], measure=measure,
                                        title=f"Meta-regression on {reg.coef[1]}: {label}")
    raise ValueError(f"unknown figure kind {kind!r}")


def draw_figures(analysis, kinds, folder, formats=FORMATS) -> dict:
    """Draw ``kinds`` of ``analysis`` into ``folder`` (``{kind}.{fmt}``); returns seconds per kind."""
    import matplotlib

    matplotlib.use("Agg")
    from .style import save_figure

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    times = {}
    for kind in kinds:
        t0 = time.perf_counter()
        fig = build_figure(analysis, kind)
        save_figure(fig, folder / kind, formats)
        times[kind] = time.perf_counter() - t0
    return times
