"""Contour-enhanced funnel plots drawn from an :class:`~metapool.results.OutcomeAnalysis`.

Effect sizes on the analysis scale against their standard errors (y axis inverted), the
pseudo confidence region around the fixed-effect estimate, significance contours around the
null (as metafor's ``funnel(res, level = c(90, 95, 99), shade = ..., refline = 0)``; Peters et
al. 2008), optional trim-and-fill studies and Egger line, and the reporting scale on a
secondary axis.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np
from matplotlib import rc_context
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Polygon
from matplotlib.ticker import FixedLocator, MaxNLocator, NullLocator
from ..dist import norm_ppf

from .. import transforms
from . import style
from .style import FONT_SIZE, SMALL_SIZE, TITLE_SIZE, fmt_num, fmt_p, measure_family, truncate, wrap

#: Shading of the significance regions (two-sided p of yi against the reference value).
CONTOURS = ((0.10, "#ffffff", "p > 0.10"), (0.05, "#ececec", "0.05 < p \u2264 0.10"),
            (0.01, "#d2d2d2", "0.01 < p \u2264 0.05"), (0.0, "#b0b0b0", "p \u2264 0.01"))

FEW_STUDIES = 10     # Cochrane Handbook (v6.4, section 13.3.5.4): asymmetry tests need >= 10 studies


def _analysis_label(measure: str) -> str:
    lab = transforms.analysis_scale_label(measure)
    return lab[:1].upper() + lab[1:]


def _secondary_ticks(measure: str, lo: float, hi: float, ni, width: float = 4.76):
    """Reporting-scale tick values and their exact analysis-scale positions inside [lo, hi],
    thinned until their labels (measured) do not touch on an axis of ``width`` inches."""
    fam = measure_family(measure)
    scale = 100.0 if fam == "proportion" else 1.0
    r_lo, r_hi = np.asarray(transforms.back_transform(measure, np.array([lo, hi]), ni=ni), float) * scale
    if not (np.isfinite(r_lo) and np.isfinite(r_hi)) or r_hi <= r_lo:
        return np.array([]), np.array([])

    def place(vals):
        with np.errstate(all="ignore"):
            pos = np.asarray(transforms.forward_transform(measure, vals / scale, ni=ni), float)
        ok = np.isfinite(pos) & (pos >= lo) & (pos <= hi)
        return vals[ok], pos[ok]

    if fam == "ratio":
        return place(style.log_ticks(r_lo, r_hi, width, FONT_SIZE))
    vals, pos = np.array([]), np.array([])
    for nbins in range(6, 0, -1):
        vals = MaxNLocator(nbins=nbins, steps=[1, 2, 2.5, 5, 10]).tick_values(r_lo, r_hi)
        vals, pos = place(vals[(vals >= max(r_lo, 0.0)) & (vals <= min(r_hi, 100.0))])
        if style.ticks_fit(list((pos - lo) / (hi - lo) * width), [f"{v:g}" for v in vals]):
            break
    return vals, pos


def _contour_title(measure: str, refline: float, ni) -> str:
    null = float(transforms.back_transform(measure, np.array([refline]), ni=ni)[0])
    name = transforms.scale_label(measure) if measure_family(measure) == "ratio" else "effect"
    return f"Contours: two-sided p of a study\nagainst {name} = {fmt_num(null, 2).rstrip('0').rstrip('.')}"


def _get(obj, key, default=None):
    if isinstance(obj, Mapping):
        return obj.get(key, default)
    return getattr(obj, key, default)


def _egger_line(egger):
    """(limit estimate, slope on sei) of an Egger regression ``yi = b0 + b1·sei``."""
    if _get(egger, "predictor", "sei") != "sei":
        raise ValueError("the funnel plot can draw an Egger line only for the standard-error "
                         f"predictor, not {_get(egger, 'predictor')!r} (Peters' test uses 1/n)")
    try:
        b0, b1 = float(_get(egger, "estimate")), float(_get(egger, "slope"))
    except (TypeError, ValueError) as exc:
        raise ValueError("egger must be a metapool.bias.RegressionTest (or its to_dict()) with "
                         "'estimate' (limit estimate at sei = 0) and 'slope' (coefficient of sei)"
                         ) from exc
    return b0, b1


def _filled_points(filled):
    """Imputed (yi, se) of a trim-and-fill result or of a ``{"yi", "vi"}`` mapping."""
    yi, vi = np.asarray(_get(filled, "yi"), dtype=float), np.asarray(_get(filled, "vi"), dtype=float)
    mask = _get(filled, "filled")
    if mask is not None:                       # TrimFill: observed followed by the filled studies
        mask = np.asarray(mask, dtype=bool)
        yi, vi = yi[mask], vi[mask]
    return yi, np.sqrt(vi)


def build_funnel(analysis, *, contours: bool = True, filled=None, egger=None,
                 refline: float | None = None, title: str | None = None):
    """Build the funnel-plot :class:`~matplotlib.figure.Figure` of one outcome (not saved).

    Parameters
    ----------
    analysis : OutcomeAnalysis
        Effect sizes (``yi``, ``vi`` on the analysis scale) and fits; the pseudo-95% region is
        centred on the fixed-effect fit (the primary fit if there is none), as in metafor's
        ``funnel()``.
    contours : bool
        Shade the regions where a study's two-sided p against ``refline`` is > 0.10,
        0.05-0.10, 0.01-0.05 and < 0.01 (metafor ``funnel(level = c(90, 95, 99))``).
    filled : TrimFill or mapping, optional
        Trim-and-fill studies, drawn as open circles: a :class:`metapool.bias.TrimFill` (or its
        dict, whose ``filled`` mask selects the imputed studies) or ``{"yi": [...], "vi": [...]}``
        holding only the imputed studies.
    egger : RegressionTest or mapping, optional
        Egger's regression test (:func:`metapool.bias.egger_test`, metafor ``regtest``):
        ``estimate`` is the limit estimate and ``slope`` the coefficient of the standard error
        in ``yi = estimate + slope·sei``, drawn as that line; ``pval`` is shown in the legend.
    refline : float, optional
        Null value on the analysis scale for the contours; default 0 for comparative measures.
        Single-arm proportions have no null, so they get no contours unless ``refline`` is given.
    title : str, optional
        Defaults to ``analysis.label``.

    Returns
    -------
    matplotlib.figure.Figure
    """
    with rc_context(style.RC):
        return _build(analysis, contours, filled, egger, refline, title)


def _build(analysis, contours, filled, egger, refline, title):
    eff = analysis.effects
    measure = eff.measure
    fam = measure_family(measure)
    if refline is None and fam != "proportion":
        refline = 0.0
    fits = list(analysis.fits)
    centre_fit = next((f for f in fits if not f.is_random), analysis.primary if fits else None)
    yi, se = eff.yi, eff.sei
    f_yi = f_se = np.array([])
    if filled is not None:
        f_yi, f_se = _filled_points(filled)
    all_se = np.concatenate([se, f_se])
    all_yi = np.concatenate([yi, f_yi])
    se_max = float(np.nanmax(all_se)) * 1.08 if all_se.size else 1.0
    if not np.isfinite(se_max) or se_max <= 0:
        se_max = 1.0
    z = norm_ppf(0.975)
    centre = centre_fit.estimate if centre_fit is not None else float(np.nanmean(yi))
    xs = np.concatenate([all_yi, [centre - z * se_max, centre + z * se_max]])
    if refline is not None:
        xs = np.append(xs, refline)
    xs = xs[np.isfinite(xs)]
    pad = 0.06 * (xs.max() - xs.min() or 1.0)
    lo, hi = xs.min() - pad, xs.max() + pad

    fig = style.new_figure(8.5, 5.4)
    top = 0.82 if fam in ("ratio", "proportion") else 0.89
    bottom = 0.19 if eff.k < FEW_STUDIES else 0.12
    ax = fig.add_axes([0.09, bottom, 0.56, top - bottom])
    ax.set_xlim(lo, hi)
    ax.set_ylim(se_max, 0.0)
    handles = []
    if contours and refline is not None:
        ax.set_facecolor(CONTOURS[-1][1])
        for p, colour, _ in reversed(CONTOURS[:-1]):
            zz = norm_ppf(1 - p / 2)
            ax.add_patch(Polygon([[refline - zz * se_max, se_max], [refline, 0.0],
                                  [refline + zz * se_max, se_max]], closed=True, facecolor=colour,
                                 edgecolor="none", zorder=0))
        handles += [Patch(facecolor=c, edgecolor="#7f7f7f", lw=0.5, label=lab) for _, c, lab in CONTOURS]
        ax.axvline(refline, color="#6b6b6b", lw=0.8, zorder=1)
    # pseudo 95% region around the fixed-effect estimate
    ax.plot([centre - z * se_max, centre, centre + z * se_max], [se_max, 0.0, se_max], color="black",
            lw=0.9, ls=(0, (4, 2)), zorder=2)
    ax.plot([centre, centre], [0.0, se_max], color="black", lw=0.9, zorder=2)
    cname = "fixed-effect" if centre_fit is not None and not centre_fit.is_random else "pooled"
    handles.append(Line2D([], [], color="black", lw=0.9, ls=(0, (4, 2)),
                          label=f"Pseudo 95% CI around the\n{cname} estimate"))
    ax.scatter(yi, se, s=30, color="black", zorder=5)
    handles.append(Line2D([], [], ls="", marker="o", ms=5.5, color="black", label=f"Studies (k = {eff.k})"))
    if f_yi.size:
        ax.scatter(f_yi, f_se, s=30, facecolors="white", edgecolors="black", linewidths=0.9, zorder=5)
        handles.append(Line2D([], [], ls="", marker="o", ms=5.5, markerfacecolor="white",
                              markeredgecolor="black", label=f"Imputed by trim and fill ({f_yi.size})"))
    if egger is not None:
        b0, b1 = _egger_line(egger)
        ax.plot([b0, b0 + b1 * se_max], [0.0, se_max], color="#b2182b", lw=1.2, zorder=4)
        p = _get(egger, "pval")
        lab = "Egger regression line" + (f" ({fmt_p(p)})" if p is not None else "")
        handles.append(Line2D([], [], color="#b2182b", lw=1.2, label=lab))
    ax.set_xlabel(_analysis_label(measure), fontsize=FONT_SIZE)
    ax.set_ylabel("Standard error", fontsize=FONT_SIZE)
    ax.xaxis.set_major_locator(MaxNLocator(nbins=7))
    ax.yaxis.set_major_locator(MaxNLocator(nbins=6))
    ax.tick_params(labelsize=FONT_SIZE)
    if fam in ("ratio", "proportion"):
        ax2 = ax.twiny()
        ax2.set_xlim(ax.get_xlim())
        vals, pos = _secondary_ticks(measure, lo, hi, eff.ni, width=8.5 * 0.56)
        ax2.xaxis.set_major_locator(FixedLocator(pos))
        ax2.xaxis.set_minor_locator(NullLocator())
        ax2.set_xticks(pos, [style.log_tick_label(v) if fam == "ratio" else f"{v:g}" for v in vals])
        lab = transforms.scale_label(measure)
        lab = lab[:1].upper() + lab[1:] + (" (%)" if fam == "proportion" else "")
        ax2.set_xlabel(lab, fontsize=FONT_SIZE)
        ax2.tick_params(labelsize=FONT_SIZE)
    leg = ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.03, 1.0), frameon=False,
                    fontsize=SMALL_SIZE, borderaxespad=0.0, alignment="left",
                    title=(_contour_title(measure, refline, eff.ni)
                           if contours and refline is not None else None),
                    title_fontproperties={"size": SMALL_SIZE, "weight": "bold"})
    leg.set_in_layout(False)
    title = analysis.label if title is None else title
    if title:
        lines = wrap(title, 8.5 * (1 - 0.09) - 0.15, TITLE_SIZE, weight="bold")
        if len(lines) > 2:       # at most two lines above the plot; the rest is cut with an ellipsis
            lines = [lines[0], truncate(" ".join(lines[1:]), 8.5 * 0.91 - 0.15, TITLE_SIZE, "bold")]
        fig.text(0.09, 0.965, "\n".join(lines), ha="left", va="top",
                 fontsize=TITLE_SIZE, fontweight="bold")
    notes = []
    if eff.k < FEW_STUDIES:
        notes.append(f"Only {eff.k} {'study' if eff.k == 1 else 'studies'}: with fewer than "
                     f"{FEW_STUDIES} studies, tests for funnel-plot asymmetry have too little power "
                     "to distinguish chance from real asymmetry (Cochrane Handbook, section 13.3.5.4).")
    if contours and refline is None:
        notes.append("No significance contours: single-arm proportions have no null value.")
    if notes:
        lines = [ln for n in notes for ln in wrap(n, 7.6, SMALL_SIZE)]
        fig.text(0.02, 0.015, "\n".join(lines), ha="left", va="bottom", fontsize=SMALL_SIZE,
                 fontstyle="italic")
    return fig


def funnel_plot(analysis, path_stem, *, contours: bool = True, filled=None, egger=None,
                refline: float | None = None, title: str | None = None, formats=("png", "svg")):
    """Draw and save the funnel plot of one outcome as ``{path_stem}.{png,svg}``.

    See :func:`build_funnel` for the parameters; files are written atomically and are
    byte-identical between runs.

    Returns
    -------
    list of pathlib.Path
    """
    fig = build_funnel(analysis, contours=contours, filled=filled, egger=egger, refline=refline,
                       title=title)
    return style.save_figure(fig, path_stem, formats)


__all__ = ["build_funnel", "funnel_plot"]
