"""Forest plots drawn from an :class:`~metapool.results.OutcomeAnalysis`.

The figure is a table with a plot panel, laid out like metafor's ``forest()`` and RevMan:
one row per study (label, raw data, weights, estimate and CI on the reporting scale, a
square of area proportional to the weight and CI whiskers), then one diamond per pooled
model, the prediction interval of the primary random-effects model and footers with
heterogeneity, the subgroup test and the evidence markers.  Column widths are measured
with the renderer, so text columns never overlap; long study labels are shortened in the
middle (the year stays), model labels never; axis ticks are chosen so their labels fit.  Every number printed is read from the same result objects the tables use.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from matplotlib import rc_context
from matplotlib.lines import Line2D
from matplotlib.patches import Polygon
from matplotlib.ticker import FixedLocator, NullLocator
from matplotlib.transforms import blended_transform_factory

from .. import transforms
from ..dist import norm_ppf
from ..registry import MEASURES
from ..results import MetaResult, NotRun
from . import style
from .style import (FONT_SIZE, ROW_H, SMALL_SIZE, TITLE_SIZE, fmt_num, fmt_p, fmt_raw, fmt_tau2,
                    measure_family, text_width, truncate, truncate_middle, wrap)

MARGIN = 0.15          # outer margin, inches
GAP = 0.16             # between text columns
PLOT_GAP = 0.22        # between the text columns and the plot panel
PLOT_W = 3.0           # plot panel width
MIN_W = 7.0            # minimum figure width (room for footers)
LABEL_MAX = 2.4        # longest study label before truncation (model labels are never cut)
HEADER_MAX = 1.9       # widest estimate-column header before its qualifier is dropped
INDENT = 0.12          # indent of study rows under a subgroup header
AXIS_H = 0.55          # tick labels + axis label under the plot panel
FOOT_H = 0.17          # one footer line
FAVOURS_LINE = 0.15    # one line of the "Favours ..." labels under the axis label
FAVOURS_MAX = 2.3      # widest "Favours ..." line before it wraps (two lines at most)
INFERRED_MARK = "\u2020"   # †
CONVERTED_MARK = "\u2021"  # ‡

COL_SQUARE = "#1f4e79"
COL_DIAMOND = "#1f4e79"
COL_SUBTOTAL = "#5b8db8"
COL_REF = "#6b6b6b"
COL_SENS = "#d0d0d0"       # the diamond that includes inferred numbers


# ----------------------------------------------------------------------------- scale

@dataclass(frozen=True)
class _Scale:
    measure: str
    family: str
    log: bool
    ref: float | None
    factor: float        # reporting value -> plotted value (100 for proportions in %)
    digits: int
    axis_label: str
    value_label: str


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:] if s else s


def _short_label(label: str) -> str:
    """Column-header form of a scale label: drop a long parenthesised qualifier."""
    if text_width(label, FONT_SIZE, "bold") <= HEADER_MAX or " (" not in label:
        return label
    return label.split(" (")[0]


def _scale(measure: str) -> _Scale:
    fam = measure_family(measure)
    label = _cap(transforms.scale_label(measure))
    if fam == "proportion":
        return _Scale(measure, fam, False, None, 100.0, 1, f"{label} (%)", f"{label} (%)")
    if fam == "ratio":
        return _Scale(measure, fam, True, 1.0, 1.0, 2, f"{label} (log scale)", _short_label(label))
    return _Scale(measure, fam, False, 0.0, 1.0, 2, label, _short_label(label))


def _back(measure: str, x, ni=None) -> np.ndarray:
    """Back-transform analysis-scale values; with per-value ``ni`` (Freeman-Tukey) value by value."""
    x = np.asarray(x, dtype=float)
    if ni is None or np.ndim(ni) == 0 or measure.upper() != "PFT":
        return np.asarray(transforms.back_transform(measure, x, ni=ni), dtype=float)
    ni = np.broadcast_to(np.asarray(ni, dtype=float), x.shape)
    out = np.empty_like(x)
    for idx in np.ndindex(x.shape):     # PFT: each study is back-transformed with its own n
        out[idx] = transforms.back_transform(measure, np.array([x[idx]]), ni=np.array([ni[idx]]))[0]
    return out


def _fit_label(fit: MetaResult) -> str:
    test = {"z": "z", "knha": "HKSJ", "t": "t"}.get(fit.test, fit.test)
    if fit.method in ("MH",):
        return "Fixed effect (Mantel-Haenszel)"
    if fit.method in ("PETO",):
        return "Fixed effect (Peto)"
    if fit.method == "GLMM":
        return "Random effects (GLMM)"
    kind = "Random effects" if fit.is_random else "Fixed effect"
    method = "inverse variance" if fit.method in ("FE", "EE") else fit.method
    return f"{kind} ({method}, {test})"


# ----------------------------------------------------------------------------- table model

@dataclass
class _Col:
    key: str
    header: str
    align: str = "right"
    group: str | None = None
    side: str = "left"
    x0: float = 0.0
    width: float = 0.0


@dataclass
class _Row:
    kind: str                     # study, group, subtotal, subhet, pooled, pi, blank, point
    label: str = ""
    cells: dict = field(default_factory=dict)
    est: float = math.nan         # reporting scale (before the % factor)
    lb: float = math.nan
    ub: float = math.nan
    size: float = math.nan        # weight (%) for the square
    gid: str | None = None
    mark: str = ""                # marker appended to the label after truncation (never cut)


_LABEL_FONT = {"group": ("bold", "normal", FONT_SIZE), "subtotal": ("bold", "normal", FONT_SIZE),
               "pooled": ("bold", "normal", FONT_SIZE), "pi": ("normal", "italic", FONT_SIZE),
               "subhet": ("normal", "italic", SMALL_SIZE), "sens": ("normal", "italic", FONT_SIZE)}


def _label_font(kind: str):
    return _LABEL_FONT.get(kind, ("normal", "normal", FONT_SIZE))


_DATA_LAYOUT = {
    "proportion": [(None, [("events", "Events"), ("total", "Total")])],
    "binary": [("T", [("events_treat", "Events"), ("total_treat", "Total")]),
               ("C", [("events_ctrl", "Events"), ("total_ctrl", "Total")])],
    "continuous": [("T", [("mean_treat", "Mean"), ("sd_treat", "SD"), ("n_treat", "Total")]),
                   ("C", [("mean_ctrl", "Mean"), ("sd_ctrl", "SD"), ("n_ctrl", "Total")])],
    "prepost": [("Before", [("mean_pre", "Mean"), ("sd_pre", "SD")]),
                ("After", [("mean_post", "Mean"), ("sd_post", "SD")]),
                (None, [("n", "N")])],
}
_COUNT_COLUMNS = {"events", "total", "events_treat", "total_treat", "events_ctrl", "total_ctrl",
                  "n_treat", "n_ctrl", "n"}


def _data_rows(effects):
    """The data records aligned with ``effects.study`` (or None)."""
    data = list(effects.data or ())
    if len(data) != effects.k:
        return None
    return data


def _data_columns(effects, arm_labels):
    """Raw-data columns: list of (_Col, values per study, total or None)."""
    data = _data_rows(effects)
    out = []
    if effects.kind == "generic" or effects.kind not in _DATA_LAYOUT or data is None:
        grp = "Analysis scale"
        out.append((_Col("gen_yi", "Estimate", group=grp), [fmt_num(v, 3) for v in effects.yi], None))
        out.append((_Col("gen_se", "SE", group=grp), [fmt_num(v, 3) for v in effects.sei], None))
        return out
    arms = {"T": arm_labels[0], "C": arm_labels[1]}
    for grp, cols in _DATA_LAYOUT[effects.kind]:
        for key, header in cols:
            if not any(r.get(key) is not None for r in data):
                continue
            vals = [r.get(key) for r in data]
            total = None
            if key in _COUNT_COLUMNS:
                num = np.array([math.nan if v is None else float(v) for v in vals])
                total = fmt_raw(num.sum()) if np.isfinite(num).all() else None
            out.append((_Col(key, header, group=arms.get(grp, grp)), [fmt_raw(v) for v in vals], total))
    return out


GLMM_NOTE = ("GLMM: binomial-normal generalised linear mixed model (logit link, exact binomial "
             "likelihood, maximum likelihood; Stijnen, Hamza & Ozdemir 2010); it pools the counts, "
             "so it gives no study weights.")
NOT_ESTIMABLE = "not estimable"


def _fmt_value(v: float, sc: _Scale) -> str:
    """A reporting-scale value as printed: ``sc.digits`` decimals; ratios below 0.01 with two
    significant digits (a ratio is never 0.00), below 0.0001 as ``<0.0001``; ratios of 1000 and
    more without decimals."""
    v = float(v) * sc.factor
    if sc.log and np.isfinite(v) and v > 0:
        if v < 1e-4:
            return "<0.0001"
        if v < 0.01:
            return f"{v:.{1 - math.floor(math.log10(v))}f}"
        if v >= 1000:
            return fmt_num(v, 0)
    return fmt_num(v, sc.digits)


def _ci_text(est, lb, ub, sc: _Scale) -> str:
    """``"est [lb, ub]"`` on the reporting scale, or ``"not estimable"`` (never NA)."""
    if not np.isfinite(est):
        return NOT_ESTIMABLE
    if np.isnan(lb) or np.isnan(ub):
        return f"{_fmt_value(est, sc)} [CI {NOT_ESTIMABLE}]"
    return f"{_fmt_value(est, sc)} [{_fmt_value(lb, sc)}, {_fmt_value(ub, sc)}]"


def _markers(studies, provenance):
    """Per-study marker strings, the inferred study keys and the conversion footnote."""
    prov = {p.get("study"): p for p in provenance}
    marks, inferred, conv = [], [], set()
    for s in studies:
        p = prov.get(s, {})
        m = ""
        if str(p.get("status", "")).lower() == "inferred":
            m += INFERRED_MARK
            inferred.append(s)
        if p.get("conversion"):
            m += CONVERTED_MARK
            conv.add(str(p["conversion"]))
        marks.append(m)
    foot = []
    if conv:
        foot.append(f"{CONVERTED_MARK} Mean and SD estimated from the median and range/IQR ("
                    + "; ".join(sorted(conv)) + ").")
    return marks, inferred, foot


def _first_clause(note: str, limit: int = 160) -> str:
    """The opening clause of a data note (up to the first ';' or sentence end), at most ``limit``
    characters: the figure names what was inferred; the whole note is in the report."""
    note = note.strip()
    for sep in ("; ", ". "):
        if sep in note:
            note = note.split(sep)[0]
    note = note.rstrip(".")
    return note if len(note) <= limit else note[:limit - 1].rstrip() + "\u2026"


def _inferred_footnote(analysis, pooled: list, open_: list, sens_fit) -> str:
    """What was inferred, for which study, and where it is pooled."""
    prov = {p.get("study"): p for p in analysis.provenance}

    def what(s):
        note = _first_clause(str((prov.get(s) or {}).get("note") or ""))
        return analysis.label_of(s) + (f" ({note})" if note else "")

    parts = []
    if pooled:
        parts.append("in the primary pool: " + "; ".join(what(s) for s in pooled))
    if open_:
        where = (f"pooled only in the grey diamond \u2018Including inferred numbers ({sens_fit.method}, "
                 f"k = {sens_fit.k})\u2019"
                 if sens_fit is not None else "not pooled")
        parts.append(f"open circles, not in the primary pool, {where}: " + "; ".join(what(s) for s in open_))
    return (f"{INFERRED_MARK} Inferred numbers (evidence status \u2018inferred\u2019, an assumption "
            "rather than a printed number): " + "; ".join(parts) + ".")


def _weight_map(fit: MetaResult | None, studies) -> list:
    if fit is None:
        return [math.nan] * len(studies)
    w = dict(zip(fit.study, fit.weights))
    return [float(w.get(s, math.nan)) for s in studies]


def _heterogeneity_text(fit: MetaResult, prefix="Heterogeneity", with_ci=True, method=True) -> str:
    """``"Heterogeneity (REML): τ² = ... [CI]; I² = ...% [CI]; Q = ..., df = ..., p = ..."``;
    ``"Heterogeneity: not applicable (k = 1)"`` for a single study."""
    if fit.k < 2:
        return f"{prefix}: not applicable (k = {fit.k})"
    if not np.isfinite(fit.Q):
        return f"{prefix}: {NOT_ESTIMABLE} ({fit.method} gives no Q)"
    parts = []
    if fit.is_random and np.isfinite(fit.tau2):
        t = f"\u03c4\u00b2 = {fmt_tau2(fit.tau2)}"
        if with_ci and np.isfinite(fit.tau2_ci_lb) and np.isfinite(fit.tau2_ci_ub):
            t += f" [{fmt_tau2(fit.tau2_ci_lb)}, {fmt_tau2(fit.tau2_ci_ub)}]"
        parts.append(t)
    if np.isfinite(fit.I2):
        t = f"I\u00b2 = {fmt_num(fit.I2, 1)}%"
        if with_ci and np.isfinite(fit.I2_ci_lb) and np.isfinite(fit.I2_ci_ub):
            t += f" [{fmt_num(fit.I2_ci_lb, 1)}, {fmt_num(fit.I2_ci_ub, 1)}]"
        parts.append(t)
    q = f"Q = {fmt_num(fit.Q, 2)}, df = {int(fit.Q_df)}"
    if np.isfinite(fit.Q_pval):
        q += f", {fmt_p(fit.Q_pval)}"
    parts.append(q)
    return f"{prefix}{f' ({fit.method})' if method else ''}: " + "; ".join(parts)


def _pi_note(fit: MetaResult) -> str:
    if fit.pi_method == "higgins":
        q = "t distribution, k \u2212 2 df (Higgins et al. 2009)"
    elif fit.test == "knha":
        q = "t distribution, k \u2212 1 df (metafor)"
    else:
        q = "normal quantile (metafor)"
    return f"Prediction interval of the {fit.method} model: {q}."


def _study_ci(effects, level: float):
    z = norm_ppf(0.5 + level / 2)
    se = effects.sei
    ana = np.vstack([effects.yi, effects.yi - z * se, effects.yi + z * se])
    ni = None
    if effects.ni is not None:
        ni = np.broadcast_to(effects.ni, ana.shape)
    back = _back(effects.measure, ana, ni)
    return back[0], back[1], back[2]


def _subgroup_spec(analysis):
    sg = analysis.subgroups
    if sg is None or isinstance(sg, NotRun) or not sg.groups:
        return None
    return sg


def _sensitivity(analysis):
    """The inferred-sensitivity analysis when it ran (its extra rows and refitted models)."""
    sens = analysis.inferred_sensitivity
    if sens is None or isinstance(sens, NotRun) or sens.effects is None:
        return None
    return sens


def _not_fitted(analysis) -> list:
    """Footnotes for the configured models that have no diamond, with the reason."""
    fitted = {f.method for f in analysis.fits}
    out = []
    for m in analysis.spec.methods:
        if m in fitted:
            continue
        why = None
        if m == "GLMM" and isinstance(analysis.glmm, NotRun):
            why = analysis.glmm.reason
        for n in analysis.notes:
            if n.startswith(f"{m} not fitted:"):
                why = n.split(":", 1)[1].strip()
        out.append((m, why or "see the report"))
    grouped: dict = {}                   # one line per reason: "DL, REML, GLMM not fitted: k = 1 (...)"
    for m, why in out:
        grouped.setdefault(why, []).append(m)
    lines = [f"{', '.join(ms)} not fitted: {why}." for why, ms in grouped.items()]
    lines += [n.rstrip(".") + "." for n in analysis.notes if " fitted to show the single study" in n]
    return lines


# ----------------------------------------------------------------------------- forest

def study_labels(analysis) -> list[str]:
    """Row label per study of ``analysis.effects`` ("He 2020", made by
    :func:`metapool.analysis.study_labels` from the study table), else the study key."""
    return [analysis.label_of(s) for s in analysis.effects.study]


def _overall_test(fit: MetaResult, sc: _Scale) -> str:
    """``Test for overall effect (REML): z = -2.31, p = 0.021 (H0: RR = 1)``: comparisons only."""
    if sc.family == "proportion" or not np.isfinite(fit.stat) or not np.isfinite(fit.pval):
        return ""
    stat = "t" if fit.test == "knha" else "z"
    null = f"{fit.measure} = {sc.ref:g}" if sc.ref is not None else "no effect"
    return (f"Test for overall effect ({fit.method}): {stat} = {fmt_num(fit.stat, 2)}, "
            f"{fmt_p(fit.pval)} (H0: {null}).")


def build_forest(analysis, *, title: str | None = None,
                 arm_labels: Sequence[str] = ("LD-IL-2", "Control")):
    """Build the forest-plot :class:`~matplotlib.figure.Figure` of one outcome (not saved).

    Parameters
    ----------
    analysis : OutcomeAnalysis
        Effect sizes and fitted models.  ``analysis.subgroups`` adds subgroup blocks; the
        provenance adds the † (inferred) and ‡ (converted) markers; the inferred-sensitivity
        analysis adds its rows (open markers) and a second diamond pooling them;
        ``analysis.spec.favours`` labels the two sides of the null.
    title : str, optional
        Figure title; defaults to ``analysis.label`` (pass ``""`` for none).
    arm_labels : pair of str
        Column-group titles of the two arms for two-arm data.

    Returns
    -------
    matplotlib.figure.Figure

    Notes
    -----
    The layout follows metafor's ``forest.rma()`` (Viechtbauer 2010) and RevMan 5: squares
    with area proportional to the weight of the primary random-effects model, study CIs
    ``yi ± z·sqrt(vi)`` back-transformed to the reporting scale, one diamond per pooled fit
    (``MetaResult.reporting()``), the prediction interval of the primary fit.  No figure text
    says NA: a value that cannot be estimated says "not estimable" and a footnote names it; a
    configured model that was not fitted is named in a footnote with the reason.  The numbers
    are those of the result records, which ``tests/test_plots.py`` checks against R metafor.
    """
    if not analysis.fits:
        raise ValueError(f"outcome {analysis.outcome!r} has no fitted model to plot")
    eff = analysis.effects
    fits = list(analysis.fits)
    primary = analysis.primary
    fixed = next((f for f in fits if not f.is_random), None)
    level = float(primary.level)
    sc = _scale(eff.measure)

    # --- columns: weights of the primary model (the first random fit with weights) and the fixed one
    dcols = _data_columns(eff, arm_labels)
    cols = [c for c, _, _ in dcols]
    has_w = [f for f in fits if np.isfinite(np.asarray(f.weights, float)).any()]
    wmain = next((f for f in has_w if f.is_random), has_w[0] if has_w else None)
    wfits = [f for f in (wmain, fixed) if f is not None]
    if len(wfits) == 2 and wfits[0] is wfits[1]:
        wfits = wfits[:1]
    for j, f in enumerate(wfits):
        cols.append(_Col(f"w{j}", "FE" if f.method in ("FE", "EE") else f.method,
                         group="Weight (%)", side="right"))
    ci_pct = f"{round(level * 100):g}% CI"
    cols.append(_Col("est", f"{sc.value_label}\n[{ci_pct}]", side="right"))

    # --- study rows
    est, lb, ub = _study_ci(eff, level)
    weights = [_weight_map(f, eff.study) for f in wfits] or [[math.nan] * eff.k]
    marks, inferred_pooled, mark_notes = _markers(eff.study, analysis.provenance)
    names = study_labels(analysis)
    not_estimable = []

    def study_row(i):
        cells = {c.key: vals[i] for c, vals, _ in dcols}
        for j in range(len(wfits)):
            cells[f"w{j}"] = fmt_num(weights[j][i], 1) if np.isfinite(weights[j][i]) else ""
        cells["est"] = _ci_text(est[i], lb[i], ub[i], sc)
        if NOT_ESTIMABLE in cells["est"]:
            not_estimable.append(names[i])
        return _Row("study", names[i], cells, est[i], lb[i], ub[i], weights[0][i], gid=f"study-{i}",
                    mark=(" " + marks[i]) if marks[i] else "")

    def fit_row(kind, fit, label, gid, weight_cells):
        rep = fit.reporting()
        cells = {"est": _ci_text(rep["estimate"], rep["ci_lb"], rep["ci_ub"], sc)}
        if NOT_ESTIMABLE in cells["est"]:
            not_estimable.append(label)
        cells.update(weight_cells)
        return _Row(kind, label, cells, rep["estimate"], rep["ci_lb"], rep["ci_ub"], gid=gid)

    # --- rows the status filter left out, shown with open circles (inferred-sensitivity analysis)
    index = {s: i for i, s in enumerate(eff.study)}
    sens = _sensitivity(analysis)
    sens_rows, inferred_open = [], []
    if sens is not None:
        se = sens.effects
        extra = [i for i, s in enumerate(se.study) if s not in index]
        if extra:
            s_est, s_lb, s_ub = _study_ci(se, level)
            s_marks, s_inferred, s_notes = _markers(se.study, analysis.provenance)
            inferred_open = [s for s in s_inferred if s not in index]
            mark_notes = list(dict.fromkeys(mark_notes + s_notes))
            data = list(se.data) if len(se.data or ()) == se.k else None
            for i in extra:
                cells = {}
                if data is not None:
                    for c, _, _ in dcols:
                        if data[i].get(c.key) is not None:
                            cells[c.key] = fmt_raw(data[i].get(c.key))
                cells["est"] = _ci_text(s_est[i], s_lb[i], s_ub[i], sc)
                label = analysis.label_of(se.study[i])
                if NOT_ESTIMABLE in cells["est"]:
                    not_estimable.append(label)
                sens_rows.append(_Row("open", label, cells, s_est[i], s_lb[i], s_ub[i], gid=f"inferred-{i}",
                                      mark=(" " + s_marks[i]) if s_marks[i] else ""))

    rows: list[_Row] = []
    footers: list[str] = []
    sg = _subgroup_spec(analysis)
    if sg is None:
        rows += [study_row(i) for i in range(eff.k)]
    else:
        seen = set()
        groups = [(g.name, g.study, g.fit) for g in sg.groups]
        rest = [s for s in eff.study if s not in {x for g in sg.groups for x in g.study}]
        if rest:
            groups.append(("Not classified", rest, None))
        for g_i, (gname, gstudy, gfit) in enumerate(groups):
            members = [index[s] for s in gstudy if s in index and s not in seen]
            seen.update(eff.study[i] for i in members)
            rows.append(_Row("group", f"{gname}"))
            rows += [study_row(i) for i in members]
            if gfit is not None:
                wcells = {f"w{j}": fmt_num(np.nansum([weights[j][i] for i in members]), 1)
                          for j in range(len(wfits))}
                rows.append(fit_row("subtotal", gfit, f"Subtotal ({gfit.method}, k = {gfit.k})",
                                    f"subgroup-{g_i}", wcells))
                rows.append(_Row("subhet", _heterogeneity_text(gfit, with_ci=False, method=False),
                                 gid=f"subgroup-{g_i}-het"))
            rows.append(_Row("blank"))
        test = sg.test
        how = {"separate": "; \u03c4\u00b2 estimated separately within subgroups",
               "common": "; common \u03c4\u00b2 across subgroups"}.get(test.tau2, "")
        footers.append(f"Test for subgroup differences ({sg.by}): Q = {fmt_num(test.Q_between, 2)}, "
                       f"df = {int(test.df)}, {fmt_p(test.pval)}{how}.")
    if sens_rows:
        if sg is None:
            rows.append(_Row("blank"))
        rows.append(_Row("sens", "Left out of the primary pool (sensitivity analysis only)"))
        rows += sens_rows
    if not rows or rows[-1].kind != "blank":
        rows.append(_Row("blank"))

    # --- pooled rows (the prediction interval of the primary fit follows all diamonds)
    totals = {c.key: t for c, _, t in dcols if t is not None}
    n_random = sum(f.is_random for f in fits)
    for j, f in enumerate(fits):
        wcells = {f"w{m}": "100.0" for m, wf in enumerate(wfits) if wf is f}
        row = fit_row("pooled", f, _fit_label(f), f"pooled-{j}", wcells)
        row.size = 1.0 if f.is_random else 0.0        # filled diamond for random effects
        if j == 0:
            row.cells.update(totals)
        rows.append(row)
    if (primary.is_random and primary.k > 1 and np.isfinite(primary.pi_lb)
            and np.isfinite(primary.pi_ub)):
        rep = primary.reporting()
        label = "Prediction interval" + (f" ({primary.method})" if n_random > 1 else "")
        rows.append(_Row("pi", label,
                         {"est": f"[{_fmt_value(rep['pi_lb'], sc)}, {_fmt_value(rep['pi_ub'], sc)}]"},
                         math.nan, rep["pi_lb"], rep["pi_ub"], gid="pi"))

    sfit = None
    if sens is not None and sens_rows:
        sfit = sens.fit(primary.method) or (sens.fits[0] if sens.fits else None)
        if sfit is not None:
            row = fit_row("pooled", sfit, f"Including inferred numbers ({sfit.method}, k = {sfit.k})",
                          "pooled-sensitivity", {})
            row.size = 0.0
            rows.append(row)

    # --- footers
    het_fit = primary if primary.is_random else fits[0]
    if eff.k > 1:
        footers.insert(0, _heterogeneity_text(het_fit) + ".")
    else:
        footers.insert(0, "Heterogeneity: not applicable (k = 1).")
    overall = _overall_test(primary, sc)
    if overall:
        footers.insert(1, overall)
    n_text = f"k = {eff.k} {'study' if eff.k == 1 else 'studies'}"
    if eff.ni is not None and np.isfinite(eff.ni).all():
        n_text += f", N = {fmt_raw(float(np.sum(eff.ni)))} participants"
    how = "normal approximation"
    if sc.family == "ratio" or eff.measure.upper() in ("PLO", "PAS", "PFT"):
        scale = MEASURES[eff.measure.upper()].analysis_label if eff.measure.upper() in MEASURES else "analysis"
        how += f" on the {scale} scale, back-transformed"
    footers.append(n_text + f"; study CIs: {ci_pct}, {how}.")
    if any(r.kind == "pi" for r in rows):
        footers.append(_pi_note(primary))
    footers += _not_fitted(analysis)
    if any(f.method == "GLMM" for f in fits):
        footers.append(GLMM_NOTE)
    if inferred_pooled or inferred_open:
        footers.append(_inferred_footnote(analysis, inferred_pooled, inferred_open, sfit))
    footers += mark_notes
    if not_estimable:
        footers.append("Not estimable (no finite estimate or confidence limit): "
                       + ", ".join(dict.fromkeys(not_estimable)) + ".")
    if eff.dropped:
        footers.append("Not pooled: " + "; ".join(f"{analysis.label_of(s)} ({why})" for s, why in eff.dropped) + ".")
    if sens is not None and not sens_rows and sens.added:
        left = ", ".join(f"{analysis.label_of(p.get('study'))} ({p.get('status')})" for p in sens.added)
        footers.append(f"Not shown: {left}; in the sensitivity analysis only (see report).")

    title = analysis.label if title is None else title
    favours = tuple(analysis.spec.favours) if analysis.spec.favours else None
    return _render(rows, cols, sc, title=title, footers=footers, primary_est=_primary_est(primary),
                   favours=favours)


def _primary_est(fit: MetaResult) -> float:
    return fit.reporting()["estimate"]


def forest_plot(analysis, path_stem, *, formats=("png", "svg"),
                title: str | None = None, arm_labels: Sequence[str] = ("LD-IL-2", "Control")):
    """Draw and save the forest plot of one outcome as ``{path_stem}.{png,svg}``.

    See :func:`build_forest` for the layout; files are written atomically and are
    byte-identical between runs (:func:`metapool.plots.style.save_figure`).

    Returns
    -------
    list of pathlib.Path
        The files written.
    """
    fig = build_forest(analysis, title=title, arm_labels=arm_labels)
    return style.save_figure(fig, path_stem, formats)


# ----------------------------------------------------------------------------- summary forest

def build_summary_forest(labels, estimate, ci_lb, ci_ub, *, measure: str, title: str | None = None,
                         pooled=None, ni=None, level: float = 0.95, header: str = "Study",
                         footers: Sequence[str] = ()):
    """Forest plot of precomputed rows (leave-one-out, cumulative): a Figure, not saved.

    Parameters
    ----------
    labels : sequence of str
        Row labels (e.g. "omitting X", "+ X").
    estimate, ci_lb, ci_ub : array_like
        Per-row estimates and CI bounds on the analysis scale; back-transformed with
        :func:`metapool.transforms.back_transform` (``ni`` for the Freeman-Tukey harmonic mean).
    measure : str
        Effect measure (sets the reporting scale and axis).
    pooled : MetaResult or mapping, optional
        The full-data model, drawn as a diamond with a dotted line through it; a mapping
        needs ``estimate, ci_lb, ci_ub`` (analysis scale) and may have ``label``.
    footers : sequence of str
        Notes under the axis (a row that is not estimable adds its own).
    """
    sc = _scale(measure)
    e = _back(measure, np.asarray(estimate, float), ni)
    lo = _back(measure, np.asarray(ci_lb, float), ni)
    hi = _back(measure, np.asarray(ci_ub, float), ni)
    if not (len(labels) == e.size == lo.size == hi.size):
        raise ValueError("labels, estimate, ci_lb and ci_ub must have the same length")
    ci_pct = f"{round(level * 100):g}% CI"
    cols = [_Col("est", f"{sc.value_label}\n[{ci_pct}]", side="right")]
    rows = [_Row("point", str(lab), {"est": _ci_text(a, b, c, sc)}, a, b, c, gid=f"row-{i}")
            for i, (lab, a, b, c) in enumerate(zip(labels, e, lo, hi))]
    footers = list(footers)
    bad = [r.label for r in rows if NOT_ESTIMABLE in r.cells["est"]]
    if bad:
        footers.append("Not estimable (the model could not be fitted to these studies): "
                       + ", ".join(bad) + ".")
    primary_est = math.nan
    if pooled is not None:
        if isinstance(pooled, MetaResult):
            rep, label = pooled.reporting(), _fit_label(pooled)
        else:
            vals = _back(measure, np.array([pooled["estimate"], pooled["ci_lb"], pooled["ci_ub"]],
                                           float), ni)
            rep = dict(zip(("estimate", "ci_lb", "ci_ub"), vals))
            label = pooled.get("label", "All studies")
        rows.append(_Row("blank"))
        rows.append(_Row("pooled", label, {"est": _ci_text(rep["estimate"], rep["ci_lb"], rep["ci_ub"], sc)},
                         rep["estimate"], rep["ci_lb"], rep["ci_ub"], gid="pooled-0"))
        primary_est = rep["estimate"]
    return _render(rows, cols, sc, title=title or "", footers=footers, primary_est=primary_est,
                   label_header=header)


def summary_forest(labels, estimate, ci_lb, ci_ub, *, measure: str, path_stem, title: str | None = None,
                   pooled=None, ni=None, level: float = 0.95, formats=("png", "svg")):
    """Draw and save a leave-one-out or cumulative forest plot (see :func:`build_summary_forest`).

    Returns
    -------
    list of pathlib.Path
        The files written.
    """
    fig = build_summary_forest(labels, estimate, ci_lb, ci_ub, measure=measure, title=title,
                               pooled=pooled, ni=ni, level=level)
    return style.save_figure(fig, path_stem, formats)


# ----------------------------------------------------------------------------- rendering

def _nice_limits(sc: _Scale, rows, plot_w: float = PLOT_W) -> tuple:
    """Axis limits (plotted units) covering the estimates, pooled CIs and PI, and study CIs
    unless they are far wider (those get arrows), and ticks whose labels fit ``plot_w`` inches
    (measured; :func:`metapool.plots.style.log_ticks` / :func:`~metapool.plots.style.linear_ticks`)."""
    f = sc.factor
    tr = (lambda v: np.log10(v)) if sc.log else (lambda v: v * f)
    with np.errstate(divide="ignore", invalid="ignore"):
        core, wide = [], []
        for r in rows:
            if r.kind in ("study", "point", "open"):
                core.append(tr(r.est))
                wide += [tr(r.lb), tr(r.ub)]
            elif r.kind in ("pooled", "subtotal", "pi"):
                core += [tr(r.est), tr(r.lb), tr(r.ub)]
        core = np.array([v for v in core if np.isfinite(v)])
        wide = np.array([v for v in wide if np.isfinite(v)])
    if sc.ref is not None:
        core = np.append(core, tr(sc.ref))
    if core.size == 0:
        core = np.array([0.0, 1.0])
    c_lo, c_hi = core.min(), core.max()
    span = max(c_hi - c_lo, 0.3 if sc.log else (5.0 if sc.family == "proportion" else 0.2))
    lo = min(c_lo, max(wide.min() if wide.size else c_lo, c_lo - 0.75 * span))
    hi = max(c_hi, min(wide.max() if wide.size else c_hi, c_hi + 0.75 * span))
    if sc.family == "proportion":
        lo, hi = max(lo, 0.0), min(hi, 100.0)
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5 * span, hi + 0.5 * span
    if sc.log:
        e0, e1 = math.floor(lo) - 1, math.ceil(hi) + 1
        nice = np.array([m * 10.0 ** e for e in range(e0, e1 + 1) for m in (1, 2, 5)])
        ticks_lo = nice[nice <= 10 ** lo * (1 + 1e-12)]
        ticks_hi = nice[nice >= 10 ** hi * (1 - 1e-12)]
        a = ticks_lo.max() if ticks_lo.size else 10 ** lo
        b = ticks_hi.min() if ticks_hi.size else 10 ** hi
        return a, b, style.log_ticks(a, b, plot_w, FONT_SIZE, keep=(sc.ref,))
    ticks = style.linear_ticks(lo, hi, plot_w, lambda v: _tick_label(v, False), FONT_SIZE, extend=True)
    if sc.family == "proportion":
        ticks = ticks[(ticks >= 0) & (ticks <= 100)]
    return min(lo, ticks[0]), max(hi, ticks[-1]), ticks


def _tick_label(v: float, log: bool) -> str:
    if log:
        return style.log_tick_label(v)
    return fmt_num(v, 0) if float(v).is_integer() else style._minus(f"{v:g}")


def _font(kind: str, key: str):
    """(weight, style, size) of a cell."""
    if key == "label":
        return _label_font(kind)
    if kind in ("pooled", "subtotal"):
        return ("bold", "normal", FONT_SIZE)
    if kind == "pi":
        return ("normal", "italic", FONT_SIZE)
    return ("normal", "normal", FONT_SIZE)


def _cell_width(s: str, font) -> float:
    weight, fstyle, size = font
    return text_width(s, size, weight, fstyle)


_CUT_LABELS = {"study", "open", "point"}    # row labels that may be shortened (in the middle)


def _layout_columns(rows, cols, label_header):
    """Measure and place columns; returns (label width, left end, right cols start, total).

    Study labels longer than :data:`LABEL_MAX` are shortened in the middle (the year stays) and
    their markers appended after; group names are cut at the end; model labels are never cut
    (the label column widens to hold them)."""
    label_w = text_width(label_header, FONT_SIZE, "bold")
    grouped = any(r.kind == "group" for r in rows)
    for r in rows:
        if r.kind in ("subhet", "blank"):
            continue
        w, s, z = _label_font(r.kind)
        indent = INDENT if grouped and r.kind in ("study", "subtotal", "subhet") else 0.0
        if r.kind in _CUT_LABELS:
            room = LABEL_MAX - indent - text_width(r.mark, z, w, s)
            r.label = truncate_middle(r.label, room, z, w, s) + r.mark
        elif r.kind == "group":
            r.label = truncate(r.label, LABEL_MAX, z, w, s)
        else:
            r.label = r.label + r.mark
        r.mark = ""
        label_w = max(label_w, indent + text_width(r.label, z, w, s))
    for c in cols:
        c.width = max([text_width(c.header, FONT_SIZE, "bold")]
                      + [_cell_width(r.cells.get(c.key, ""), _font(r.kind, c.key)) for r in rows])
    # widen grouped columns when the group title is wider than its columns
    for side in ("left", "right"):
        groups = {}
        for c in cols:
            if c.side == side and c.group:
                groups.setdefault(c.group, []).append(c)
        for g, members in groups.items():
            span = sum(c.width for c in members) + GAP * (len(members) - 1)
            extra = text_width(g, FONT_SIZE, "bold") - span
            if extra > 0:
                for c in members:
                    c.width += extra / len(members)
    x = MARGIN + label_w + GAP
    for c in cols:
        if c.side == "left":
            c.x0, x = x, x + c.width + GAP
    left_end = x - GAP
    right_w = sum(c.width + GAP for c in cols if c.side == "right")
    return label_w, left_end, right_w


def _wrap_subhet(rows, width: float) -> list:
    """Subgroup heterogeneity lines wrapped to ``width`` inches: one row per line, never cut."""
    out = []
    for r in rows:
        if r.kind != "subhet":
            out.append(r)
            continue
        lines = _wrap_whole(r.label, width, SMALL_SIZE, "italic")
        for j, line in enumerate(lines):
            out.append(_Row("subhet", line, gid=(r.gid if j == 0 else f"{r.gid}-{j}") if r.gid else None))
    return out


def _wrap_whole(text: str, width: float, size: float, fstyle: str = "normal") -> list:
    """Wrap by measured width at "; " (between statistics: "τ² = ...; I² = ...;" | "Q = ..."),
    and between words only inside a part wider than ``width``; nothing is cut."""
    def fits(s):
        return text_width(s, size, "normal", fstyle) <= width

    parts = str(text).split("; ")
    lines, cur = [], ""
    for j, part in enumerate(parts):
        piece = part + (";" if j < len(parts) - 1 else "")
        trial = f"{cur} {piece}" if cur else piece
        if fits(trial):
            cur = trial
            continue
        if cur:
            lines.append(cur)
        cur = style.fill_words(piece.split(), fits, lines)      # a part too wide on its own: by words
    if cur:
        lines.append(cur)
    return lines


def _favours_lines(favours, room_left: float, room_right: float):
    """The two "Favours" labels wrapped to at most two lines each, inside the room either side."""
    left, right = (str(x) for x in favours)
    out = []
    for text, room, arrow in ((left, room_left, "\u2190 "), (right, room_right, " \u2192")):
        width = max(min(room, FAVOURS_MAX), 0.6)
        lines = wrap(text, width - text_width(arrow, SMALL_SIZE), SMALL_SIZE)
        if len(lines) > 2:
            lines = [lines[0], truncate(" ".join(lines[1:]), width, SMALL_SIZE)]
        if arrow.startswith("\u2190"):
            lines[0] = arrow + lines[0]
        else:
            lines[0] = lines[0] + arrow
        out.append(lines or [""])
    return out


def _render(rows, cols, sc: _Scale, *, title, footers, primary_est, label_header="Study", favours=None):
    with rc_context(style.RC):
        return _render_inner(rows, cols, sc, title=title, footers=footers,
                             primary_est=primary_est, label_header=label_header, favours=favours)


def _render_inner(rows, cols, sc, *, title, footers, primary_est, label_header, favours=None):
    label_w, left_end, right_w = _layout_columns(rows, cols, label_header)
    grouped = any(r.kind == "group" for r in rows)
    sub_x = MARGIN + (INDENT if grouped else 0.0) + 0.1
    rows = _wrap_subhet(rows, max(left_end - sub_x, 1.5))
    plot_w = PLOT_W
    width = left_end + 2 * PLOT_GAP + plot_w + right_w - GAP + MARGIN
    if width < MIN_W:
        plot_w += MIN_W - width
        width = MIN_W
    plot_x0 = left_end + PLOT_GAP
    x = plot_x0 + plot_w + PLOT_GAP
    for c in cols:
        if c.side == "right":
            c.x0, x = x, x + c.width + GAP

    text_w = width - 2 * MARGIN
    foot_lines = [ln for f in footers for ln in wrap(f, text_w, SMALL_SIZE)]
    title_lines = wrap(title, text_w, TITLE_SIZE, weight="bold") if title else []
    n_body = len(rows)
    top = MARGIN + 0.26 * len(title_lines) + (0.08 if title_lines else 0)
    header_h = 2 * ROW_H
    foot_h = FOOT_H * len(foot_lines) + (0.06 if foot_lines else 0)
    axis_lines = wrap(sc.axis_label, plot_w + 2 * PLOT_GAP, FONT_SIZE)
    axis_h = AXIS_H + 0.16 * (len(axis_lines) - 1)

    lo, hi, ticks = _nice_limits(sc, rows, plot_w)
    fav = None
    if favours and sc.ref is not None:
        span = (math.log10(hi) - math.log10(lo)) if sc.log else (hi - lo)
        frac = ((math.log10(sc.ref) - math.log10(lo)) if sc.log else (sc.ref - lo)) / span
        x_ref = plot_x0 + min(max(frac, 0.0), 1.0) * plot_w
        fav = (x_ref, _favours_lines(favours, x_ref - 0.06 - MARGIN, width - MARGIN - x_ref - 0.06))
        axis_h += FAVOURS_LINE * max(len(fav[1][0]), len(fav[1][1])) - 0.06
    height = top + header_h + n_body * ROW_H + axis_h + foot_h + MARGIN

    fig = style.new_figure(width, height)
    ax = fig.add_axes([plot_x0 / width, (MARGIN + foot_h + axis_h) / height,
                       plot_w / width, n_body * ROW_H / height])
    ax.set_ylim(n_body - 0.5, -0.5)
    tr = blended_transform_factory(fig.dpi_scale_trans, ax.transData)

    # title
    for i, line in enumerate(title_lines):
        fig.text(MARGIN / width, 1 - (MARGIN + 0.26 * i) / height, line, ha="left", va="top",
                 fontsize=TITLE_SIZE, fontweight="bold")

    # footers, top to bottom under the axis label
    for i, line in enumerate(foot_lines):
        fig.text(MARGIN, MARGIN + foot_h - 0.06 - (i + 0.5) * FOOT_H, line, ha="left",
                 va="center_baseline", fontsize=SMALL_SIZE, transform=fig.dpi_scale_trans)

    # headers
    def txt(x_in, y, s, ha="left", kind="study", key="cell", **kw):
        w, st, z = _font(kind, key)
        kw.setdefault("fontweight", w)
        kw.setdefault("fontstyle", st)
        kw.setdefault("fontsize", z)
        return ax.text(x_in, y, s, transform=tr, ha=ha, va="center_baseline", clip_on=False, **kw)

    txt(MARGIN, -1, label_header, fontweight="bold")
    groups = {}
    for c in cols:
        lines = c.header.split("\n")
        xh = c.x0 + c.width if c.align == "right" else c.x0
        for j, line in enumerate(reversed(lines)):
            txt(xh, -1 - j, line, ha=c.align, fontweight="bold")
        if c.group:
            groups.setdefault((c.side, c.group), []).append(c)
    for (_, g), members in groups.items():
        x0, x1 = members[0].x0, members[-1].x0 + members[-1].width
        txt((x0 + x1) / 2, -2, g, ha="center", fontweight="bold")
        ax.add_line(Line2D([x0, x1], [-1.55, -1.55], transform=tr, color="black", lw=0.5,
                           clip_on=False))
    ax.add_line(Line2D([MARGIN, width - MARGIN], [-0.55, -0.55], transform=tr, color="black",
                       lw=0.8, clip_on=False))

    # body text
    for i, r in enumerate(rows):
        if r.kind == "blank":
            continue
        if r.kind == "subhet":
            txt(sub_x, i, r.label, kind="subhet", key="label", gid=r.gid)
            continue
        indent = INDENT if grouped and r.kind in ("study", "subtotal") else 0.0
        txt(MARGIN + indent, i, r.label, kind=r.kind, key="label",
            gid=f"{r.gid}-label" if r.gid else None)
        for c in cols:
            s = r.cells.get(c.key, "")
            if s:
                xh = c.x0 + c.width if c.align == "right" else c.x0
                txt(xh, i, s, ha=c.align, kind=r.kind, gid=f"{r.gid}-{c.key}" if r.gid else None)

    # plot panel
    if sc.log:
        ax.set_xscale("log")
    ax.set_xlim(lo, hi)
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticks(ticks, [_tick_label(t, sc.log) for t in ticks])
    ax.set_yticks([])
    for s in ("left", "right", "top"):
        ax.spines[s].set_visible(False)
    ax.set_xlabel("\n".join(axis_lines), fontsize=FONT_SIZE)
    ax.tick_params(axis="x", labelsize=FONT_SIZE, length=3)
    if sc.ref is not None:
        ax.axvline(sc.ref, color=COL_REF, lw=0.8, zorder=1)
    if np.isfinite(primary_est):
        ax.axvline(primary_est * sc.factor, color=COL_DIAMOND, lw=0.7, ls=(0, (2, 2)), zorder=1)
    _draw_marks(ax, rows, sc, lo, hi)
    if fav is not None:
        _draw_favours(fig, fav, MARGIN + foot_h + 0.02)
    return fig


def _draw_favours(fig, fav, y_in):
    """RevMan's "← Favours A | Favours B →" under the axis label, each side of the null line;
    its band (one or two lines) is reserved in the figure height, so it cannot touch the axis."""
    x_ref, (left, right) = fav
    n = max(len(left), len(right))
    top = y_in + n * FAVOURS_LINE
    for lines, ha, dx, gid in ((left, "right", -0.06, "favours-left"), (right, "left", 0.06, "favours-right")):
        fig.text(x_ref + dx, top, "\n".join(lines), ha=ha, va="top", multialignment=ha,
                 fontsize=SMALL_SIZE, transform=fig.dpi_scale_trans, gid=gid, linespacing=1.15)


def _draw_marks(ax, rows, sc, lo, hi):
    f = sc.factor
    sq_x, sq_y, sq_s = [], [], []
    wmax = max([r.size for r in rows if r.kind == "study" and np.isfinite(r.size)] or [1.0])
    side_max = ROW_H * 72 * 0.8
    for i, r in enumerate(rows):
        if r.kind in ("study", "point", "pi", "open"):
            a, b = r.lb * f, r.ub * f
            if not (np.isfinite(a) and np.isfinite(b)):
                continue
            a_c, b_c = max(a, lo), min(b, hi)
            if a_c < b_c:
                ls = (0, (4, 2)) if r.kind == "pi" else "-"
                ax.plot([a_c, b_c], [i, i], color="black", lw=0.9, ls=ls, zorder=2,
                        solid_capstyle="butt")
            if r.kind == "pi":
                for v in (a, b):
                    if lo <= v <= hi:
                        ax.plot([v, v], [i - 0.2, i + 0.2], color="black", lw=0.9, zorder=2)
            if a < lo:
                ax.plot([lo], [i], marker="<", ms=4.5, color="black", clip_on=False, zorder=3)
            if b > hi:
                ax.plot([hi], [i], marker=">", ms=4.5, color="black", clip_on=False, zorder=3)
            e = r.est * f
            if r.kind == "open" and np.isfinite(e) and lo <= e <= hi:
                ax.plot([e], [i], marker="o", ms=5, mfc="white", mec="black", mew=0.9, zorder=4)
                continue
            if r.kind != "pi" and np.isfinite(e) and lo <= e <= hi:
                w = r.size if (r.kind == "study" and np.isfinite(r.size)) else (wmax * 0.25)
                side = max(side_max * math.sqrt(max(w, 0.0) / wmax), 2.5)
                sq_x.append(e)
                sq_y.append(i)
                sq_s.append(side ** 2)
        elif r.kind in ("pooled", "subtotal"):
            e, a, b = r.est * f, max(r.lb * f, lo), min(r.ub * f, hi)
            if not all(np.isfinite([e, a, b])):
                continue
            fill = COL_SUBTOTAL if r.kind == "subtotal" else (
                COL_SENS if r.gid == "pooled-sensitivity" else (COL_DIAMOND if r.size else "white"))
            ax.add_patch(Polygon([[a, i], [e, i - 0.34], [b, i], [e, i + 0.34]], closed=True,
                                 facecolor=fill, edgecolor="black", lw=0.7, zorder=3))
    if sq_x:
        ax.scatter(sq_x, sq_y, s=sq_s, marker="s", color=COL_SQUARE, edgecolors="none", zorder=4,
                   clip_on=False)


def study_texts(fig) -> dict:
    """Texts of a built forest figure keyed by their ``gid`` (e.g. ``"pooled-1-est"``)."""
    return {t.get_gid(): t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text"))
            if t.get_gid()}


__all__ = ["build_forest", "forest_plot", "build_summary_forest", "summary_forest", "study_texts",
           "study_labels"]
