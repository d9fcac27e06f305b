"""Diagnostic figures: bubble plot (meta-regression), Baujat plot, GOSH plot, influence panels.

Presentation only: every figure is drawn from a result object of :mod:`metapool.metareg` or
:mod:`metapool.sensitivity`, so a figure cannot disagree with its table.  ``build_*`` functions
return a bare :class:`matplotlib.figure.Figure`; the ``*_plot`` functions also write it as
``{path_stem}.{png,svg}`` through :func:`metapool.plots.style.save_figure` (temporary file +
``os.replace``; fixed SVG hash salt, no date), so files are byte-identical between runs.
Leave-one-out and cumulative forest plots are drawn by
:func:`metapool.plots.forest.summary_forest`.
"""
from __future__ import annotations

import math

import numpy as np
from matplotlib import rc_context

from .. import transforms
from . import style

_HIGHLIGHT = "#c0392b"
_POINT = "#2c3e50"
_BAND = "#95a5a6"


def _axis_label(measure: str | None, back: bool) -> str:
    if measure is None:
        return "Effect size"
    if back:
        return transforms.scale_label(measure).capitalize()
    return f"{measure} (analysis scale)"


def _suptitle(fig, title: str) -> None:
    """Figure title wrapped to the figure's width; the axes move down to make room for the
    extra lines (a long outcome label would otherwise be clipped at both edges)."""
    lines = style.wrap(title, 0.94 * fig.get_figwidth(), size=style.TITLE_SIZE)
    fig.suptitle("\n".join(lines), fontsize=style.TITLE_SIZE, y=0.985, va="top")
    extra = (len(lines) - 1) * 1.3 * style.TITLE_SIZE / 72 / fig.get_figheight()
    top = max(ax.get_position().y1 for ax in fig.axes) if fig.axes else 1.0
    if extra > 0 and top > extra:
        scale = (top - extra) / top          # squeeze every axes proportionally below the title
        for ax in fig.axes:
            x0, y0, w, h = ax.get_position().bounds
            ax.set_position([x0, y0 * scale, w, h * scale])


def _save(fig, path_stem, formats):
    return style.save_figure(fig, path_stem, formats)


# ---------------------------------------------------------------------------------------------
def build_bubble(reg, *, moderator: str | None = None, measure: str | None = None, back: bool = False,
                 title: str | None = None, labels: bool = False, n_grid: int = 200):
    """Bubble plot of a meta-regression with one numeric moderator.

    Points are the studies (area proportional to their weight in the model), the line is the
    fitted regression with its confidence band (``reg.predict``).

    Parameters
    ----------
    reg : metapool.metareg.MetaRegression
        A model ``intercept + one numeric moderator``.
    moderator : str, optional
        Name for the x axis (default: the coefficient name).
    measure : str, optional
        Effect measure, for the y-axis label and (with ``back=True``) the back-transform.
    back : bool
        Draw on the reporting scale (proportion, ratio) instead of the analysis scale.
    labels : bool
        Write the study labels next to the points.
    """
    if reg.p != 2 or reg.coef[0] != "intrcpt":
        raise ValueError("a bubble plot needs a model with an intercept and one numeric moderator "
                         f"(this one has: {', '.join(reg.coef)})")
    x = reg.X[:, 1]
    if np.unique(x).size <= 2 and set(np.unique(x)) <= {0.0, 1.0}:
        raise ValueError(f"moderator {reg.coef[1]!r} looks categorical (0/1); draw a subgroup forest plot")
    grid = np.linspace(x.min(), x.max(), n_grid)
    pr = reg.predict(np.column_stack([np.ones(n_grid), grid]))
    y, lo, hi, fitted = (np.asarray(v, float) for v in (reg.yi, pr["ci_lb"], pr["ci_ub"], pr["pred"]))
    if back:
        if measure is None:
            raise ValueError("back=True needs the measure")
        y, lo, hi, fitted = (np.asarray(transforms.back_transform(measure, a), float)
                             for a in (y, lo, hi, fitted))
    with rc_context(style.RC):
        fig = style.new_figure(6.4, 4.9)
        ax = fig.add_axes([0.12, 0.17, 0.84, 0.72] if title else [0.12, 0.17, 0.84, 0.78])
        ax.fill_between(grid, lo, hi, color=_BAND, alpha=0.35, linewidth=0, label=f"{reg.level:.0%} CI")
        ax.plot(grid, fitted, color=_POINT, linewidth=1.4, label="Fitted")
        w = np.asarray(reg.weights, float)
        area = 20 + 600 * w / w.max()
        ax.scatter(x, y, s=area, facecolor="none", edgecolor=_POINT, linewidth=0.9, zorder=3,
                   label="Studies (area \u221d weight)")
        if labels:
            for xi, yi, s in zip(x, y, reg.study):
                ax.annotate(s, (xi, yi), xytext=(4, 4), textcoords="offset points", fontsize=style.SMALL_SIZE)
        ax.set_xlabel(moderator or reg.coef[1])
        ax.set_ylabel(_axis_label(measure, back))
        test = "t" if reg.test == "knha" else "z"
        fig.text(0.12, 0.02, f"{reg.method} meta-regression: slope {style.fmt_num(reg.estimate[1], 4)} "
                 f"({test} test, {style.fmt_p(reg.pval[1])}); "
                 f"residual \u03c4\u00b2 = {style.fmt_tau2(reg.tau2)}; "
                 f"R\u00b2 = {style.fmt_num(reg.R2, 1)}%", fontsize=style.SMALL_SIZE)
        ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), ncols=3, fontsize=style.SMALL_SIZE,
                  markerscale=0.5,
                  frameon=False, borderaxespad=0.2)
        ax.spines[["top", "right"]].set_visible(False)
        if title:
            _suptitle(fig, title)
    return fig


def bubble_plot(reg, path_stem, *, formats=("png", "svg"), **kw):
    """Draw (:func:`build_bubble`) and save the bubble plot; returns the files written."""
    return _save(build_bubble(reg, **kw), path_stem, formats)


# ---------------------------------------------------------------------------------------------
def build_baujat(infl, *, title: str | None = None, n_labels: int = 5, labels=None):
    """Baujat plot from :func:`metapool.sensitivity.influence` (or ``baujat``): contribution to
    heterogeneity (x) against influence on the pooled result (y); the studies furthest out are
    labelled (``labels``: display names aligned with ``infl.study``)."""
    if not hasattr(infl, "baujat_x"):
        raise ValueError("build_baujat needs the Influence record of metapool.sensitivity.influence")
    x, y = np.asarray(infl.baujat_x, float), np.asarray(infl.baujat_y, float)
    with rc_context(style.RC):
        fig = style.new_figure(6.0, 4.8)
        ax = fig.add_axes([0.12, 0.12, 0.84, 0.78] if title else [0.12, 0.12, 0.84, 0.84])
        ax.scatter(x, y, s=24, color=_POINT, zorder=3)
        # distance on the scaled axes decides which studies get a label
        sx, sy = (np.ptp(x) or 1.0), (np.ptp(y) or 1.0)
        far = np.argsort(-np.hypot(x / sx, y / sy), kind="stable")[:n_labels]
        names = list(labels) if labels is not None else list(infl.study)
        right = x > np.nanmin(x) + 0.7 * sx      # labels of the right-most points go to their left
        for i in sorted(far):
            ax.annotate(str(names[i]), (x[i], y[i]), xytext=(-4 if right[i] else 4, 3),
                        textcoords="offset points", ha="right" if right[i] else "left",
                        fontsize=style.SMALL_SIZE, color=_HIGHLIGHT)
        fe = infl.method in ("FE", "EE")
        ax.set_xlabel("Contribution to overall heterogeneity" if fe else "Squared Pearson residual")
        ax.set_ylabel("Influence on overall result")
        ax.spines[["top", "right"]].set_visible(False)
        if title:
            _suptitle(fig, title)
    return fig


def baujat_plot(frame, path_stem, *, formats=("png", "svg"), **kw):
    """Draw (:func:`build_baujat`) and save the Baujat plot; returns the files written."""
    return _save(build_baujat(frame, **kw), path_stem, formats)


# ---------------------------------------------------------------------------------------------
def build_gosh(g, *, title: str | None = None, hexbin_above: int = 5000, measure: str | None = None,
               back: bool = False):
    """GOSH plot from :func:`metapool.sensitivity.gosh`: pooled estimate (x) against I² (y) of every
    fitted subset, with marginal histograms; a hexbin density above ``hexbin_above`` subsets."""
    est = np.asarray(g.estimate, float)
    if back:
        if measure is None:
            raise ValueError("back=True needs the measure")
        est = np.asarray(transforms.back_transform(measure, est), float)
    i2 = np.asarray(g.I2, float)
    ok = np.isfinite(est) & np.isfinite(i2)
    est, i2 = est[ok], i2[ok]
    with rc_context(style.RC):
        fig = style.new_figure(6.4, 5.6)
        top = 0.86 if title else 0.93
        ax = fig.add_axes([0.12, 0.1, 0.62, top - 0.1 - 0.17])
        axx = fig.add_axes([0.12, top - 0.15, 0.62, 0.15], sharex=ax)
        axy = fig.add_axes([0.76, 0.1, 0.2, top - 0.1 - 0.17], sharey=ax)
        if est.size > hexbin_above:
            ax.hexbin(est, i2, gridsize=60, bins="log", cmap="Greys", mincnt=1, linewidths=0)
        else:
            ax.scatter(est, i2, s=6, color=_POINT, alpha=0.5, linewidths=0)
        axx.hist(est, bins=60, color=_BAND)
        axy.hist(i2, bins=60, color=_BAND, orientation="horizontal")
        for a in (axx, axy):
            a.tick_params(labelbottom=False, labelleft=False)
            a.spines[["top", "right"]].set_visible(False)
        ax.set_xlabel(_axis_label(measure, back) if measure else "Pooled estimate")
        ax.set_ylabel("I\u00b2 (%)")
        ax.set_ylim(-2, 102)
        ax.spines[["top", "right"]].set_visible(False)
        kind = "all" if g.exact else f"a random sample (seed {g.seed}) of"
        fig.text(0.12, 0.015, f"{g.method} fits to {kind} {g.n_subsets:,} subsets of {len(g.study)} studies",
                 fontsize=style.SMALL_SIZE)
        if title:
            _suptitle(fig, title)
    return fig


def gosh_plot(g, path_stem, *, formats=("png", "svg"), **kw):
    """Draw (:func:`build_gosh`) and save the GOSH plot; returns the files written."""
    return _save(build_gosh(g, **kw), path_stem, formats)


# ---------------------------------------------------------------------------------------------
_PANELS = (("rstudent", "rstudent", None), ("dffits", "dffits", "dffits"), ("cook_d", "cook.d", "cook"),
           ("cov_r", "cov.r", 1.0), ("tau2_del", "tau2.del", "tau2"), ("QE_del", "QE.del", "QE"),
           ("hat", "hat", "hat"), ("weight", "weight", "weight"))


def build_influence(infl, *, title: str | None = None, tau2: float | None = None,
                    Q: float | None = None, labels=None):
    """Eight panels of case-deletion diagnostics (metafor's ``plot(influence(...))`` layout) from
    :func:`metapool.sensitivity.influence`; influential studies (``inf``) in red, cut-offs dashed.

    Parameters
    ----------
    tau2, Q : float, optional
        tau² and Q of the full model, drawn as reference lines in the tau2.del and QE.del panels.
    """
    if not hasattr(infl, "rstudent"):
        raise ValueError("build_influence needs the Influence record of metapool.sensitivity.influence")
    frame = infl
    tau2 = infl.tau2 if tau2 is None else tau2
    Q = infl.Q if Q is None else Q
    k = len(infl.study)
    idx = np.arange(1, k + 1)
    infl = np.asarray(frame.inf, bool)
    refs = {"dffits": 3 * math.sqrt(1 / max(k - 1, 1)), "cook": None, "hat": 3 / k, "weight": 100 / k,
            "tau2": tau2, "QE": Q}
    with rc_context(style.RC):
        fig = style.new_figure(7.5, 8.5)
        axes = fig.subplots(4, 2, sharex=True, gridspec_kw={"hspace": 0.35, "wspace": 0.3,
                                                             "top": 0.92 if title else 0.96, "bottom": 0.1})
        for ax, (col, label, ref) in zip(axes.ravel(), _PANELS):
            vals = np.asarray(getattr(frame, col), float)
            ax.plot(idx, vals, color=_BAND, linewidth=0.8, zorder=1)
            ax.scatter(idx[~infl], vals[~infl], s=14, color=_POINT, zorder=2)
            ax.scatter(idx[infl], vals[infl], s=18, color=_HIGHLIGHT, zorder=3)
            r = refs.get(ref, ref) if isinstance(ref, str) else ref
            if col == "rstudent":
                for h in (-1.96, 0, 1.96):
                    ax.axhline(h, color="k", linewidth=0.6, linestyle="--" if h else ":")
            elif col == "dffits" and r is not None:
                ax.axhline(r, color="k", linewidth=0.6, linestyle="--")
                ax.axhline(-r, color="k", linewidth=0.6, linestyle="--")
            elif r is not None:
                ax.axhline(r, color="k", linewidth=0.6, linestyle="--")
            ax.set_title(label, fontsize=style.FONT_SIZE)
            ax.spines[["top", "right"]].set_visible(False)
        for ax in axes[-1]:
            step = max(1, int(math.ceil(k / 20)))
            ax.set_xticks(idx[::step])
            ax.set_xlabel("Study", labelpad=1)
        names = list(labels) if labels is not None else list(frame.study)
        flagged = ", ".join(str(s) for s, f in zip(names, infl) if f) or "none"
        for line_no, line in enumerate(style.wrap(f"Influential (red): {flagged}", 7.0)[:3]):
            fig.text(0.07, 0.035 - 0.014 * line_no, line, fontsize=style.SMALL_SIZE)
        if title:
            _suptitle(fig, title)
    return fig


def influence_plot(frame, path_stem, *, formats=("png", "svg"), **kw):
    """Draw (:func:`build_influence`) and save the influence panels; returns the files written."""
    return _save(build_influence(frame, **kw), path_stem, formats)


__all__ = ["build_bubble", "bubble_plot", "build_baujat", "baujat_plot", "build_gosh", "gosh_plot",
           "build_influence", "influence_plot"]


# ---------------------------------------------------------------------------------------------
def build_not_run(title: str, reason: str):
    """A small panel that says why a planned figure could not be drawn (e.g. a study turned out
    not estimable, so fewer studies than the analysis needs remained)."""
    with rc_context(style.RC):
        fig = style.new_figure(6.0, 1.6)
        lines = style.wrap(title, 5.6, style.TITLE_SIZE, weight="bold")
        fig.text(0.04, 0.8, "\n".join(lines), fontsize=style.TITLE_SIZE, fontweight="bold", va="top")
        fig.text(0.04, 0.2, "\n".join(style.wrap(f"Not drawn: {reason}", 5.6)), fontsize=style.FONT_SIZE,
                 va="bottom")
    return fig
