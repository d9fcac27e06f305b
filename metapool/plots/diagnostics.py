"""Diagnostic figures: bubble plot (meta-regression), Baujat plot, GOSH plot, influence panels.

Presentation only: every figure is drawn from a result object of :mod:`metapool.metareg` or
:mod:`metapool.sensitivity`, so a figure cannot disagree with its table.  ``build_*`` functions
return a bare :class:`matplotlib.figure.Figure`; the ``*_plot`` functions also write it as
``{path_stem}.{png,svg}`` through :func:`metapool.plots.style.save_figure` (temporary file +
``os.replace``; fixed SVG hash salt, no date), so files are byte-identical between runs.
Leave-one-out and cumulative forest plots are drawn by
:func:`metapool.plots.forest.summary_forest`.

Layout is computed in inches from measured text (:func:`metapool.plots.style.text_width`):
titles, axis labels and footers get reserved bands, tick spacing is chosen so labels do not
touch, and Baujat labels are placed where they overlap neither each other nor the canvas edge.
``tests/test_figure_layout.py`` checks the drawn texts.
"""
from __future__ import annotations

import math

import numpy as np
from matplotlib import rc_context
from matplotlib.ticker import FixedLocator, MaxNLocator

from .. import transforms
from . import style

_HIGHLIGHT = "#c0392b"
_POINT = "#2c3e50"
_BAND = "#95a5a6"
_LINE = 1.3 * style.FONT_SIZE / 72        # one line of body text, inches
_SMALL_LINE = 1.3 * style.SMALL_SIZE / 72
_TITLE_LINE = 1.3 * style.TITLE_SIZE / 72


def _axis_label(measure: str | None, back: bool) -> str:
    if measure is None:
        return "Effect size"
    lab = transforms.scale_label(measure) if back else transforms.analysis_scale_label(measure)
    return lab[:1].upper() + lab[1:]


def _title_lines(title, width: float) -> list:
    return style.wrap(title, width, size=style.TITLE_SIZE) if title else []


def _draw_title(fig, lines) -> None:
    if lines:
        fig.text(0.5, 1 - 0.08 / fig.get_figheight(), "\n".join(lines), ha="center", va="top",
                 fontsize=style.TITLE_SIZE)


def _draw_footer(fig, lines, x_in: float = 0.15) -> None:
    """Footer lines at the bottom of the canvas (their band is reserved by the caller)."""
    if lines:
        fig.text(x_in / fig.get_figwidth(), 0.08 / fig.get_figheight(), "\n".join(lines), ha="left",
                 va="bottom", fontsize=style.SMALL_SIZE, linespacing=1.3)


def _footer_h(lines) -> float:
    return (0.08 + _SMALL_LINE * len(lines) + 0.06) if lines else 0.0


def _axes(fig, left, bottom, width, height, **kw):
    """Axes placed in inches."""
    W, H = fig.get_figwidth(), fig.get_figheight()
    return fig.add_axes([left / W, bottom / H, width / W, height / H], **kw)


def _wrapped_label(text: str, width: float) -> str:
    return "\n".join(style.wrap(text, width, size=style.FONT_SIZE))


def _fit_xticks(ax, width: float, integer: bool = False, nbins: int = 7) -> None:
    """x ticks whose labels (measured) fit ``width`` inches."""
    lo, hi = ax.get_xlim()
    fmt = (lambda v: style.fmt_num(v, 0)) if integer else _plain
    steps = (1, 2, 5, 10) if integer else (1, 2, 2.5, 5, 10)
    ticks = style.linear_ticks(lo, hi, width, fmt, nbins=nbins, steps=steps)
    if integer:
        ticks = ticks[np.isclose(ticks, np.round(ticks))]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.set_xticks(ticks, [fmt(t) for t in ticks])
    ax.set_xlim(lo, hi)


def _plain(v: float) -> str:
    s = f"{v:.6g}"
    if "e" in s:
        s = f"{v:.2g}"
    return style._minus("0" if float(s) == 0 else s)


def _save(fig, path_stem, formats):
    return style.save_figure(fig, path_stem, formats)


# ---------------------------------------------------------------------------------------------
def build_bubble(reg, *, moderator: str | None = None, measure: str | None = None, back: bool = False,
                 title: str | None = None, labels: bool = False, n_grid: int = 200):
    """Bubble plot of a meta-regression with one numeric moderator.

    Points are the studies (area proportional to their weight in the model), the line is the
    fitted regression with its confidence band (``reg.predict``, metafor ``regplot``).

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
    W, H0 = 6.4, 4.6
    test = "t" if reg.test == "knha" else "z"
    foot = style.wrap(f"{reg.method} meta-regression: slope {style.fmt_num(reg.estimate[1], 4)} "
                      f"({test} test, {style.fmt_p(reg.pval[1])}); "
                      f"residual \u03c4\u00b2 = {style.fmt_tau2(reg.tau2)}"
                      + (f"; R\u00b2 = {style.fmt_num(reg.R2, 1)}%" if np.isfinite(reg.R2) else ""),
                      W - 0.3)
    tl = _title_lines(title, W - 0.3)
    ylab = _wrapped_label(_axis_label(measure, back), 3.4)
    n_ylab = ylab.count("\n") + 1
    left, right = 0.75 + _LINE * (n_ylab - 1), 0.2
    bottom = _footer_h(foot) + 0.55
    top = 0.08 + _TITLE_LINE * len(tl) + 0.1 + 0.3           # title, gap, legend row
    H = H0 + _TITLE_LINE * len(tl) + _SMALL_LINE * len(foot)
    with rc_context(style.RC):
        fig = style.new_figure(W, H)
        ax = _axes(fig, left, bottom, W - left - right, H - bottom - top)
        ax.fill_between(grid, lo, hi, color=_BAND, alpha=0.35, linewidth=0, label=f"{reg.level:.0%} CI")
        ax.plot(grid, fitted, color=_POINT, linewidth=1.4, label="Fitted")
        w = np.asarray(reg.weights, float)
        area = 20 + 600 * w / w.max()
        ax.scatter(x, y, s=area, facecolor="none", edgecolor=_POINT, linewidth=0.9, zorder=3,
                   label="Studies (area \u221d weight)")
        if labels:
            for xi, yi, s in zip(x, y, reg.study):
                ax.annotate(s, (xi, yi), xytext=(4, 4), textcoords="offset points", fontsize=style.SMALL_SIZE)
        pad = 0.04 * (np.ptp(x) or 1.0)
        ax.set_xlim(x.min() - pad, x.max() + pad)
        _fit_xticks(ax, W - left - right, integer=bool(np.all(np.isclose(x, np.round(x)))))
        ax.set_xlabel(moderator or reg.coef[1])
        ax.set_ylabel(ylab)
        ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), ncols=3, fontsize=style.SMALL_SIZE,
                  markerscale=0.5, frameon=False, borderaxespad=0.2)
        ax.spines[["top", "right"]].set_visible(False)
        _draw_title(fig, tl)
        _draw_footer(fig, foot)
    return fig


def bubble_plot(reg, path_stem, *, formats=("png", "svg"), **kw):
    """Draw (:func:`build_bubble`) and save the bubble plot; returns the files written."""
    return _save(build_bubble(reg, **kw), path_stem, formats)


# ---------------------------------------------------------------------------------------------
_LABEL_MAX = 2.2      # widest Baujat point label, inches (shortened in the middle beyond)


def _place_labels(ax, fig, x, y, order, names, box):
    """Place point labels without overlaps: for each point (in ``order``) try right-above,
    left-above, right-below, left-below and keep the first spot inside ``box`` (inches:
    x0, y0, x1, y1) that meets no label placed before.  Returns the indices left unlabelled."""
    to_in = ax.transData + fig.dpi_scale_trans.inverted()
    h = 1.2 * style.SMALL_SIZE / 72
    placed, missed = [], []
    for i in order:
        px, py = to_in.transform((x[i], y[i]))
        text = names[i]
        w = style.text_width(text, style.SMALL_SIZE)
        for sx, sy in ((1, 1), (-1, 1), (1, -1), (-1, -1)):
            x0 = px + 0.05 if sx > 0 else px - 0.05 - w
            y0 = py + 0.03 if sy > 0 else py - 0.03 - h
            cand = (x0, y0, x0 + w, y0 + h)
            inside = cand[0] >= box[0] and cand[1] >= box[1] and cand[2] <= box[2] and cand[3] <= box[3]
            clash = any(cand[0] < b[2] + 0.03 and b[0] < cand[2] + 0.03 and cand[1] < b[3] + 0.02
                        and b[1] < cand[3] + 0.02 for b in placed)
            if inside and not clash:
                placed.append(cand)
                ax.annotate(text, (x[i], y[i]), xytext=(sx * 0.05 * 72, sy * 0.03 * 72),
                            textcoords="offset points", ha="left" if sx > 0 else "right",
                            va="bottom" if sy > 0 else "top", fontsize=style.SMALL_SIZE, color=_HIGHLIGHT)
                break
        else:
            missed.append(i)
    return missed


def build_baujat(infl, *, title: str | None = None, n_labels: int = 5, labels=None):
    """Baujat plot from :func:`metapool.sensitivity.influence` (or ``baujat``): contribution to
    heterogeneity (x) against influence on the pooled result (y); the ``n_labels`` studies
    furthest out are labelled (``labels``: display names aligned with ``infl.study``) where a
    label fits without overlapping another, else named in the footer."""
    if not hasattr(infl, "baujat_x"):
        raise ValueError("build_baujat needs the Influence record of metapool.sensitivity.influence")
    x, y = np.asarray(infl.baujat_x, float), np.asarray(infl.baujat_y, float)
    W, H0 = 6.0, 4.6
    tl = _title_lines(title, W - 0.3)
    sx, sy = (np.ptp(x) or 1.0), (np.ptp(y) or 1.0)
    far = [int(i) for i in np.argsort(-np.hypot(x / sx, y / sy), kind="stable")[:n_labels]]
    names = [style.truncate_middle(str(s), _LABEL_MAX, style.SMALL_SIZE)
             for s in (list(labels) if labels is not None else list(infl.study))]
    # the footer may name unplaced labels: reserve one line, two when many are labelled
    foot_lines = 1 if n_labels <= 5 else 2
    left, right, bottom = 0.8, 0.2, 0.55 + _footer_h([""] * foot_lines)
    top = 0.08 + _TITLE_LINE * len(tl) + 0.15
    H = H0 + _TITLE_LINE * len(tl)
    with rc_context(style.RC):
        fig = style.new_figure(W, H)
        ax = _axes(fig, left, bottom, W - left - right, H - bottom - top)
        ax.scatter(x, y, s=24, color=_POINT, zorder=3)
        px, py = 0.06 * sx, 0.08 * sy
        ax.set_xlim(np.nanmin(x) - px, np.nanmax(x) + px)
        ax.set_ylim(np.nanmin(y) - py, np.nanmax(y) + py)
        fe = infl.method in ("FE", "EE")
        ax.set_xlabel("Contribution to overall heterogeneity" if fe else "Squared Pearson residual")
        ax.set_ylabel("Influence on overall result")
        ax.spines[["top", "right"]].set_visible(False)
        box = (left + 0.02, bottom + 0.02, W - 0.1, H - top + 0.1)
        missed = _place_labels(ax, fig, x, y, far, names, box)
        if missed:
            text = "Also far out (not labelled): " + "; ".join(names[i] for i in missed)
            lines = style.wrap(text, W - 0.3, style.SMALL_SIZE)
            if len(lines) > foot_lines:
                lines = lines[:foot_lines - 1] + [style.truncate(" ".join(lines[foot_lines - 1:]), W - 0.3,
                                                                 style.SMALL_SIZE)]
            _draw_footer(fig, lines)
        _draw_title(fig, tl)
    return fig


def baujat_plot(frame, path_stem, *, formats=("png", "svg"), **kw):
    """Draw (:func:`build_baujat`) and save the Baujat plot; returns the files written."""
    return _save(build_baujat(frame, **kw), path_stem, formats)


# ---------------------------------------------------------------------------------------------
def _count_label(v: float) -> str:
    return f"{int(round(v)):,}"


def build_gosh(g, *, title: str | None = None, hexbin_above: int = 5000, measure: str | None = None,
               back: bool = False):
    """GOSH plot from :func:`metapool.sensitivity.gosh`: pooled estimate (x) against I² (y) of every
    fitted subset, with marginal histograms (count axes: number of subsets); a hexbin density
    (log-scaled grey) above ``hexbin_above`` subsets."""
    est = np.asarray(g.estimate, float)
    if back:
        if measure is None:
            raise ValueError("back=True needs the measure")
        est = np.asarray(transforms.back_transform(measure, est), float)
    i2 = np.asarray(g.I2, float)
    ok = np.isfinite(est) & np.isfinite(i2)
    est, i2 = est[ok], i2[ok]
    W, H0 = 6.4, 5.4
    tl = _title_lines(title, W - 0.3)
    kind = "all" if g.exact else f"a random sample (seed {g.seed}) of"
    foot = style.wrap(f"{g.method} fits to {kind} {g.n_subsets:,} subsets of {len(g.study)} studies; "
                      "the histograms count subsets.", W - 0.3, style.SMALL_SIZE)
    main_w, marg = 4.1, 1.0
    xlab = _wrapped_label(_axis_label(measure, back) if measure else "Pooled estimate", main_w)
    n_xlab = xlab.count("\n") + 1
    left, gap = 0.8, 0.12
    bottom = _footer_h(foot) + 0.5 + _LINE * n_xlab
    H = H0 + _TITLE_LINE * len(tl) + _LINE * (n_xlab - 1) + _SMALL_LINE * (len(foot) - 1)
    top = 0.08 + _TITLE_LINE * len(tl) + 0.15
    main_h = H - bottom - top - gap - marg
    with rc_context(style.RC):
        fig = style.new_figure(W, H)
        ax = _axes(fig, left, bottom, main_w, main_h)
        axx = _axes(fig, left, bottom + main_h + gap, main_w, marg, sharex=ax)
        axy = _axes(fig, left + main_w + gap, bottom, marg, main_h, sharey=ax)
        if est.size > hexbin_above:
            ax.hexbin(est, i2, gridsize=60, bins="log", cmap="Greys", mincnt=1, linewidths=0)
        else:
            ax.scatter(est, i2, s=6 if est.size > 500 else 14, color=_POINT, alpha=0.5, linewidths=0)
        axx.hist(est, bins=60, color=_BAND)
        axy.hist(i2, bins=60, color=_BAND, orientation="horizontal")
        ax.set_ylim(-2, 102)
        ax.set_xlabel(xlab)
        ax.set_ylabel("I\u00b2 (%)")
        for a in (ax, axx, axy):
            a.spines[["top", "right"]].set_visible(False)
        axx.tick_params(labelbottom=False)
        axy.tick_params(labelleft=False)
        # count axes: a few measured ticks, no label at 0 (it would meet the main axis' labels)
        top_count = axx.get_ylim()[1]
        yt = MaxNLocator(nbins=3, steps=[1, 2, 5, 10], integer=True).tick_values(0, top_count)
        yt = yt[(yt > 0) & (yt <= top_count) & np.isclose(yt, np.round(yt))]
        axx.set_yticks(yt, [_count_label(v) for v in yt])
        axx.set_ylabel("Subsets", labelpad=2)
        right_count = axy.get_xlim()[1]
        xt = style.linear_ticks(0.0, right_count, marg, _count_label, nbins=3, steps=(1, 2, 5, 10))
        xt = xt[(xt > 0) & (xt <= right_count) & np.isclose(xt, np.round(xt))]
        axy.set_xticks(xt, [_count_label(v) for v in xt])
        axy.set_xlabel("Subsets")
        _fit_xticks(ax, main_w)
        _draw_title(fig, tl)
        _draw_footer(fig, foot)
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
    Study numbers on the x axes are thinned so that their labels do not touch.

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
    W = 7.5
    tl = _title_lines(title, W - 0.3)
    names = list(labels) if labels is not None else list(frame.study)
    flagged = ", ".join(f"{i + 1} {s}" for i, (s, f) in enumerate(zip(names, infl)) if f) or "none"
    foot = style.wrap(f"Influential (red), by study number: {flagged}", W - 0.3, style.SMALL_SIZE)
    if len(foot) > 3:
        foot = foot[:2] + [style.truncate(" ".join(foot[2:]), W - 0.3, style.SMALL_SIZE)]
    H = 8.3 + _TITLE_LINE * len(tl) + _SMALL_LINE * len(foot)
    top_in = 0.08 + _TITLE_LINE * len(tl) + 0.4          # the panel titles sit above the axes
    bottom_in = _footer_h(foot) + 0.5
    panel_w = (W - 0.7 - 0.2) / (2 + 0.3)             # width of one panel (gridspec wspace = 0.3)
    label_w = style.text_width(str(k)) + 0.1
    step = 1
    while k > 1 and (panel_w * 0.9 / max(k - 1, 1)) * step < label_w:
        step += 1
    with rc_context(style.RC):
        fig = style.new_figure(W, H)
        axes = fig.subplots(4, 2, sharex=True, gridspec_kw={
            "hspace": 0.45, "wspace": 0.3, "left": 0.7 / W, "right": 1 - 0.2 / W,
            "top": 1 - top_in / H, "bottom": bottom_in / H})
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
            elif r is not None and np.isfinite(r):
                ax.axhline(r, color="k", linewidth=0.6, linestyle="--")
            ax.set_title(label, fontsize=style.FONT_SIZE)
            ax.yaxis.set_major_locator(MaxNLocator(nbins=4))
            ax.spines[["top", "right"]].set_visible(False)
        for ax in axes[-1]:
            ax.set_xticks(idx[::step])
            ax.set_xlabel("Study number", labelpad=1)
        _draw_title(fig, tl)
        _draw_footer(fig, foot)
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
        tl = style.wrap(title, 5.6, style.TITLE_SIZE, weight="bold")
        body = style.wrap(f"Not drawn: {reason}", 5.6)
        H = 0.3 + _TITLE_LINE * len(tl) + 0.15 + _LINE * len(body) + 0.2
        fig = style.new_figure(6.0, H)
        fig.text(0.2 / 6.0, 1 - 0.2 / H, "\n".join(tl), fontsize=style.TITLE_SIZE, fontweight="bold", va="top")
        fig.text(0.2 / 6.0, 0.2 / H, "\n".join(body), fontsize=style.FONT_SIZE, va="bottom")
    return fig
