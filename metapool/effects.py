"""Per-study effect sizes and sampling variances (R metafor ``escalc`` semantics).

The input is one table per outcome, one row per study, with a ``study`` column and the columns
of one *kind* (the data contract of DESIGN.md):

============= ==========================================================================
kind          columns
============= ==========================================================================
proportion    ``events, total``
binary        ``events_treat, total_treat, events_ctrl, total_ctrl``
continuous    ``mean_treat, sd_treat, n_treat, mean_ctrl, sd_ctrl, n_ctrl``
prepost       ``mean_pre, sd_pre, mean_post, sd_post, n`` and optionally ``r``
generic       ``yi, vi`` or ``yi, sei`` or ``yi, ci_lb, ci_ub`` (95% CI); optionally ``n``
============= ==========================================================================

:func:`escalc` computes the effect sizes exactly as metafor 3.8-1 ``escalc()`` does (same
formulas, same defaults for the continuity correction ``add``/``to``/``drop00`` and for the
variance type ``vtype``); ``tests/test_effects.py`` checks every reference case of
``tests/metafor_cases.json`` and zero-cell examples run through R.  Everything is vectorised
over studies.
"""
from __future__ import annotations

from typing import Iterable, Mapping

import numpy as np
from scipy.special import gammaln, ndtri

from .registry import KINDS, measures_for
from .results import EffectSizes
from .rows import as_records, numbers, present_columns

__all__ = ["KIND_COLUMNS", "OPTIONAL_COLUMNS", "MEASURES", "detect_kind", "check_measure", "escalc",
           "proportion_effects",
           "DEFAULT_R"]

KIND_COLUMNS = {
    "proportion": (("events", "total"),),
    "binary": (("events_treat", "total_treat", "events_ctrl", "total_ctrl"),),
    "continuous": (("mean_treat", "sd_treat", "n_treat", "mean_ctrl", "sd_ctrl", "n_ctrl"),),
    "prepost": (("mean_pre", "sd_pre", "mean_post", "sd_post", "n"), ("median_pre", "median_post", "n"),
                ("median_pre", "mean_post", "sd_post", "n"), ("mean_pre", "sd_pre", "median_post", "n")),
    "generic": (("yi", "vi"), ("yi", "sei"), ("yi", "ci_lb", "ci_ub")),
}
"""Column sets that identify each input kind (any one set suffices)."""

OPTIONAL_COLUMNS = {"prepost": ("r",), "generic": ("n",)}
"""Optional columns: per-study pre/post correlation ``r``; total ``n`` of a generic study."""

_RAW_KINDS = tuple(k for k in KINDS if k != "generic")
MEASURES = {k: measures_for(k) for k in KINDS}
"""Valid measures per input kind (from :mod:`metapool.registry`); generic rows are already on an
analysis scale: GEN, or the measure they were computed as (so that reporting back-transforms
them, e.g. a log odds ratio given with its 95% CI)."""

DEFAULT_R = 0.5
"""Pre/post correlation assumed when neither the study nor the configuration gives one."""

_TO = ("only0", "all", "if0all", "none")
_VTYPES = {
    "PR": ("LS", "UB", "AV"), "PLO": ("LS", "AV"), "PAS": ("LS",), "PFT": ("LS",),
    "RR": ("LS",), "OR": ("LS",), "RD": ("LS", "UB", "AV"), "PETO": ("LS",),
    "MD": ("LS", "UB", "HO"), "SMD": ("LS", "UB", "LS2", "AV"),
    "SMCR": ("LS", "LS2"), "SMCC": ("LS", "LS2"), "MC": ("LS",),
}
_NO_ADD_BY_DEFAULT = ("PAS", "PFT")   # metafor: add = 0 unless given explicitly
_Z975 = float(ndtri(0.975))


# --------------------------------------------------------------------------- kinds and measures

def _fmt_sets() -> str:
    lines = []
    for kind, sets in KIND_COLUMNS.items():
        alts = " | ".join(", ".join(s) for s in sets)
        opt = OPTIONAL_COLUMNS.get(kind)
        lines.append(f"  {kind}: {alts}" + (f" (optional: {', '.join(opt)})" if opt else ""))
    return "\n".join(lines)


def detect_kind(columns: Iterable[str]) -> str:
    """The input kind (proportion, binary, continuous, prepost, generic) read from column names.

    Raw-data kinds take precedence over ``generic`` (a table with ``events, total`` and a ``yi``
    column is a proportion table).  Raises ValueError when no column set fits, listing the sets,
    or when the columns of two raw-data kinds are present.
    """
    cols = set(columns)
    raw = [k for k in _RAW_KINDS if any(set(s) <= cols for s in KIND_COLUMNS[k])]
    if len(raw) == 1:
        return raw[0]
    if len(raw) > 1:
        raise ValueError(f"ambiguous outcome table: it has the columns of kinds {', '.join(raw)}; "
                         "keep only the columns of one kind (empty columns are ignored)")
    if any(set(s) <= cols for s in KIND_COLUMNS["generic"]):
        return "generic"
    raise ValueError("cannot tell the kind of outcome data from its columns "
                     f"({', '.join(sorted(map(str, cols))) or 'none'}); expected `study` plus one of:\n"
                     + _fmt_sets())


def check_measure(measure: str, kind: str) -> str:
    """Validate ``measure`` for input ``kind``; returns it upper-cased.

    Raises ValueError naming the valid measures of the kind.
    """
    if kind not in MEASURES:
        raise ValueError(f"unknown kind {kind!r}; valid kinds: {', '.join(MEASURES)}")
    if not isinstance(measure, str):
        raise ValueError(f"measure must be a string, got {measure!r}")
    m = measure.upper()
    if m not in MEASURES[kind]:
        raise ValueError(f"measure {measure!r} cannot be computed from {kind} data; "
                         f"valid measures for {kind} data: {', '.join(MEASURES[kind])}")
    return m


# --------------------------------------------------------------------------- validation helpers

def _bad(study: np.ndarray, mask: np.ndarray, describe) -> None:
    """Raise ValueError listing the studies where ``mask`` is True (``describe(i)`` per row)."""
    mask = np.asarray(mask, dtype=bool)
    if mask.any():
        idx = np.flatnonzero(mask)
        lines = [f"  study {study[i]!r}: {describe(i)}" for i in idx[:10]]
        if idx.size > 10:
            lines.append(f"  ... and {idx.size - 10} more")
        raise ValueError("invalid effect-size input:\n" + "\n".join(lines))


def _column(df: list, col: str, study: np.ndarray, *, required: bool = True) -> np.ndarray:
    """Column ``col`` of the records as a float array; non-numeric values are errors, as are
    missing ones if required."""
    if not any(col in r for r in df):
        if required:
            raise ValueError(f"outcome table has no column {col!r}")
        return np.full(len(df), np.nan)
    bad = np.zeros(len(df), dtype=bool)
    try:
        x = numbers(df, col)
    except ValueError:                      # find every non-number, to name them all
        x = np.full(len(df), np.nan)
        for i, r in enumerate(df):
            try:
                x[i] = numbers([r], col)[0]
            except ValueError:
                bad[i] = True
    _bad(study, bad, lambda i: f"column {col!r} = {df[i].get(col)!r} is not a number")
    _bad(study, np.isinf(x), lambda i: f"column {col!r} = {df[i].get(col)!r} is not finite")
    if required:
        _bad(study, np.isnan(x), lambda i: f"column {col!r} is missing")
    return x


def _wmean(x: np.ndarray, w: np.ndarray) -> float:
    """Weighted mean over the entries where both are non-missing (metafor ``.wmean``)."""
    ok = ~(np.isnan(x) | np.isnan(w))
    return float(np.sum(x[ok] * w[ok]) / np.sum(w[ok]))


def _cmi(mi: np.ndarray) -> np.ndarray:
    """Exact small-sample correction of Hedges (1981), metafor ``.cmicalc``: NaN for mi <= 1."""
    mi = np.asarray(mi, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        c = np.exp(gammaln(mi / 2) - np.log(np.sqrt(mi / 2)) - gammaln((mi - 1) / 2))
    return np.where(mi <= 1, np.nan, c)


def _names(study: np.ndarray, mask: np.ndarray) -> str:
    return ", ".join(str(s) for s in study[np.asarray(mask, dtype=bool)])


def _check_vtype(measure: str, vtype: str | None) -> str:
    v = "LS" if vtype is None else str(vtype).upper()
    if v not in _VTYPES[measure]:
        raise ValueError(f"vtype {vtype!r} is not available for measure {measure}; "
                         f"valid: {', '.join(_VTYPES[measure])}")
    return v


# --------------------------------------------------------------------------- continuity correction

def _correction(cells: list, study: np.ndarray, keep: np.ndarray, add: float, to: str,
                what: str, measure: str, add_given: bool):
    """Apply metafor's ``add``/``to`` rule to the count arrays in ``cells``.

    Returns the corrected cells and the notes.  ``keep`` marks studies not dropped (drop00);
    zero cells are looked for among those only, as in metafor.
    """
    zero = np.zeros(len(study), dtype=bool)
    for c in cells:
        zero |= (c == 0)
    zero &= keep
    notes = []
    if to == "all":
        hit = keep.copy()
    elif to == "only0":
        hit = zero
    elif to == "if0all":
        hit = keep.copy() if zero.any() else np.zeros_like(zero)
    else:
        hit = np.zeros_like(zero)
    if add > 0 and hit.any():
        new = [c + add * hit for c in cells]
        rule = {"only0": f"studies with {what}",
                "all": "all studies",
                "if0all": f"all studies, because some had {what} ({_names(study, zero)})"}[to]
        notes.append(f"continuity correction: {add:g} added to each cell of {rule} "
                     f"(add={add:g}, to='{to}'): {_names(study, hit)}")
        return new, notes
    if zero.any():
        why = (f"metafor default add=0 for {measure}" if (measure in _NO_ADD_BY_DEFAULT and not add_given)
               else f"add={add:g}, to='{to}'")
        notes.append(f"no continuity correction ({why}) for studies with {what}: {_names(study, zero)}")
    return [c.astype(float) for c in cells], notes


# --------------------------------------------------------------------------- per-kind computations

def _proportion(m, df, study, add, to, vtype, add_given):
    x = _column(df, "events", study)
    n = _column(df, "total", study)
    _bad(study, x < 0, lambda i: f"column 'events' = {x[i]:g} is negative")
    _bad(study, n <= 0, lambda i: f"column 'total' = {n[i]:g} must be > 0")
    _bad(study, x > n, lambda i: f"column 'events' = {x[i]:g} exceeds column 'total' = {n[i]:g}")
    yi, vi, notes = proportion_effects(m, x, n, add=add, to=to, vtype=vtype, study=study,
                                       add_given=add_given)
    return yi, vi, n, np.ones(len(x), dtype=bool), notes, []


def proportion_effects(measure: str, events: np.ndarray, total: np.ndarray, *, add: float = 0.5,
                       to: str = "only0", vtype: str = "LS", study=None, add_given: bool = True):
    """Effect sizes of single-arm proportions from checked arrays: the arithmetic of :func:`escalc`.

    :func:`escalc` calls this after checking the rows; :mod:`metapool.audit` calls it directly on
    candidate grids of tens of thousands of (events, total) pairs.  Not-estimable entries are NaN
    (escalc drops them).

    Returns
    -------
    yi, vi : ndarray
    notes : list of str
        The continuity correction applied (as in :func:`escalc`).

    Notes
    -----
    Validated through :func:`escalc` against metafor 3.8-1 (PR, PLO, PAS, PFT; vtype LS/UB/AV).
    """
    m = measure
    x, n = np.asarray(events, dtype=float), np.asarray(total, dtype=float)
    study = np.arange(1, x.size + 1) if study is None else np.asarray(study, dtype=object)
    keep = np.ones(len(x), dtype=bool)
    (xa, ma), notes = _correction([x, n - x], study, keep, add, to, "0 or all events", m, add_given)
    na = xa + ma
    with np.errstate(divide="ignore", invalid="ignore"):
        p = xa / na
        if m == "PR":
            yi = p
            if vtype == "AV":
                mp = _wmean(p, na)
                vi = mp * (1 - mp) / na
            else:
                vi = p * (1 - p) / (na - 1 if vtype == "UB" else na)
        elif m == "PLO":
            yi = np.log(p / (1 - p))
            if vtype == "AV":
                mp = _wmean(p, na)
                vi = 1 / (mp * na) + 1 / ((1 - mp) * na)
            else:
                vi = 1 / xa + 1 / ma
        elif m == "PAS":
            yi = np.arcsin(np.sqrt(p))
            vi = 1 / (4 * na)
        else:  # PFT, metafor's half-sum scaling
            yi = 0.5 * (np.arcsin(np.sqrt(xa / (na + 1))) + np.arcsin(np.sqrt((xa + 1) / (na + 1))))
            vi = 1 / (4 * na + 2)
    return yi, vi, notes


def _binary(m, df, study, add, to, drop00, vtype, add_given):
    a = _column(df, "events_treat", study)
    n1 = _column(df, "total_treat", study)
    c = _column(df, "events_ctrl", study)
    n2 = _column(df, "total_ctrl", study)
    for col, v in (("events_treat", a), ("events_ctrl", c)):
        _bad(study, v < 0, lambda i, col=col, v=v: f"column {col!r} = {v[i]:g} is negative")
    for col, v in (("total_treat", n1), ("total_ctrl", n2)):
        _bad(study, v <= 0, lambda i, col=col, v=v: f"column {col!r} = {v[i]:g} must be > 0")
    _bad(study, a > n1, lambda i: f"column 'events_treat' = {a[i]:g} exceeds 'total_treat' = {n1[i]:g}")
    _bad(study, c > n2, lambda i: f"column 'events_ctrl' = {c[i]:g} exceeds 'total_ctrl' = {n2[i]:g}")
    b, d = n1 - a, n2 - c
    keep = np.ones(len(a), dtype=bool)
    dropped = []
    if drop00:
        none_ = (a == 0) & (c == 0)
        all_ = (b == 0) & (d == 0)
        keep = ~(none_ | all_)
        for i in np.flatnonzero(~keep):
            why = "no events in either arm" if none_[i] else "all participants had the event in both arms"
            dropped.append((str(study[i]), f"{why} (double-zero study; drop00=True)"))
    (a, b, c, d), notes = _correction([a, b, c, d], study, keep, add, to, "a zero cell", m, add_given)
    n1a, n2a = a + b, c + d
    with np.errstate(divide="ignore", invalid="ignore"):
        p1, p2 = a / n1a, c / n2a
        if m == "RR":
            yi = np.log(p1) - np.log(p2)
            vi = 1 / a - 1 / n1a + 1 / c - 1 / n2a
        elif m == "OR":
            yi = np.log(p1 / (1 - p1)) - np.log(p2 / (1 - p2))
            vi = 1 / a + 1 / b + 1 / c + 1 / d
        elif m == "RD":
            yi = p1 - p2
            if vtype == "AV":
                q1 = _wmean(np.where(keep, p1, np.nan), n1a)
                q2 = _wmean(np.where(keep, p2, np.nan), n2a)
                vi = q1 * (1 - q1) / n1a + q2 * (1 - q2) / n2a
            else:
                k = 1 if vtype == "UB" else 0
                vi = p1 * (1 - p1) / (n1a - k) + p2 * (1 - p2) / (n2a - k)
        else:  # PETO (one-step log odds ratio per study)
            nt = n1a + n2a
            ev = (a + c) * n1a / nt
            var = (a + c) * (b + d) * (n1a / nt) * (n2a / nt) / (nt - 1)
            yi = (a - ev) / var
            vi = 1 / var
    return yi, vi, n1 + n2, keep, notes, dropped


def _continuous(m, df, study, vtype):
    m1, sd1, n1 = (_column(df, c, study) for c in ("mean_treat", "sd_treat", "n_treat"))
    m2, sd2, n2 = (_column(df, c, study) for c in ("mean_ctrl", "sd_ctrl", "n_ctrl"))
    for col, v in (("sd_treat", sd1), ("sd_ctrl", sd2)):
        _bad(study, v <= 0, lambda i, col=col, v=v: f"column {col!r} = {v[i]:g} must be > 0")
    for col, v in (("n_treat", n1), ("n_ctrl", n2)):
        _bad(study, v < 2, lambda i, col=col, v=v: f"column {col!r} = {v[i]:g} must be >= 2")
    ni = n1 + n2
    mi = ni - 2
    sdp = np.sqrt(((n1 - 1) * sd1 ** 2 + (n2 - 1) * sd2 ** 2) / mi)
    if m == "MD":
        yi = m1 - m2
        vi = sdp ** 2 * (1 / n1 + 1 / n2) if vtype == "HO" else sd1 ** 2 / n1 + sd2 ** 2 / n2
    else:  # SMD: Hedges' g with the exact correction, metafor's large-sample variance by default
        cm = _cmi(mi)
        di = (m1 - m2) / sdp
        yi = cm * di
        base = 1 / n1 + 1 / n2
        if vtype == "UB":
            vi = base + (1 - (mi - 2) / (mi * cm ** 2)) * yi ** 2
        elif vtype == "LS2":
            vi = cm ** 2 * (base + di ** 2 / (2 * ni))
        elif vtype == "AV":
            vi = base + _wmean(yi, ni) ** 2 / (2 * ni)
        else:
            vi = base + yi ** 2 / (2 * ni)
    return yi, vi, ni, np.ones(len(yi), dtype=bool), [], []


def _prepost_r(df, study, r, r_source):
    """Per-study correlation: the row's ``r`` wins, else the ``r`` argument, else DEFAULT_R."""
    row_r = _column(df, "r", study, required=False)
    if r is not None:
        r = float(r)
        if not -1 <= r <= 1:
            raise ValueError(f"pre/post correlation r = {r:g} ({r_source or 'r argument'}) "
                             "must lie in [-1, 1]")
        fill, src = r, (r_source or "r argument")
    else:
        fill = DEFAULT_R
        src = r_source or (f"assumed default {DEFAULT_R:g} (no study reports r)" if np.isnan(row_r).all()
                           else f"assumed default {DEFAULT_R:g}")
    _bad(study, np.abs(row_r) > 1, lambda i: f"column 'r' = {row_r[i]:g} must lie in [-1, 1]")
    given = ~np.isnan(row_r)
    ri = np.where(given, row_r, fill)
    notes = []
    if given.any():
        vals = ", ".join(f"{s} {v:g}" for s, v in zip(study[given], row_r[given]))
        notes.append(f"pre/post correlation r as reported per study: {vals}")
    if (~given).any():
        notes.append(f"pre/post correlation r = {fill:g} ({src}) used for: {_names(study, ~given)}")
    return ri, notes


def _prepost(m, df, study, r, r_source, vtype):
    m_pre, sd_pre, m_post, n = (_column(df, c, study) for c in ("mean_pre", "sd_pre", "mean_post", "n"))
    sd_post = _column(df, "sd_post", study, required=(m != "SMCR"))
    _bad(study, sd_pre <= 0, lambda i: f"column 'sd_pre' = {sd_pre[i]:g} must be > 0")
    _bad(study, sd_post <= 0, lambda i: f"column 'sd_post' = {sd_post[i]:g} must be > 0")
    _bad(study, n < 2, lambda i: f"column 'n' = {n[i]:g} must be >= 2")
    ri, notes = _prepost_r(df, study, r, r_source)
    cm = _cmi(n - 1)
    keep, dropped = np.ones(len(n), dtype=bool), []
    if m in ("SMCR", "SMCC"):   # metafor .cmicalc(n - 1) is NA for n - 1 <= 1, so yi and vi are NA
        keep = ~np.isnan(cm)
        dropped = [(str(study[i]), f"{m} not estimable: n = {n[i]:g} is too small for Hedges' "
                                   "small-sample correction c(n - 1), which needs n > 2 (metafor "
                                   "escalc returns NA)") for i in np.flatnonzero(~keep)]
    if m == "SMCR":   # metafor escalc("SMCR", m1i=mean_post, m2i=mean_pre, sd1i=sd_pre, ni, ri)
        di = (m_post - m_pre) / sd_pre
        yi = cm * di
        vi = (cm ** 2 * (2 * (1 - ri) / n + di ** 2 / (2 * n)) if vtype == "LS2"
              else 2 * (1 - ri) / n + yi ** 2 / (2 * n))
        return yi, vi, n, keep, notes, dropped
    # MC and SMCC: metafor sd1i = sd_post, sd2i = sd_pre
    var_d = sd_post ** 2 + sd_pre ** 2 - 2 * ri * sd_post * sd_pre
    _bad(study, var_d <= 0, lambda i: f"change-score SD is 0 (sd_pre = {sd_pre[i]:g}, "
                                      f"sd_post = {sd_post[i]:g}, r = {ri[i]:g})")
    if m == "MC":
        yi = m_post - m_pre
        vi = var_d / n
    else:  # SMCC
        di = (m_post - m_pre) / np.sqrt(var_d)
        yi = cm * di
        vi = cm ** 2 * (1 / n + di ** 2 / (2 * n)) if vtype == "LS2" else 1 / n + yi ** 2 / (2 * n)
    return yi, vi, n, keep, notes, dropped


def _generic(m, df, study):
    yi = _column(df, "yi", study)
    vi_col = _column(df, "vi", study, required=False)
    sei = _column(df, "sei", study, required=False)
    lb = _column(df, "ci_lb", study, required=False)
    ub = _column(df, "ci_ub", study, required=False)
    _bad(study, vi_col <= 0, lambda i: f"column 'vi' = {vi_col[i]:g} must be > 0")
    _bad(study, sei <= 0, lambda i: f"column 'sei' = {sei[i]:g} must be > 0")
    has_ci = ~np.isnan(lb) & ~np.isnan(ub)
    _bad(study, has_ci & (ub <= lb), lambda i: f"ci_ub = {ub[i]:g} must exceed ci_lb = {lb[i]:g}")
    from_vi = ~np.isnan(vi_col)
    from_se = ~from_vi & ~np.isnan(sei)
    from_ci = ~from_vi & ~from_se & has_ci
    _bad(study, ~(from_vi | from_se | from_ci), lambda i: "needs vi, sei, or both ci_lb and ci_ub")
    vi = np.where(from_vi, vi_col, np.where(from_se, sei ** 2, ((ub - lb) / (2 * _Z975)) ** 2))
    notes = []
    if from_se.any():
        notes.append(f"vi = sei^2 for: {_names(study, from_se)}")
    if from_ci.any():
        notes.append("vi = ((ci_ub - ci_lb) / (2 * 1.959964))^2 from the 95% CI, assuming a CI symmetric "
                     f"on the analysis scale, for: {_names(study, from_ci)}")
        with np.errstate(invalid="ignore"):
            asym = from_ci & (np.abs((lb + ub) / 2 - yi) > 0.1 * (ub - lb) / 2)
        if asym.any():
            notes.append("warning: 95% CI not centred on yi (is it on the analysis scale, e.g. log "
                         f"ratio?) for: {_names(study, asym)}")
    ni = None
    if any("n" in r for r in df):
        n = _column(df, "n", study, required=False)
        if not np.isnan(n).any():
            ni = n
    if m == "PFT" and ni is None:
        raise ValueError("measure PFT with generic input needs an `n` column for every study "
                         "(the Freeman-Tukey back-transform uses the harmonic mean of n)")
    return yi, vi, ni, np.ones(len(yi), dtype=bool), notes, []


# --------------------------------------------------------------------------- medians
def fill_from_medians(rows: list, conversion: Mapping) -> tuple:
    """Pre/post rows with the mean and SD of each side filled from a median summary where missing.

    A side with ``mean_*`` and ``sd_*`` is kept as given; otherwise ``median_*`` with
    ``min_*``/``max_*`` and/or ``q1_*``/``q3_*`` is converted by
    :func:`metapool.convert.median_to_mean_sd` (``conversion``: ``mean`` and ``sd`` method names).
    The row's ``conversion`` column names the method (unless the data already name it) and the
    notes list the converted studies.  Returns ``(rows, notes)``; the input is not modified.

    Notes
    -----
    The conversion itself is validated against R meta 6.5-0 (``tests/test_convert.py``).
    """
    from .convert import conversion_label, median_to_mean_sd

    out, converted = [], {}
    rows = as_records(rows)
    mean_m = conversion.get("mean", "luo2018")
    sd_m = conversion.get("sd", "shi2020")
    for r in rows:
        r = dict(r)
        labels = []
        for side in ("pre", "post"):
            if r.get(f"mean_{side}") is not None and r.get(f"sd_{side}") is not None:
                continue
            if r.get(f"median_{side}") is None:
                continue
            kw = {k: r.get(f"{c}_{side}") for k, c in (("q1", "q1"), ("q3", "q3"), ("minimum", "min"),
                                                          ("maximum", "max"))}
            kw = {k: (np.nan if v is None else float(v)) for k, v in kw.items()}
            mean, sd = median_to_mean_sd(float(r[f"median_{side}"]), n=float(r["n"]),
                                         mean_method=mean_m, sd_method=sd_m, **kw)
            r[f"mean_{side}"], r[f"sd_{side}"] = float(mean), float(sd)
            labels.append(str(conversion_label(mean_method=mean_m, sd_method=sd_m, **kw)))
        if labels:
            label = "; ".join(dict.fromkeys(labels))
            if not r.get("conversion"):
                r["conversion"] = label
            converted[str(r.get("study"))] = label
        out.append(r)
    notes = [f"mean/SD estimated from median and IQR/range: {s} ({lab})" for s, lab in converted.items()]
    return out, notes


# --------------------------------------------------------------------------- escalc

def escalc(measure: str, data, *, add: float | None = None, to: str | None = None,
           drop00: bool | None = None, r: float | None = None, r_source: str | None = None,
           vtype: str | None = None, kind: str | None = None,
           conversion: Mapping | None = None) -> EffectSizes:
    """Per-study effect sizes and sampling variances, as R metafor ``escalc()``.

    Parameters
    ----------
    measure : str
        PR, PLO, PAS, PFT (proportion); RR, OR, RD, PETO (binary; ratios on the log scale);
        MD, SMD (continuous; SMD is Hedges' g); SMCR, SMCC, MC (pre/post); GEN (generic).
    data : records, mapping of columns or pandas.DataFrame
        One row per study with a ``study`` column and the columns of one kind (see
        :data:`KIND_COLUMNS`); columns that are entirely empty are ignored when detecting the kind.
        Pre/post rows may give ``median_pre`` with ``min_pre``/``max_pre`` and/or ``q1_pre``/
        ``q3_pre`` (and the same for ``post``) instead of a mean and SD: they are converted first
        (:func:`fill_from_medians`).
    add : float, optional
        Continuity correction added to the cells (metafor default 1/2; 0 for PAS and PFT unless
        given).  Used for proportion and binary data only.
    to : {"only0", "all", "if0all", "none"}, optional
        Which studies are corrected (metafor default ``"only0"``: those with a zero cell; for
        proportions, with 0 or all events).
    drop00 : bool, optional
        Binary data: drop studies with no events in either arm, or all events in both
        (metafor default False).  Dropped studies are listed in ``dropped``.
    r : float, optional
        Pre/post correlation for studies without an ``r`` value (default 0.5).
    r_source : str, optional
        Where ``r`` came from, for the note (e.g. ``"config defaults.r"``).
    vtype : str, optional
        metafor's variance type (default ``"LS"``; also UB/AV/HO/LS2 where metafor offers them).
    kind : str, optional
        Input kind; detected from the columns when omitted.
    conversion : mapping, optional
        ``mean`` and ``sd`` estimators for medians (:func:`metapool.convert.median_to_mean_sd`;
        default R meta's defaults).

    Returns
    -------
    EffectSizes
        Analysis-scale ``yi``/``vi``, total ``ni`` per study (None for generic input without
        ``n``), the rows used (``data``), ``notes`` (corrections, correlation used, conversions)
        and ``dropped`` (study, reason).  Studies whose effect size is not estimable (metafor sets
        them to NA, e.g. a zero cell with ``to="none"``, or SMCR/SMCC of a study with n = 2, whose
        correction ``c(n - 1)`` is undefined) are dropped with the reason.

    Notes
    -----
    Validated against metafor 3.8-1 ``escalc()`` on every case of ``tests/metafor_cases.json``
    (pritz1997 proportions, BCG trials, normand1999, a pre/post set, hackshaw1998) and on
    zero-cell examples (see ``tests/test_effects.py``).  SMD uses Hedges' exact gamma-function
    correction ``c(m) = Gamma(m/2) / (sqrt(m/2) Gamma((m-1)/2))``, ``m = n1 + n2 - 2``; SMCR is
    metafor ``escalc("SMCR", m1i=mean_post, m2i=mean_pre, sd1i=sd_pre, ni=n, ri=r)`` and SMCC
    ``escalc("SMCC", m1i=mean_post, m2i=mean_pre, sd1i=sd_post, sd2i=sd_pre, ni=n, ri=r)``.
    """
    df = as_records(data)
    if not df or not any("study" in r for r in df):
        if not df:
            raise ValueError("outcome table has no rows")
        raise ValueError("outcome table needs a `study` column")
    if kind is None:
        kind = detect_kind(present_columns(df))
    m = check_measure(measure, kind)
    study = np.array([str(r.get("study")) for r in df], dtype=object)
    _bad(study, np.array([r.get("study") in (None, "") for r in df]),
         lambda i: "the `study` label is missing")
    seen: dict = {}
    for s in study:
        seen[s] = seen.get(s, 0) + 1
    repeated = [s for s, n in seen.items() if n > 1]
    if kind == "prepost":
        df, conv_notes = fill_from_medians(df, conversion or {})
    else:
        conv_notes = []

    add_given = add is not None
    if add is None:
        add = 0.0 if m in _NO_ADD_BY_DEFAULT else 0.5
    add = float(add)
    if not np.isfinite(add) or add < 0:
        raise ValueError(f"add = {add!r} must be a finite number >= 0")
    to = "only0" if to is None else to
    if to not in _TO:
        raise ValueError(f"to = {to!r} must be one of {', '.join(_TO)}")
    drop00 = bool(drop00) if drop00 is not None else False

    notes = list(conv_notes) + [f"study label {s!r} appears {seen[s]} times: pooled as separate rows "
                                "(as metafor does)" for s in repeated]
    if kind == "generic":
        yi, vi, ni, keep, kn, dropped = _generic(m, df, study)
    else:
        vt = _check_vtype(m, vtype)
        if vt != "LS":
            notes.append(f"variance type vtype='{vt}' (metafor escalc)")
        if kind == "proportion":
            yi, vi, ni, keep, kn, dropped = _proportion(m, df, study, add, to, vt, add_given)
        elif kind == "binary":
            yi, vi, ni, keep, kn, dropped = _binary(m, df, study, add, to, drop00, vt, add_given)
        elif kind == "continuous":
            yi, vi, ni, keep, kn, dropped = _continuous(m, df, study, vt)
        else:
            yi, vi, ni, keep, kn, dropped = _prepost(m, df, study, r, r_source, vt)
    notes.extend(kn)

    bad = keep & ~(np.isfinite(yi) & np.isfinite(vi) & (vi >= 0))
    hint = "; a zero cell without continuity correction?" if kind in ("proportion", "binary") else ""
    for i in np.flatnonzero(bad):
        dropped.append((str(study[i]), f"{m} not estimable (yi = {yi[i]:g}, vi = {vi[i]:g}){hint}"))
    keep = keep & ~bad
    zero_v = keep & (vi == 0)
    if zero_v.any():
        notes.append(f"warning: sampling variance vi = 0 (kept, as metafor does; inverse-variance "
                     f"weights are undefined) for: {_names(study, zero_v)}")
    return EffectSizes(measure=m, kind=kind, study=tuple(study[keep]), yi=yi[keep], vi=vi[keep],
                       ni=None if ni is None else ni[keep],
                       data=tuple(r for r, k_ in zip(df, keep) if k_), notes=tuple(notes),
                       dropped=tuple(dropped))
