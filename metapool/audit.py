"""Forensic audit of a published pooled estimate: how could this printed number have been computed?

Given a table of studies and a printed pooled estimate (with, optionally, its confidence
interval and p-value), :func:`audit` answers four questions:

1. **Which scale.**  On each analysis scale of the data family (raw, logit, arcsine,
   Freeman-Tukey for proportions; log for ratios; identity for differences and SMDs) can the
   printed CI be symmetric around the printed estimate, given the printed rounding?  Interval
   arithmetic: each printed number ``x`` stands for ``[x - u/2, x + u/2]``, ``u = 10^-decimals``;
   on a scale ``g`` (monotone) the CI can be symmetric iff ``2 g(E) = g(L) + g(U)`` has a solution
   with ``E, L, U`` in their boxes, i.e. iff the intervals ``[2 g(E-), 2 g(E+)]`` and
   ``[g(L-) + g(U-), g(L+) + g(U+)]`` intersect.  On each consistent scale the implied standard
   error ``(g(U) - g(L)) / (2 z)`` is reported with its rounding interval, for proportions the
   implied number of patients (raw scale ``p(1-p)/SE^2``), and whether a printed p-value agrees
   with the CI (Wald test against 0 for differences, 1 for ratios; skipped for single-arm
   proportions, which have no natural null value).
2. **Which method.**  Every model the data allow -- the measures of the family, FE and the
   eight tau² estimators, z and Knapp-Hartung inference, the continuity-correction variants for
   zero cells, Mantel-Haenszel and Peto for two-arm counts, the binomial-normal GLMM for
   proportions -- evaluated in batched passes, and the list of those that reproduce every
   printed number to within half a printed unit, plus the nearest miss.
3. **Which studies** (``subsets=True``): the same over every non-empty subset of the table's
   rows (k <= 20).  A rigorous bound (:func:`_prune_candidates`, :func:`_refine_candidates`)
   skips the subsets on which no tau² >= 0 can reproduce the printed numbers, so the
   random-effects methods are computed only where they can still match; FE is computed on
   every subset.  ``evaluated`` and ``pruned`` count the subset x model combinations computed
   and skipped.
4. **What the missing studies must contain** (``missing=True``): the aggregated remainder row
   that, added to the table as one more study, reproduces the printed numbers.  Proportions:
   every (events, total) pair with total <= ``max_n`` (exhaustive, batched, same bound).
   Continuous, pre/post and generic data: a region in (effect, SE) of the remainder on the
   analysis scale (with the equivalent one-study n for standardised measures), found by
   scanning a grid and bisecting the ends of the estimate band and, with a CI, of the CI-width
   band (:func:`_continuous_points`).  Not available for two-arm counts.

JSON (:meth:`AuditResult.to_dict`)
----------------------------------
``inputs`` (printed numbers with decimals and relation, family, level, k, studies, measures,
options), ``family``, ``ci_scales``, ``scale_checks``, ``implied_se`` (scale -> se, lo, hi),
``implied_n`` (scale -> n, lo, hi, formula), ``p_check``, ``reproducing`` (list of ``measure,
method, test, cc, cc_equivalent, vtype, k, studies, excluded, estimate, ci_lb, ci_ub, pval,
tau2, distance``, best first), ``n_reproducing``, ``nearest`` (same keys), ``evaluated``,
``pruned``, ``missing`` (``supported, description, max_n, evaluated, pruned, models``: per
model the solutions -- ``by_total`` [total, events_min, events_max] or ``by_se`` [se,
effect_min, effect_max] -- and a ``summary``), ``notes``.

Models and their labels
-----------------------
``measure``: escalc measure; ``method``: FE, a tau² estimator (DL REML ML PM HE SJ EB HS), MH,
PETO or GLMM; ``test``: ``z`` or ``knha``; ``cc``: the continuity correction of metafor's
``escalc`` (``only0``, ``all``, ``if0all`` with add = 1/2, or ``none``; ``None`` for data
without counts; ``cc_equivalent`` lists the labels that give identical numbers for the same
studies); ``vtype``: ``LS`` (metafor's default sampling variance) or, for raw proportions,
``AV`` (variance from the average proportion: under FE it is the crude pooled proportion
``sum(events) / sum(total)`` with its binomial Wald CI).

Validated against
-----------------
Effect sizes come from :func:`metapool.effects.escalc`, tau² from :mod:`metapool.tau2`, GLMM
from :mod:`metapool.glmm` (all validated against R metafor 3.8-1).  The batched pooling,
back-transforms, Mantel-Haenszel/Peto sums and the search are checked in
``tests/test_audit.py`` against ``tests/audit_cases.json``, made by
``tests/make_audit_cases.R`` with metafor (the unrounded metafor estimate and CI of each
generating model are reproduced to 1e-6 and the model is found among the reproducing ones),
against the worked reconstruction of EVIDENCE.md §4 notes 1 and 3, and against the crude
pooled proportion in closed form for the missing-study search.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, fields
from typing import Any, Mapping

import numpy as np
from scipy import special

from . import tau2 as _tau2
from . import transforms as _tr
from .effects import DEFAULT_R

__all__ = ["audit", "audit_printed", "AuditResult", "Printed", "FAMILIES", "METHODS", "TESTS", "MAX_SUBSET_K"]

FAMILIES = {"proportion": "proportion", "two-arm": "binary", "continuous": "continuous",
            "prepost": "prepost", "generic": "generic"}
"""Audit family name -> :func:`metapool.effects.escalc` input kind."""
_FAMILY_OF_KIND = {v: k for k, v in FAMILIES.items()}
METHODS = ("FE", "DL", "REML", "ML", "PM", "HE", "SJ", "EB", "HS")
"""Inverse-variance methods evaluated for every measure."""
TESTS = ("z", "knha")
ITERATIVE = ("REML", "ML", "PM", "EB")
"""tau² estimators without a closed form: computed only where the pruning bound allows a match."""
MAX_SUBSET_K = 20
EPS_UNITS = 1e-6
"""Slack (in printed units) added to the half unit when deciding whether a number reproduces:
metapool agrees with metafor to ~1e-9 relative, so a computed value exactly half way between
two printed values is not rejected by floating-point noise, while no value more than
0.500001 printed units away is accepted."""

_MEASURES = {
    "proportion": ("PR", "PLO", "PAS", "PFT"),
    "binary": ("OR", "RR", "RD", "PETO"),
    "continuous": ("SMD", "MD"),
    "prepost": ("SMCR", "SMCC", "MC"),
    "generic": ("GEN",),
}
_METHOD_RANK = {m: i for i, m in enumerate(
    ("FE", "DL", "REML", "MH", "PETO", "GLMM", "PM", "ML", "HS", "SJ", "HE", "EB"))}
_DEFAULT_CC = {"PAS": "none", "PFT": "none"}   # metafor escalc: add = 0 for PAS and PFT
_CC_ORDER = ("only0", "none", "if0all", "all")
_COUNT_KINDS = ("proportion", "binary")
_GLMM_SUBSET_MAX = 64
_PRUNE_MIN_ROWS = 256   # smaller batches are evaluated in full (exact nearest misses)


# =============================================================================== printed numbers
_NUM = re.compile(r"^\s*(?:p\s*)?(=|<=|>=|<|>|≤|≥)?\s*([-+−]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$")


def _decimals_of(text: str) -> int:
    t = text.strip().lstrip("+-−")
    if "e" in t.lower():
        return max(0, -int(math.floor(math.log10(abs(float(t)))))) if float(t) else 0
    return len(t.split(".", 1)[1]) if "." in t else 0


@dataclass(frozen=True)
class Printed:
    """A printed number: value, printed decimals and relation (``=``, ``<`` or ``>``).

    ``x`` printed with ``d`` decimals stands for the interval ``[x - u/2, x + u/2]``,
    ``u = 10^-d``; ``<x`` (a p-value printed as ``p < 0.001``) for ``[0, x]``; ``>x`` for ``[x, 1]``.
    """

    value: float
    decimals: int
    relation: str = "="
    text: str = ""

    @property
    def unit(self) -> float:
        return 10.0 ** (-self.decimals)

    @property
    def box(self) -> tuple:
        if self.relation == "<":
            return (0.0, self.value)
        if self.relation == ">":
            return (self.value, 1.0)
        h = self.unit / 2
        return (self.value - h, self.value + h)

    def distance(self, c):
        """Distance of computed values ``c`` from this printed number, in printed units.

        ``|c - x| / u`` for ``=`` (reproduces iff <= 1/2); for ``<x``/``>x`` 0 when the
        inequality holds, else 1/2 plus the excess in units of the last printed digit.
        """
        c = np.asarray(c, dtype=float)
        if self.relation == "<":
            d = np.where(c <= self.value, 0.0, 0.5 + (c - self.value) / self.unit)
        elif self.relation == ">":
            d = np.where(c >= self.value, 0.0, 0.5 + (self.value - c) / self.unit)
        else:
            d = np.abs(c - self.value) / self.unit
        return np.where(np.isfinite(d), d, np.inf)

    def to_dict(self) -> dict:
        return {"value": self.value, "decimals": self.decimals, "relation": self.relation,
                "text": self.text}

    @classmethod
    def parse(cls, x, decimals: int | None = None, *, what: str = "number") -> "Printed":
        """Parse a printed number (str such as ``"0.819"``, ``"<0.001"``, ``"p = .04"``, or a float).

        The decimals are read from the text (a float uses its shortest repr, so ``0.50`` given
        as a float counts as 1 decimal: pass strings or ``decimals``).
        """
        if isinstance(x, Printed):
            return x if decimals is None else cls(x.value, int(decimals), x.relation, x.text)
        if isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool):
            v = float(x)
            if not math.isfinite(v):
                raise ValueError(f"{what} must be a finite number, got {x!r}")
            text = np.format_float_positional(v, trim="-")
            rel = "="
        elif isinstance(x, str):
            m = _NUM.match(x.replace("−", "-"))
            if not m:
                raise ValueError(f"{what} {x!r} is not a number (expected e.g. 0.819, or <0.001 for a p-value)")
            rel = {None: "=", "=": "=", "<": "<", "<=": "<", "≤": "<", ">": ">", ">=": ">", "≥": ">"}[m.group(1)]
            text = m.group(2)
            v = float(text)
        else:
            raise ValueError(f"{what} must be a number or a string, got {type(x).__name__}")
        d = _decimals_of(text) if decimals is None else int(decimals)
        if d < 0 or d > 12:
            raise ValueError(f"decimals for {what} must be between 0 and 12, got {d}")
        return cls(v, d, rel, str(x).strip() if isinstance(x, str) else text)


# =============================================================================== scales
def _g_raw(x, n=None):
    return np.asarray(x, dtype=float)


def _g_logit(x, n=None):
    x = np.asarray(x, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(x / (1 - x))


def _g_arcsine(x, n=None):
    with np.errstate(invalid="ignore"):
        return np.arcsin(np.sqrt(np.asarray(x, dtype=float)))


def _g_ft(x, n=None):
    return _tr._pft(np.asarray(x, dtype=float), n)


def _g_log(x, n=None):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(np.asarray(x, dtype=float))


# name -> (forward function, domain low, domain high, clip): a box end at or beyond the domain
# maps to -inf/+inf (the back-transform of every analysis value beyond it prints as that end).
_SCALES = {
    "raw": (_g_raw, -np.inf, np.inf),
    "logit": (_g_logit, 0.0, 1.0),
    "arcsine": (_g_arcsine, 0.0, 1.0),
    "freeman-tukey": (_g_ft, 0.0, 1.0),
    "log": (_g_log, 0.0, np.inf),
}
_MEASURE_SCALE = {"PR": "raw", "PLO": "logit", "PAS": "arcsine", "PFT": "freeman-tukey",
                  "RR": "log", "OR": "log", "PETO": "log"}


def _box_to_scale(scale: str, lo, hi, n=None):
    """Forward-transform a printed box ``[lo, hi]`` (arrays) to the analysis scale."""
    g, dlo, dhi = _SCALES[scale]
    lo = np.asarray(lo, dtype=float)
    hi = np.asarray(hi, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        a = np.where(lo <= dlo, -np.inf, g(np.maximum(lo, dlo) if np.isfinite(dlo) else lo, n))
        b = np.where(hi >= dhi, np.inf, g(np.minimum(hi, dhi) if np.isfinite(dhi) else hi, n))
    return a, b


def _zcrit(level: float) -> float:
    return float(-special.ndtri((1 - level) / 2))


def _scales_for(kind: str, est: Printed, lb: Printed | None, ub: Printed | None):
    vals = [est.value] + ([lb.value, ub.value] if lb is not None else [])
    if kind == "proportion":
        return ["raw", "logit", "arcsine", "freeman-tukey"]
    if kind == "binary":
        out = []
        if all(-1 <= v <= 1 for v in vals):
            out.append("raw")
        if all(v > 0 for v in vals):
            out.append("log")
        return out or ["raw"]
    if kind == "generic" and all(v > 0 for v in vals):
        return ["raw", "log"]
    return ["raw"]


def _check_scales(kind, est, lb, ub, level, n_ft):
    """Symmetry of the printed CI, implied SE and implied n on each candidate scale."""
    checks, implied_se, implied_n, consistent = [], {}, {}, []
    z = _zcrit(level)
    for scale in _scales_for(kind, est, lb, ub):
        if scale == "freeman-tukey" and n_ft is None:
            continue                       # the FT scale needs the studies' sizes (no table given)
        g = _SCALES[scale][0]
        n = n_ft if scale == "freeman-tukey" else None
        entry: dict = {"scale": scale}
        if scale == "freeman-tukey":
            entry["n"] = n_ft
        if lb is None:
            entry["symmetric"] = None
            checks.append(entry)
            continue
        e0, e1 = _box_to_scale(scale, *est.box, n)
        l0, l1 = _box_to_scale(scale, *lb.box, n)
        u0, u1 = _box_to_scale(scale, *ub.box, n)
        lo_sum, hi_sum = l0 + u0, l1 + u1
        sym = bool((2 * e1 >= lo_sum) and (2 * e0 <= hi_sum))
        with np.errstate(invalid="ignore", divide="ignore"):
            ge, gl, gu = (float(g(np.array(x), n)) for x in (est.value, lb.value, ub.value))
        entry.update(symmetric=sym, lower_arm=ge - gl, upper_arm=gu - ge,
                     asymmetry_range=[float(2 * e0 - hi_sum), float(2 * e1 - lo_sum)])
        checks.append(entry)
        if not sym:
            continue
        consistent.append(scale)
        se = (gu - gl) / (2 * z)
        se_lo = max(0.0, float(u0 - l1) / (2 * z))
        se_hi = float(u1 - l0) / (2 * z)
        implied_se[scale] = {"se": se, "lo": se_lo, "hi": se_hi}
        if kind == "proportion":
            implied_n[scale] = _implied_n(scale, est, se, se_lo, se_hi, n_ft)
    return checks, implied_se, implied_n, consistent


def _pq_range(lo, hi):
    """min and max of p(1 - p) over p in [lo, hi] (clipped to [0, 1])."""
    lo, hi = max(0.0, lo), min(1.0, hi)
    ends = [lo * (1 - lo), hi * (1 - hi)]
    mx = 0.25 if lo <= 0.5 <= hi else max(ends)
    return min(ends), mx


def _implied_n(scale, est, se, se_lo, se_hi, n_ft):
    """Number of patients of a single binomial sample with this SE on ``scale``.

    raw ``p(1-p)/SE^2``; logit ``1/(p(1-p) SE^2)``; arcsine ``1/(4 SE^2)``; Freeman-Tukey
    ``(1/SE^2 - 2)/4`` (metafor's ``vi = 1/(4n + 2)``).  ``lo``/``hi``: the range over the
    rounding intervals of the printed estimate and CI.
    """
    p = est.value
    pq = p * (1 - p)
    pq_lo, pq_hi = _pq_range(*est.box)
    inv = (lambda s: 1 / s ** 2 if s > 0 else np.inf)
    if scale == "raw":
        n, lo, hi = pq * inv(se), pq_lo * inv(se_hi), pq_hi * inv(se_lo)
        formula = "p(1-p)/SE^2"
    elif scale == "logit":
        n = inv(se) / pq if pq > 0 else np.inf
        lo = inv(se_hi) / pq_hi if pq_hi > 0 else np.inf
        hi = inv(se_lo) / pq_lo if pq_lo > 0 else np.inf
        formula = "1/(p(1-p) SE^2)"
    elif scale == "arcsine":
        n, lo, hi = inv(se) / 4, inv(se_hi) / 4, inv(se_lo) / 4
        formula = "1/(4 SE^2)"
    else:
        n, lo, hi = (inv(se) - 2) / 4, (inv(se_hi) - 2) / 4, (inv(se_lo) - 2) / 4
        formula = "(1/SE^2 - 2)/4"
    return {"n": float(n), "lo": float(lo), "hi": float(hi), "formula": formula}


def _check_p(kind, est, lb, ub, p, level, consistent, n_ft):
    """Does the printed p-value agree with the printed CI (Wald test, normal)?"""
    if p is None:
        return None
    if kind == "proportion":
        return {"skipped": "single-arm proportion: no natural null value to test against",
                "printed": p.text}
    if lb is None:
        return {"skipped": "no CI printed", "printed": p.text}
    z = _zcrit(level)
    out = {"printed": p.text, "scales": []}
    p_lo, p_hi = p.box
    for scale in consistent:
        null = 1.0 if scale == "log" else 0.0
        g = _SCALES[scale][0]
        g0 = float(g(np.array(null)))
        e0, e1 = _box_to_scale(scale, *est.box, None)
        l0, l1 = _box_to_scale(scale, *lb.box, None)
        u0, u1 = _box_to_scale(scale, *ub.box, None)
        se_lo, se_hi = max(0.0, float(u0 - l1) / (2 * z)), float(u1 - l0) / (2 * z)
        dmin = 0.0 if e0 <= g0 <= e1 else min(abs(e0 - g0), abs(e1 - g0))
        dmax = max(abs(e0 - g0), abs(e1 - g0))
        with np.errstate(divide="ignore", invalid="ignore"):
            pmin = float(2 * special.ndtr(-(dmax / se_lo if se_lo > 0 else np.inf)))
            pmax = float(2 * special.ndtr(-(dmin / se_hi)))
            se = float((g(np.array(ub.value)) - g(np.array(lb.value))) / (2 * z))
            pc = float(2 * special.ndtr(-abs(float(g(np.array(est.value))) - g0) / se))
        out["scales"].append({"scale": scale, "null": null, "p": pc, "p_range": [pmin, pmax],
                              "consistent": bool(pmin <= p_hi and pmax >= p_lo)})
    return out


# =============================================================================== effect sizes
def _table(data) -> tuple:
    """Columns of ``data`` (mapping column -> sequence) as numpy arrays, and the study labels."""
    if not hasattr(data, "keys") or not hasattr(data, "__getitem__"):
        raise ValueError("data must be a mapping of column name -> sequence (dict of lists or DataFrame)")
    cols = {}
    for c in list(data.keys()):
        a = np.asarray(data[c])
        if a.ndim != 1:
            raise ValueError(f"column {c!r} must be one-dimensional")
        cols[str(c)] = a
    lengths = {len(a) for a in cols.values()}
    if len(lengths) != 1:
        raise ValueError("all columns must have the same length")
    k = lengths.pop()
    if k == 0:
        raise ValueError("the table has no rows")
    if "study" in cols:
        study = [str(s) for s in cols["study"]]
    else:
        study = [f"row{i + 1}" for i in range(k)]
    if len(set(study)) != k:
        dup = sorted({s for s in study if study.count(s) > 1})
        raise ValueError(f"study labels must be unique; repeated: {', '.join(dup[:5])}")
    cols["study"] = np.asarray(study, dtype=object)
    return cols, study


def _nonempty(a) -> bool:
    a = np.asarray(a)
    if a.dtype.kind in "fc":
        return bool((~np.isnan(a)).any())
    return bool(any(x is not None and not (isinstance(x, float) and math.isnan(x)) and x != ""
                    for x in a.tolist()))


def _escalc_full(measure, cols, kind, *, add=None, to=None, r=None):
    """escalc on the table; yi, vi, ni aligned to the table rows (NaN where not estimable)."""
    from .effects import escalc

    es = escalc(measure, cols, add=add, to=to, r=r, kind=kind)
    k = len(cols["study"])
    yi, vi, ni = np.full(k, np.nan), np.full(k, np.nan), np.full(k, np.nan)
    row = {str(s): i for i, s in enumerate(cols["study"])}          # labels are unique (_table)
    idx = np.array([row[s] for s in es.study], dtype=np.int64)
    if idx.size:
        yi[idx], vi[idx] = es.yi, es.vi
        if es.ni is not None:
            ni[idx] = es.ni
    ok = np.isfinite(yi) & np.isfinite(vi) & (vi > 0)
    return yi, vi, ni, ok


@dataclass
class _StudyVariant:
    """Per-study effect sizes of one (measure, cc, vtype) on the table rows."""

    measure: str
    cc: str | None
    vtype: str
    yi: np.ndarray
    vi: np.ndarray | None        # None for vtype AV (row-dependent, from xa/na)
    ni: np.ndarray | None
    ok: np.ndarray
    xa: np.ndarray | None = None  # corrected counts (proportions, for AV)
    na: np.ndarray | None = None


def _count_zero(kind, cols):
    if kind == "proportion":
        x, n = cols["events"].astype(float), cols["total"].astype(float)
        return (x == 0) | (x == n)
    if kind == "binary":
        a, n1 = cols["events_treat"].astype(float), cols["total_treat"].astype(float)
        c, n2 = cols["events_ctrl"].astype(float), cols["total_ctrl"].astype(float)
        return (a == 0) | (c == 0) | (a == n1) | (c == n2)
    return np.zeros(len(cols["study"]), dtype=bool)


def _study_variants(kind, cols, measures, r=None):
    """All (measure, cc, vtype) per-study variants: cc in none/only0/all for count data."""
    out = []
    for m in measures:
        if kind not in _COUNT_KINDS:
            yi, vi, ni, ok = _escalc_full(m, cols, kind, r=r)
            out.append(_StudyVariant(m, None, "LS", yi, vi, ni if np.isfinite(ni).all() else None, ok))
            continue
        for cc in ("none", "only0", "all"):
            add, to = (0.0, "none") if cc == "none" else (0.5, cc)
            yi, vi, ni, ok = _escalc_full(m, cols, kind, add=add, to=to)
            out.append(_StudyVariant(m, cc, "LS", yi, vi, ni, ok))
            if m == "PR":
                x, n = cols["events"].astype(float), cols["total"].astype(float)
                hit = np.zeros_like(x, dtype=bool) if cc == "none" else (
                    np.ones_like(x, dtype=bool) if cc == "all" else (x == 0) | (x == n))
                xa, na = x + add * hit, n + 2 * add * hit
                out.append(_StudyVariant(m, cc, "AV", xa / na, None, n, np.ones_like(ok),
                                         xa=xa, na=na))
    return out


# =============================================================================== batched engine
def _box_mean_range(C, A1, A2, order=None):
    """min and max over ``a`` in the box ``[A1, A2]`` of ``sum(a c) / sum(a)``, row by row.

    ``C, A1, A2``: (B, k) with ``A1 = A2 = 0`` on masked entries.  A linear-fractional function
    over a box is maximised by giving the upper bound to the largest ``c`` and the lower bound
    to the rest (Dinkelbach's optimality condition), and minimised the other way round, so both
    extremes are among the k + 1 threshold splits of the sorted ``c``.  ``order``: a column
    order sorting every row's ``c`` in decreasing order (masked entries, of weight 0, may be
    anywhere), when one exists (subsets of one table); else each row is sorted.
    """
    if order is None:
        order = np.argsort(-C, axis=1)
        Cs = np.take_along_axis(C, order, axis=1).T
        lo = np.take_along_axis(A1, order, axis=1).T
        hi = np.take_along_axis(A2, order, axis=1).T
    else:
        Cs, lo, hi = C.T[order], A1.T[order], A2.T[order]
    # study-major (k, B) layout; the prefix sums over the k studies are k vector additions
    PH, PHd, PL, PLd = _cumsum0(hi * Cs), _cumsum0(hi), _cumsum0(lo * Cs), _cumsum0(lo)
    TH, THd, TL, TLd = PH[-1], PHd[-1], PL[-1], PLd[-1]
    with np.errstate(invalid="ignore", divide="ignore"):
        mx = np.max((PH + (TL - PL)) / (PHd + (TLd - PLd)), axis=0)
        mn = np.min((PL + (TH - PH)) / (PLd + (THd - PHd)), axis=0)
        mx = np.maximum(mx, TL / TLd)   # split j = 0: every weight at its lower bound
        mn = np.minimum(mn, TH / THd)   # every weight at its upper bound
    return mn, mx


def _cumsum0(x):
    """Cumulative sum over axis 0 of a (k, B) array with small k (faster than np.cumsum)."""
    out = np.array(x, dtype=float, copy=True)
    for j in range(1, out.shape[0]):
        out[j] += out[j - 1]
    return out


def _weight_box(V, M, ta, tb):
    """Box of the relative RE weights ``a_i(t) = (v_min + t)/(v_i + t)`` for t in [ta, tb].

    ``a_i(t)`` increases from ``v_min/v_i`` (t = 0) to 1 (t -> inf), so over ``[ta, tb]`` it lies
    between its values at the two ends; ``mu(t) = sum a_i y_i / sum a_i``.
    """
    vmin = np.where(M, V, np.inf).min(axis=1)[:, None]
    ta = np.asarray(ta, dtype=float)[:, None]
    tb = np.asarray(tb, dtype=float)[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        A1 = M * ((vmin + ta) / (V + ta))
        A2 = M * np.where(np.isinf(tb), 1.0, (vmin + tb) / (V + tb))
    return A1, A2


def _w_root_bracket(V, M, k, c, steps=6):
    """Bracket ``[lo, hi]`` of the root of ``W(t) = sum 1/(v_i + t) = c`` (W decreasing in t).

    ``k/(v_max + t) <= W(t) <= k/(v_min + t)`` gives ``k/c - v_max <= t* <= k/c - v_min``; a
    few bisection steps narrow the bracket, which always contains the root.
    """
    vmin = np.where(M, V, np.inf).min(axis=1)
    vmax = np.where(M, V, -np.inf).max(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        lo = np.maximum(0.0, k / c - vmax)
        hi = np.maximum(0.0, k / c - vmin)
    lo = np.where(np.isfinite(lo), lo, 0.0)
    hi = np.where(np.isfinite(hi), hi, np.inf)
    fin = np.isfinite(hi)
    for _ in range(steps):
        mid = np.where(fin, 0.5 * (lo + hi), lo)
        w = _rsum(M / (V + mid[:, None]))
        above = w > c
        lo = np.where(fin & above, mid, lo)
        hi = np.where(fin & ~above, mid, hi)
    return lo, hi


def _prune_candidates(Y, V, M, k, box_e, box_l, box_u, level, ycol=None):
    """Rows where some tau² >= 0 can still reproduce the printed numbers (a rigorous bound).

    Every random-effects method (DL, REML, ..., and FE at t = 0) pools with some ``t >= 0``,
    and the pooled numbers depend on the method only through ``t``.  A row whose numbers cannot
    match for *any* ``t >= 0`` therefore cannot match for any method, and is skipped (FE is
    always evaluated, so that every row has a nearest-miss distance).  Necessary conditions,
    all enclosures (never approximations):

    * estimate: ``mu(t) = sum a_i(t) y_i / sum a_i(t)`` with ``a_i(t)`` in the box of
      :func:`_weight_box`; the range of a weighted mean over a box of weights
      (:func:`_box_mean_range`) must meet the printed estimate box;
    * z test: ``se(t) = W(t)^(-1/2)``, ``W(t) = sum 1/(v_i + t)``, increases with t, so the
      printed CI width confines t to ``[t1, t2]`` (bracketed by :func:`_w_root_bracket`), and
      ``mu`` over ``[t1, t2]`` must meet the estimate box;
    * Knapp-Hartung: ``se^2 = WV(t)/(k-1)`` with the weighted variance
      ``WV = sum w (y - mu)^2 / sum w``.  ``WV <= sum w (y - m0)^2 / sum w`` for any m0 (the
      centre of the estimate box) and ``WV >= sum w d_i^2 / sum w`` with ``d_i`` the distance
      of ``y_i`` from the estimate box (``mu`` must lie in it); both are weighted means over the
      same weight box, and the printed CI width (t(k-1) quantile) must fall between them.

    A row is kept when the estimate condition holds and (no CI printed, or the z or the
    Knapp-Hartung condition holds).  ``ycol``: the per-study effect sizes when every row is a
    subset of the same studies (column orders are then shared by all rows).
    """
    B = Y.shape[0]
    const_box = ycol is not None and np.ptp(box_e[0]) == 0 and np.ptp(box_e[1]) == 0
    e0, e1 = box_e
    tol = 1e-9 * (1 + np.abs(np.where(np.isfinite(e0), e0, 0)) + np.abs(np.where(np.isfinite(e1), e1, 0)))
    A1, A2 = _weight_box(V, M, np.zeros(B), np.full(B, np.inf))
    Ym = M * Y
    mn, mx = _box_mean_range(Ym, A1, A2, None if ycol is None else np.argsort(-ycol))
    keep = (mx >= e0 - tol) & (mn <= e1 + tol)
    if box_l is None:
        return keep
    (l0, l1), (u0, u1) = box_l, box_u
    z = _zcrit(level)
    with np.errstate(invalid="ignore", divide="ignore"):
        se_lo = np.maximum(0.0, (u0 - l1) / (2 * z))
        se_hi = (u1 - l0) / (2 * z)
        w0 = _rsum(M / V)
        c_hi = np.where(se_lo > 0, 1.0 / se_lo ** 2, np.inf)   # W(t) <= c_hi
        c_lo = np.where(np.isfinite(se_hi), 1.0 / se_hi ** 2, 0.0)  # W(t) >= c_lo
    zok = keep & (w0 >= c_lo * (1 - 1e-12))
    t1 = np.zeros(B)
    need = zok & (w0 > c_hi)
    if need.any():
        t1[need] = _w_root_bracket(V[need], M[need], k[need], c_hi[need])[0]
    t2 = np.full(B, np.inf)
    need2 = zok & (c_lo > 0)
    if need2.any():
        t2[need2] = _w_root_bracket(V[need2], M[need2], k[need2], c_lo[need2])[1]
    if zok.any():
        idx = np.flatnonzero(zok)
        B1, B2 = _weight_box(V[idx], M[idx], t1[idx], t2[idx])
        mn2, mx2 = _box_mean_range(Ym[idx], B1, B2, None if ycol is None else np.argsort(-ycol))
        zok[idx] = (mx2 >= e0[idx] - tol[idx]) & (mn2 <= e1[idx] + tol[idx])
    kok = keep.copy()
    fin = np.isfinite(e0) & np.isfinite(e1)
    idx = np.flatnonzero(keep & fin)
    if idx.size:
        Mi, Yi = M[idx], Y[idx]
        kk = k[idx]
        with np.errstate(invalid="ignore", divide="ignore"):
            crit = -special.stdtrit(np.maximum(kk - 1, 1), (1 - level) / 2)
            sek_lo = np.maximum(0.0, (u0[idx] - l1[idx]) / (2 * crit))
            sek_hi = (u1[idx] - l0[idx]) / (2 * crit)
        m0 = 0.5 * (e0[idx] + e1[idx])[:, None]
        dist = np.maximum(np.maximum(e0[idx][:, None] - Yi, Yi - e1[idx][:, None]), 0.0)
        o1 = o2 = None
        if const_box:
            o1 = np.argsort(-(ycol - m0[0, 0]) ** 2)
            o2 = np.argsort(-np.maximum(np.maximum(e0[0] - ycol, ycol - e1[0]), 0.0))
        _, wv_max = _box_mean_range(Mi * (Yi - m0) ** 2, A1[idx], A2[idx], o1)
        wv_min, _ = _box_mean_range(Mi * dist ** 2, A1[idx], A2[idx], o2)
        with np.errstate(invalid="ignore"):
            kok[idx] = ((wv_max >= (kk - 1) * sek_lo ** 2 * (1 - 1e-9))
                        & (wv_min <= (kk - 1) * sek_hi ** 2 * (1 + 1e-9)))
    return zok | kok


_T_GRID = (0.0, 1 / 64, 1 / 16, 1 / 4, 1.0, 4.0, 16.0, 64.0, np.inf)
"""Relative tau² grid (times the row's mean sampling variance) of :func:`_refine_candidates`."""


def _refine_candidates(Y, V, M, k, box_e, box_l, box_u, level, ycol=None):
    """The bound of :func:`_prune_candidates` on each interval of a tau² grid (finer, costlier).

    On ``t`` in ``[ta, tb]``: the estimate range from the weight box of the interval; the z-test
    variance ``1/W(t)`` lies in ``[1/W(ta), 1/W(tb)]``; the Knapp-Hartung variance
    ``Q(t)/((k-1) W(t))`` lies in ``[Q(tb)/((k-1) W(ta)), Q(ta)/((k-1) W(tb))]``, as the
    generalised ``Q(t)`` and ``W(t)`` both decrease with t.  A row is kept if on some interval
    the estimate condition and (the z or the Knapp-Hartung condition) hold.
    """
    B = Y.shape[0]
    e0, e1 = box_e
    tol = 1e-9 * (1 + np.abs(np.where(np.isfinite(e0), e0, 0)) + np.abs(np.where(np.isfinite(e1), e1, 0)))
    vbar = _rsum(M * V) / k
    grid = [np.full(B, g) if g in (0.0, np.inf) else g * vbar for g in _T_GRID]
    W, Q = [], []
    for t in grid:
        if np.isinf(t[0]):
            W.append(np.zeros(B))
            Q.append(np.zeros(B))
            continue
        mu, vb, rss = _pool(Y, V, M, t)
        W.append(1.0 / vb)
        Q.append(rss)
    (l0, l1), (u0, u1) = box_l, box_u
    z = _zcrit(level)
    with np.errstate(invalid="ignore", divide="ignore"):
        se_lo2 = np.maximum(0.0, (u0 - l1) / (2 * z)) ** 2
        se_hi2 = ((u1 - l0) / (2 * z)) ** 2
        crit = -special.stdtrit(np.maximum(k - 1, 1), (1 - level) / 2)
        sk_lo2 = np.maximum(0.0, (u0 - l1) / (2 * crit)) ** 2 * (k - 1)
        sk_hi2 = ((u1 - l0) / (2 * crit)) ** 2 * (k - 1)
    order = None if ycol is None else np.argsort(-ycol)
    keep = np.zeros(B, dtype=bool)
    Ym = M * Y
    for j in range(len(grid) - 1):
        with np.errstate(invalid="ignore", divide="ignore"):
            zlo, zhi = 1.0 / W[j], 1.0 / W[j + 1]
            zok = (zhi >= se_lo2 * (1 - 1e-9)) & (zlo <= se_hi2 * (1 + 1e-9))
            klo, khi = Q[j + 1] / W[j], np.where(W[j + 1] > 0, Q[j] / W[j + 1], np.inf)
            kok = (khi >= sk_lo2 * (1 - 1e-9)) & (klo <= sk_hi2 * (1 + 1e-9))
        idx = np.flatnonzero(~keep & (zok | kok))
        if idx.size == 0:
            continue
        A1, A2 = _weight_box(V[idx], M[idx], grid[j][idx], grid[j + 1][idx])
        mn, mx = _box_mean_range(Ym[idx], A1, A2, order)
        keep[idx] = (mx >= e0[idx] - tol[idx]) & (mn <= e1[idx] + tol[idx])
    return keep


def _back(measure, x, nhm=None):
    if measure == "PFT":
        return _tr._ipft(x, nhm)
    return _tr.back_transform(measure, x)


@dataclass
class _Block:
    """B pooled analyses of one (measure, cc, vtype): (B, k) arrays, masked entries ignored."""

    measure: str
    cc: str | None
    vtype: str
    Y: np.ndarray
    V: np.ndarray
    M: np.ndarray
    NI: np.ndarray | None
    config: np.ndarray        # (B,) index of the configuration (subset / remainder) of each row
    zero: np.ndarray          # (B,) the configuration has a study with a zero cell
    ycol: np.ndarray | None = None  # (k,) per-study effect sizes when rows are subsets of one table


class _Collector:
    """Distances of every evaluated model, the reproducing ones and the nearest miss."""

    def __init__(self, printed, level, prune, k_table):
        self.printed = printed            # list of (key, Printed)
        self.level = level
        self.prune = prune
        self.k_table = k_table
        self.hits = []                    # dicts of arrays
        self.best = None                  # nearest miss (d, dict of scalars)
        self.evaluated = 0
        self.pruned = 0
        # without a printed CI or p-value, z and knha give the same numbers: evaluate z only
        self.tests = TESTS if any(key != "estimate" for key, _ in printed) else ("z",)

    def distances(self, est, lb, ub, p):
        vals = {"estimate": est, "ci_lb": lb, "ci_ub": ub, "pval": p}
        d = np.zeros(np.shape(est))
        for key, pr in self.printed:
            d = np.maximum(d, pr.distance(vals[key]))
        return d

    def add(self, blk, rows, method, test, est, lb, ub, p, tau2, k):
        rows = np.asarray(rows)
        if rows.size == 0:
            return
        self.evaluated += rows.size
        d = self.distances(est, lb, ub, p)
        good = d <= 0.5 + EPS_UNITS
        info = dict(measure=blk.measure, cc=blk.cc, vtype=blk.vtype, method=method, test=test)
        if good.any():
            g = np.flatnonzero(good)
            self.hits.append(dict(info, config=blk.config[rows[g]], zero=blk.zero[rows[g]], d=d[g],
                                  estimate=est[g], ci_lb=lb[g], ci_ub=ub[g], pval=p[g], tau2=tau2[g],
                                  k=k[g]))
        miss = np.where(good, np.inf, d)
        j = int(np.argmin(miss))
        if np.isfinite(miss[j]) and (self.best is None or miss[j] < self.best[0]):
            self.best = (float(miss[j]), dict(info, config=int(blk.config[rows[j]]),
                                              zero=bool(blk.zero[rows[j]]), d=float(miss[j]),
                                              estimate=float(est[j]), ci_lb=float(lb[j]),
                                              ci_ub=float(ub[j]), pval=float(p[j]),
                                              tau2=float(tau2[j]), k=int(k[j])))


def _rsum(a):
    """Row sums of a (B, k) array (einsum: faster than sum(axis=1) for small k, no BLAS threads)."""
    return np.einsum("ij->i", a)


def _pool(Y, V, M, tau2):
    """Inverse-variance pooling given tau² (the formulas of metapool.models._pool_core).

    Returns the estimate, its z-test variance ``1/sum w`` and ``sum w (y - mu)^2`` (for the
    Knapp-Hartung factor).  ``Y = 0`` and ``V = 1`` on masked entries, whose weight is 0.
    """
    w = M / (V + tau2[:, None])
    sw = _rsum(w)
    mu = _rsum(w * Y) / sw
    e = Y - mu[:, None]
    rss = _rsum(w * e * e)
    return mu, 1.0 / sw, rss


def _take(a, rows):
    return a if rows is None else a[rows]


def _run_block(blk: _Block, coll: _Collector, boxes_fn, with_ci: bool):
    """Evaluate FE and the eight tau² estimators under z and knha for every row of a block.

    FE is evaluated on every row; the random-effects methods on the rows that pass
    :func:`_prune_candidates` (large blocks only).  EB is metapool's Paule-Mandel root
    (:mod:`metapool.tau2`: metafor's EB iteration has the PM root as its fixed point), so its
    tau² is taken from PM.
    """
    Y, V, M = blk.Y, blk.V, blk.M
    B = Y.shape[0]
    k = M.sum(axis=1)
    nhm = None
    if blk.measure == "PFT":
        nhm = k / (M / blk.NI).sum(axis=1)
    level = coll.level
    z = _zcrit(level)
    multi = k >= 2
    cand = multi
    if coll.prune and B > _PRUNE_MIN_ROWS and multi.any():
        be, bl, bu = boxes_fn(blk.measure, nhm, B)
        cand = multi & _prune_candidates(Y, V, M, k, be, bl, bu, level, blk.ycol)
        if bl is not None and cand.any():
            idx = np.flatnonzero(cand)
            cand[idx] = _refine_candidates(Y[idx], V[idx], M[idx], k[idx], *(
                tuple(a[idx] for a in box) for box in (be, bl, bu)), level, blk.ycol)
        coll.pruned += len(coll.tests) * (len(METHODS) - 1) * int((multi & ~cand).sum())
    re_rows = None if cand.all() else np.flatnonzero(cand)
    Yc, Vc, Mc = _take(Y, re_rows), _take(V, re_rows), _take(M, re_rows)
    tau_pm = None
    for method in METHODS:
        if method == "FE":
            rows, Yr, Vr, Mr = None, Y, V, M
            tau2 = np.zeros(B)
        else:
            if Yc.shape[0] == 0:
                break
            rows, Yr, Vr, Mr = re_rows, Yc, Vc, Mc
            if method == "EB" and tau_pm is not None:
                tau2 = tau_pm
            else:
                tau2 = _tau2.estimate_tau2_batch(Yr, Vr, Mr, method)
            if method == "PM":
                tau_pm = tau2
        rows_idx = np.arange(B) if rows is None else rows
        kr = k[rows_idx]
        mu, vb, rss = _pool(Yr, Vr, Mr, tau2)
        nh = None if nhm is None else nhm[rows_idx]
        for test in coll.tests:
            if test == "knha":
                sub = np.flatnonzero(kr >= 2)
                if sub.size == 0:
                    continue
                df = (kr[sub] - 1).astype(float)
                s2w = np.where(rss[sub] <= np.finfo(float).eps, 0.0, rss[sub] / df)
                se = np.sqrt(vb[sub] * s2w)
                crit = -special.stdtrit(df, (1 - level) / 2)
                with np.errstate(divide="ignore", invalid="ignore"):
                    p = 2 * special.stdtr(df, -np.abs(mu[sub] / se))
            else:
                sub = np.arange(rows_idx.size)
                se = np.sqrt(vb)
                crit = z
                with np.errstate(divide="ignore", invalid="ignore"):
                    p = 2 * special.ndtr(-np.abs(mu / se))
            m_ = mu[sub]
            nn = None if nh is None else nh[sub]
            est = _back(blk.measure, m_, nn)
            lb = _back(blk.measure, m_ - crit * se, nn)
            ub = _back(blk.measure, m_ + crit * se, nn)
            coll.add(blk, rows_idx[sub], method, test, est, lb, ub, p, tau2[sub], kr[sub])


def _subset_masks(k: int, start: int, stop: int) -> np.ndarray:
    r = np.arange(start, stop, dtype=np.int64)
    return ((r[:, None] >> np.arange(k)) & 1).astype(bool)


def _blocks_for_masks(variants, masks, configs, zero_study, add_to_all=False, chunk=65536):
    """Blocks of the given masks for each per-study variant (cc rules applied per row).

    ``only0`` is evaluated on configurations with a zero cell only (elsewhere it equals
    ``none``), ``all`` likewise unless ``add_to_all`` (there it equals ``if0all``).
    """
    has_zero_all = masks @ zero_study.astype(np.int64) > 0
    for sv in variants:
        for s in range(0, masks.shape[0], chunk):
            Mall = masks[s:s + chunk]
            cfg = configs[s:s + chunk]
            hz = has_zero_all[s:s + chunk]
            if sv.cc == "only0" or (sv.cc == "all" and not add_to_all):
                keep = hz.copy()   # identical to "none" without zero cells
            else:
                keep = np.ones(Mall.shape[0], dtype=bool)
            # rows must not contain a study the variant cannot estimate
            keep &= ~(Mall & ~sv.ok[None, :]).any(axis=1)
            if not keep.any():
                continue
            Mb, cb, zb = Mall[keep], cfg[keep], hz[keep]
            Y = np.where(Mb, np.nan_to_num(sv.yi)[None, :], 0.0)
            if sv.vtype == "AV":
                xs = Mb @ np.nan_to_num(sv.xa)
                ns = Mb @ np.nan_to_num(sv.na)
                mp = xs / ns
                with np.errstate(divide="ignore", invalid="ignore"):
                    V = np.where(Mb, (mp * (1 - mp))[:, None] / sv.na[None, :], 1.0)
                okr = (mp > 0) & (mp < 1)
                if not okr.all():
                    Mb, cb, zb, Y, V = Mb[okr], cb[okr], zb[okr], Y[okr], V[okr]
                    if Mb.shape[0] == 0:
                        continue
            else:
                V = np.where(Mb, np.nan_to_num(sv.vi, nan=1.0)[None, :], 1.0)
            NI = None if sv.ni is None else np.broadcast_to(np.nan_to_num(sv.ni, nan=1.0), Mb.shape)
            yield _Block(sv.measure, sv.cc, sv.vtype, Y, V, Mb, NI, cb, zb, np.nan_to_num(sv.yi))


# ------------------------------------------------------------------------- two-arm: MH and Peto
def _mh_peto_batch(cols, Mf):
    """Mantel-Haenszel (OR, RR, RD) and Peto pooled numbers for each mask row (analysis scale).

    The same sums as :func:`metapool.counts.mantel_haenszel` and :func:`metapool.counts.peto`
    (R metafor ``rma.mh``/``rma.peto``: uncorrected tables), as matrix products over masks.
    Returns ``{name: (measure, estimate, se)}``; NaN where undefined.
    """
    a, n1 = cols["events_treat"].astype(float), cols["total_treat"].astype(float)
    c, n2 = cols["events_ctrl"].astype(float), cols["total_ctrl"].astype(float)
    b, d = n1 - a, n2 - c
    n = n1 + n2
    out = {}
    with np.errstate(divide="ignore", invalid="ignore"):
        P, Qc = (a + d) / n, (b + c) / n
        Ri, Si = a * d / n, b * c / n
        R, S = Mf @ Ri, Mf @ Si
        var = 0.5 * ((Mf @ (P * Ri)) / R ** 2 + (Mf @ (P * Si + Qc * Ri)) / (R * S) + (Mf @ (Qc * Si)) / S ** 2)
        ok = (R > 0) & (S > 0)
        out["MH_OR"] = ("OR", np.where(ok, np.log(R / S), np.nan), np.where(ok, np.sqrt(var), np.nan))
        R, S = Mf @ (a * n2 / n), Mf @ (c * n1 / n)
        var = (Mf @ (n1 / n * n2 / n * (a + c) - a * c / n)) / (R * S)
        ok = (Mf @ a > 0) & (Mf @ c > 0)
        out["MH_RR"] = ("RR", np.where(ok, np.log(R / S), np.nan), np.where(ok, np.sqrt(var), np.nan))
        W = Mf @ (n1 * n2 / n)
        beta = (Mf @ ((a * n2 - c * n1) / n)) / W
        num = beta * (Mf @ (c * (n1 / n) ** 2 - a * (n2 / n) ** 2 + (n1 / n) * (n2 / n) * (n2 - n1) / 2)) \
            + (Mf @ ((a * (n2 - c) + c * (n1 - a)) / n)) / 2
        out["MH_RD"] = ("RD", beta, np.sqrt(num) / W)
        E = (a + c) * n1 / n
        Vp = np.where(n > 1, (a + c) * (b + d) * (n1 / n) * (n2 / n) / (n - 1), 0.0)
        sv = Mf @ Vp
        ok = sv > 0
        out["PETO"] = ("PETO", np.where(ok, (Mf @ (a - E)) / sv, np.nan), np.where(ok, 1 / np.sqrt(sv), np.nan))
    return out


def _run_counts(cols, masks, configs, zero_study, coll, measures=_MEASURES["binary"], chunk=65536):
    z = _zcrit(coll.level)
    for s in range(0, masks.shape[0], chunk):
        Mb = masks[s:s + chunk]
        Mf = Mb.astype(float)
        cfg = configs[s:s + chunk]
        hz = (Mb @ zero_study.astype(np.int64)) > 0
        k = Mb.sum(axis=1)
        for name, (measure, mu, se) in _mh_peto_batch(cols, Mf).items():
            if measure not in measures:
                continue
            ok = np.flatnonzero(np.isfinite(mu) & np.isfinite(se) & (se > 0))
            if ok.size == 0:
                continue
            blk = _Block(measure, "none", "LS", None, None, None, None, cfg, hz)
            m_, s_ = mu[ok], se[ok]
            est = _back(measure, m_)
            lb, ub = _back(measure, m_ - z * s_), _back(measure, m_ + z * s_)
            p = 2 * special.ndtr(-np.abs(m_ / s_))
            coll.add(blk, ok, "MH" if name.startswith("MH") else "PETO", "z", est, lb, ub, p,
                     np.zeros(ok.size), k[ok])


def _run_glmm(cols, masks, configs, zero_study, coll, limit=None, order=None):
    """Binomial-normal GLMM (metafor rma.glmm, PLO, nAGQ = 7), one fit per mask row."""
    from .glmm import GLMMError, glmm_proportion

    x, n = cols["events"].astype(float), cols["total"].astype(float)
    z = _zcrit(coll.level)
    rows = np.arange(masks.shape[0]) if order is None else np.asarray(order)
    if limit is not None:
        rows = rows[:limit]
    for i in rows:
        m = masks[i]
        if m.sum() < 2:
            continue
        try:
            res = glmm_proportion(x[m], n[m], level=coll.level)
        except (GLMMError, ValueError, FloatingPointError):
            continue
        blk = _Block("PLO", "none", "LS", None, None, None, None, configs[i:i + 1],
                     np.array([bool((m & zero_study).any())]))
        mu, se = np.array([res.estimate]), np.array([res.se])
        est = _back("PLO", mu)
        lb, ub = _back("PLO", mu - z * se), _back("PLO", mu + z * se)
        coll.add(blk, np.array([0]), "GLMM", "z", est, lb, ub, np.array([res.pval]),
                 np.array([res.tau2]), np.array([int(m.sum())]))


# =============================================================================== results
def _cc_labels(measure, method, cc, zero):
    """The cc labels giving identical numbers for a configuration with/without zero cells.

    Without zero cells ``only0`` and ``if0all`` add nothing (same as ``none``); with zero cells
    ``if0all`` is ``all``.  MH, Peto and GLMM pool the uncorrected tables (``none``).
    """
    if cc is None:
        return []
    if method in ("MH", "PETO", "GLMM"):
        return ["none"]
    if not zero:
        labels = ["none", "only0", "if0all"] if cc in ("none", "only0") else ["all"]
    else:
        labels = {"none": ["none"], "only0": ["only0"], "all": ["all", "if0all"]}[cc]
    default = _DEFAULT_CC.get(measure, "only0")
    return sorted(labels, key=lambda c: (c != default, _CC_ORDER.index(c)))


def _rank_key(e, k_table):
    meas_order = {m: i for ms in _MEASURES.values() for i, m in enumerate(ms)}
    default = _DEFAULT_CC.get(e["measure"], "only0")
    return (k_table - e["k"], _METHOD_RANK.get(e["method"], 99), TESTS.index(e["test"]),
            0 if (e["cc"] in (None, default) or e["method"] in ("MH", "PETO", "GLMM")) else 1,
            0 if e.get("vtype") in (None, "LS") else 1, meas_order.get(e["measure"], 99), e["distance"])


def _clean(v):
    if isinstance(v, (np.floating, float)):
        f = float(v)
        return f if math.isfinite(f) else None
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.bool_):
        return bool(v)
    if isinstance(v, dict):
        return {str(k): _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    return v


@dataclass(frozen=True)
class AuditResult:
    """Result of :func:`audit` (see :meth:`to_dict` for the JSON shape).

    Attributes
    ----------
    inputs : dict
        The printed numbers (value, decimals, relation), family, level, the table's k and
        study labels, and the options.
    family : str
        proportion / two-arm / continuous / prepost / generic.
    ci_scales : tuple of str
        Scales on which the printed CI can be symmetric around the printed estimate.
    scale_checks : tuple of dict
        Every scale examined: ``symmetric``, the arms ``g(E) - g(L)`` and ``g(U) - g(E)`` at
        the printed values and the attainable range of ``2 g(E) - g(L) - g(U)``.
    implied_se : dict
        Scale -> ``{se, lo, hi}`` (z-based, ``(g(U) - g(L)) / (2 z)``; lo/hi over the rounding).
    implied_n : dict
        Proportions: scale -> ``{n, lo, hi, formula}``.
    p_check : dict or None
        Agreement of a printed p-value with the CI.
    reproducing : tuple of dict
        Models (and studies) reproducing every printed number, best first (see :func:`audit`).
    n_reproducing : int
        How many model x study combinations reproduce (``reproducing`` may be truncated).
    nearest : dict or None
        The closest model that does not reproduce, with ``distance`` in printed units.
    evaluated, pruned : int
        Model x study combinations computed, and those excluded by the pruning bound.
    missing : dict or None
        The missing-study search (``missing=True``).
    notes : tuple of str
    """

    inputs: dict
    family: str
    ci_scales: tuple
    scale_checks: tuple
    implied_se: dict
    implied_n: dict
    p_check: dict | None
    reproducing: tuple
    n_reproducing: int
    nearest: dict | None
    evaluated: int
    pruned: int
    missing: dict | None = None
    notes: tuple = field(default_factory=tuple)

    def to_dict(self) -> dict:
        """JSON-ready dict (NaN/inf -> None): keys ``inputs, family, ci_scales, scale_checks,
        implied_se, implied_n, p_check, reproducing, n_reproducing, nearest, evaluated, pruned,
        missing, notes``."""
        return {f.name: _clean(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "AuditResult":
        kw = {f.name: d.get(f.name) for f in fields(cls)}
        for key in ("ci_scales", "scale_checks", "reproducing", "notes"):
            kw[key] = tuple(kw[key] or ())
        for key in ("implied_se", "implied_n", "inputs"):
            kw[key] = dict(kw[key] or {})
        kw["n_reproducing"] = int(kw["n_reproducing"] or 0)
        kw["evaluated"] = int(kw["evaluated"] or 0)
        kw["pruned"] = int(kw["pruned"] or 0)
        return cls(**kw)

    def to_markdown(self) -> str:
        """A short human-readable report."""
        return _markdown(self)


def _fmt(x, d=4):
    if x is None:
        return "–"
    if isinstance(x, float):
        if not math.isfinite(x):
            return "–"
        return f"{x:.{d}f}"
    return str(x)


def _model_label(e):
    """Short model label: measure, method, test, and cc / vtype where not metafor's default."""
    bits = [e["measure"], e["method"], e["test"]]
    default = "none" if e["method"] in ("MH", "PETO", "GLMM") else _DEFAULT_CC.get(e["measure"], "only0")
    if e.get("cc") is not None and e["cc"] != default:
        bits.append(f"cc={e['cc']}")
    if e.get("vtype") == "AV":
        bits.append("vtype=AV")
        if e["method"] == "FE" and e.get("cc") == "none":
            bits.append("(crude pooled proportion)")
    return " ".join(bits)


def _markdown(res: AuditResult) -> str:
    inp = res.inputs
    d = inp["estimate"]["decimals"]
    head = inp["estimate"]["text"]
    if inp.get("ci_lb"):
        head += f" ({inp['ci_lb']['text']} to {inp['ci_ub']['text']})"
    if inp.get("p"):
        head += f", p {inp['p']['text']}" if inp["p"]["relation"] != "=" else f", p = {inp['p']['text']}"
    lines = [f"# Audit of {head}", "",
             f"{res.family} data, k = {inp['k']} {'study' if inp['k'] == 1 else 'studies'}; printed to {d} decimals "
             f"(each number stands for ±{10 ** -d / 2:g}).", ""]
    lines += ["## Scale", ""]
    if not inp.get("ci_lb"):
        lines.append("No CI printed: scale cannot be read from the interval.")
    else:
        for c in res.scale_checks:
            s = c["scale"] + (f" (n = {c['n']:.1f})" if c.get("n") else "")
            verdict = "can be symmetric" if c["symmetric"] else "cannot be symmetric"
            lines.append(f"- {s}: {verdict} (arms {_fmt(c.get('lower_arm'))} / {_fmt(c.get('upper_arm'))})")
        for sc, v in res.implied_se.items():
            line = f"- implied SE on the {sc} scale: {v['se']:.5f} (rounding range {v['lo']:.5f}–{v['hi']:.5f})"
            if sc in res.implied_n:
                n = res.implied_n[sc]
                line += f"; implied n = {n['n']:.1f} ({n['lo']:.1f}–{n['hi']:.1f}, {n['formula']})"
            lines.append(line)
    if res.p_check:
        if "skipped" in res.p_check:
            lines.append(f"- p-value check skipped: {res.p_check['skipped']}")
        for s in res.p_check.get("scales", []):
            lines.append(f"- p on the {s['scale']} scale (null {s['null']:g}): {s['p']:.3g}, attainable "
                         f"{s['p_range'][0]:.3g}–{s['p_range'][1]:.3g}: "
                         f"{'agrees' if s['consistent'] else 'does not agree'} with p {res.p_check['printed']}")
    lines += ["", "## Models that reproduce the printed numbers", ""]
    if res.reproducing:
        lines.append(f"{res.n_reproducing} of {res.evaluated:,} model × study combinations evaluated reproduce "
                     f"(showing {min(10, len(res.reproducing))}, best first).")
        lines += ["", "| model | studies | estimate | CI |", "|---|---|---|---|"]
        for e in res.reproducing[:10]:
            st = ", ".join(e["studies"]) if len(e["studies"]) <= 6 else f"{len(e['studies'])} studies"
            if e.get("remainder"):
                st += f" + remainder {e['remainder']}"
            lines.append(f"| {_model_label(e)} | {st} | {_fmt(e['estimate'], d + 2)} | "
                         f"{_fmt(e['ci_lb'], d + 2)} to {_fmt(e['ci_ub'], d + 2)} |")
    else:
        lines.append(f"None of {res.evaluated:,} model × study combinations evaluated reproduces the printed numbers.")
    if res.nearest:
        e = res.nearest
        ns = len(e["studies"])
        lines += ["", f"Nearest miss: {_model_label(e)} on {ns} {'study' if ns == 1 else 'studies'} gives "
                      f"{_fmt(e['estimate'], d + 2)} ({_fmt(e['ci_lb'], d + 2)} to {_fmt(e['ci_ub'], d + 2)}), "
                      f"{e['distance']:.2f} printed units away."]
    if res.missing:
        ms = res.missing
        lines += ["", "## Missing studies", "", ms["description"], ""]
        if not ms["models"]:
            lines.append("No remainder in the searched range reproduces the printed numbers.")
        if ms["models"]:
            lines.append(f"{len(ms['models'])} models have solutions ({ms['evaluated']:,} remainder x model "
                         f"combinations evaluated, {ms['pruned']:,} excluded by the bound); best ranked:")
            lines.append("")
        for mdl in ms["models"][:8]:
            lines.append(f"- {_model_label(mdl)}: {mdl['summary']}")
    if res.notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in res.notes]
    return "\n".join(lines) + "\n"


# =============================================================================== the audit
def _printed_boxes(printed_e, printed_l, printed_u):
    """``boxes(measure, nhm, B)``: the printed boxes on the measure's analysis scale, (B,) arrays."""
    def boxes(measure, nhm, B):
        scale = _MEASURE_SCALE.get(measure, "raw")

        def one(pr):
            a, b = _box_to_scale(scale, *pr.box, nhm)
            return np.broadcast_to(a, (B,)).astype(float), np.broadcast_to(b, (B,)).astype(float)
        if printed_l is None:
            return one(printed_e), None, None
        return one(printed_e), one(printed_l), one(printed_u)
    return boxes


def _entries(coll: _Collector, describe, k_table, max_list):
    """Reproducing entries (ranked) from the collector."""
    out = []
    for h in coll.hits:
        for i in range(h["config"].size):
            cfg = int(h["config"][i])
            zero = bool(h["zero"][i])
            labels = _cc_labels(h["measure"], h["method"], h["cc"], zero)
            e = {"measure": h["measure"], "method": h["method"], "test": h["test"],
                 "cc": labels[0] if labels else None, "cc_equivalent": labels[1:],
                 "vtype": h["vtype"], "k": int(h["k"][i]),
                 "estimate": float(h["estimate"][i]), "ci_lb": float(h["ci_lb"][i]),
                 "ci_ub": float(h["ci_ub"][i]), "pval": float(h["pval"][i]),
                 "tau2": float(h["tau2"][i]), "distance": float(h["d"][i]), "_cfg": cfg}
            out.append(e)
    out.sort(key=lambda e: _rank_key(e, k_table))
    n = len(out)
    res = []
    for e in out[:max_list]:
        e.update(describe(e.pop("_cfg")))
        res.append(e)
    return res, n


def _nearest(coll, describe):
    if coll.best is None:
        return None
    b = dict(coll.best[1])
    labels = _cc_labels(b["measure"], b["method"], b["cc"], b.pop("zero"))
    b["cc"] = labels[0] if labels else None
    b["cc_equivalent"] = labels[1:]
    b["distance"] = b.pop("d")
    b.update(describe(b.pop("config")))
    return b


# =============================================================================== missing studies
_RAW_CONT = ("MD", "MC", "GEN")


def _proportion_remainders(measure, cc, x, n):
    """Effect sizes of the candidate remainder rows (``x`` events of ``n``), each its own one-study
    table, so ``only0`` corrects exactly the rows with 0 or n events: yi, vi, ni, ok (NaN where
    not estimable).  The grid has tens of thousands of rows: straight to escalc's arithmetic."""
    from .effects import proportion_effects

    add, to = (0.0, "none") if cc == "none" else (0.5, cc)
    yi, vi, _ = proportion_effects(measure, x, n, add=add, to=to)
    ok = np.isfinite(yi) & np.isfinite(vi) & (vi > 0)
    return np.where(ok, yi, np.nan), np.where(ok, vi, np.nan), n.copy(), ok


def _missing_blocks(sv, rem, public_zero, add_to_all=False, chunk=65536):
    """Blocks of 'table + one remainder row', one row per candidate remainder."""
    k0 = sv.yi.size
    if not sv.ok.all():   # a table study this variant cannot estimate: covered by other variants
        return
    P = rem["yi"].size
    pz = bool(public_zero.any())
    for s in range(0, P, chunk):
        idx = np.arange(s, min(P, s + chunk))
        keep = rem["ok"][idx]
        if sv.cc == "only0" or (sv.cc == "all" and not add_to_all):
            keep = keep & (pz | rem["zero"][idx])
        idx = idx[keep]
        if idx.size == 0:
            continue
        B = idx.size
        Y = np.concatenate([np.broadcast_to(sv.yi, (B, k0)), rem["yi"][idx][:, None]], axis=1)
        M = np.ones((B, k0 + 1), dtype=bool)
        if sv.vtype == "AV":
            na = np.concatenate([np.broadcast_to(sv.na, (B, k0)), rem["na"][idx][:, None]], axis=1)
            mp = (sv.xa.sum() + rem["xa"][idx]) / na.sum(axis=1)
            ok = (mp > 0) & (mp < 1)
            V = (mp * (1 - mp))[:, None] / na
            Y, V, M, idx = Y[ok], V[ok], M[ok], idx[ok]
            if idx.size == 0:
                continue
        else:
            V = np.concatenate([np.broadcast_to(sv.vi, (B, k0)), rem["vi"][idx][:, None]], axis=1)
        NI = None
        if sv.measure == "PFT":
            NI = np.concatenate([np.broadcast_to(sv.ni, (idx.size, k0)), rem["ni"][idx][:, None]], axis=1)
        yield _Block(sv.measure, sv.cc, sv.vtype, Y, V, M, NI, idx, pz | rem["zero"][idx])


def _search_missing(kind, cols, study, variants, printed, boxes, level, max_n, r, est, add_to_all=False,
                    detail=5):
    """Remainder rows that, added to the table, reproduce the printed numbers (see :func:`audit`)."""
    if max_n < 1:
        raise ValueError(f"max_n must be >= 1, got {max_n}")
    if kind == "binary":
        return {"supported": False, "models": [], "evaluated": 0, "pruned": 0,
                "description": "The missing-study search is not available for two-arm counts "
                               "(four unknown counts); audit each arm as single-arm proportions."}
    k0 = len(study)
    coll = _Collector(printed, level, prune=True, k_table=k0 + 1)
    public_zero = _count_zero(kind, cols)
    descriptions = []
    if kind == "proportion":
        n = np.repeat(np.arange(1, max_n + 1), np.arange(2, max_n + 2)).astype(float)
        x = np.concatenate([np.arange(m + 1) for m in range(1, max_n + 1)]).astype(float)
        grid = {"events": x, "total": n}
        descriptions.append(f"One remainder row (events x, total n) added to the {k0} table studies; all "
                            f"{x.size:,} pairs with 1 <= n <= {max_n}, 0 <= x <= n searched.")
    else:
        cont = _continuous_candidates(kind, variants, boxes, est, max_n, r, level)
        descriptions += [d for _, _, d in cont.values()]
        descriptions.append("Search: s on 121 log-spaced values around the table's SEs (30-fold either way), y "
                            "on 401 values; the ends of the estimate band and, with a CI, of the CI-width band "
                            "are bisected, and points between them are evaluated with every model (see "
                            "metapool.audit._continuous_points).")
    cache = {}
    for sv in variants:
        if kind == "proportion":
            rem = {"zero": (x == 0) | (x == n)}
            if sv.vtype == "AV":
                add = 0.0 if sv.cc == "none" else 0.5
                hit = {"none": np.zeros(x.size, bool), "all": np.ones(x.size, bool)}.get(sv.cc, rem["zero"])
                rem.update(xa=x + add * hit, na=n + 2 * add * hit)
                rem.update(yi=rem["xa"] / rem["na"], ok=np.ones(x.size, bool))
            else:
                key = (sv.measure, sv.cc)
                if key not in cache:
                    cache[key] = _proportion_remainders(sv.measure, sv.cc, x, n)
                yi, vi, ni, ok = cache[key]
                rem.update(yi=yi, vi=vi, ni=ni, ok=ok)
            param, g = "events,total", grid
        else:
            param, g, _ = cont[sv.measure]
            if g["effect"].size == 0:
                continue
            yi, vi = g["effect"], g["se"] ** 2
            rem = {"yi": yi, "vi": vi, "ok": np.isfinite(yi) & (vi > 0), "zero": np.zeros(yi.size, bool)}
        for blk in _missing_blocks(sv, rem, public_zero, add_to_all):
            _run_block(blk, coll, boxes, True)
    # solutions per model: a model (with its cc label) reproduces for every remainder whose
    # label set contains that label; labels with identical solution sets are merged
    per_model = {}
    for h in coll.hits:
        for i in range(h["config"].size):
            labels = _cc_labels(h["measure"], h["method"], h["cc"], bool(h["zero"][i])) or [None]
            for lab in labels:
                key = (h["measure"], h["method"], h["test"], h["vtype"], lab)
                per_model.setdefault(key, set()).add(int(h["config"][i]))
    merged = {}
    for (measure, method, test, vtype, lab), cfgs in per_model.items():
        merged.setdefault((measure, method, test, vtype, frozenset(cfgs)), []).append(lab)
    models = []
    for (measure, method, test, vtype, cfgs), labs in merged.items():
        if labs != [None]:
            default = "none" if method in ("MH", "PETO", "GLMM") else _DEFAULT_CC.get(measure, "only0")
            labs = sorted(labs, key=lambda c: (c != default, _CC_ORDER.index(c)))
        param, g = ("events,total", grid) if kind == "proportion" else cont[measure][:2]
        e = {"measure": measure, "method": method, "test": test, "cc": labs[0],
             "cc_equivalent": labs[1:], "vtype": vtype, "k": k0 + 1, "distance": 0.0}
        e.update(_summarise_region(param, g, np.array(sorted(cfgs)), measure, r))
        models.append(e)
    models.sort(key=lambda e: _rank_key(e, k0 + 1))
    if detail is not None:
        for e in models[detail:]:   # the full per-total / per-n listing for the best models only
            e.pop("by_total", None)
            e.pop("by_se", None)
    return {"supported": True, "description": " ".join(dict.fromkeys(descriptions)),
            "max_n": max_n, "evaluated": coll.evaluated, "pruned": coll.pruned, "models": models}


def _summarise_region(param, g, cfgs, measure=None, r=None):
    """Summary of the remainder values (configurations ``cfgs`` of grid ``g``) of one model."""
    if param == "events,total":
        x, n = g["events"][cfgs], g["total"][cfgs]
        order = np.lexsort((x, n))
        x, n = x[order], n[order]
        rate = x / n
        un, start = np.unique(n, return_index=True)
        end = np.r_[start[1:], n.size]
        by_total = [[int(t), int(x[a]), int(x[b - 1])] for t, a, b in zip(un, start, end)]
        smallest = [[int(a), int(b)] for a, b in zip(x[:10], n[:10])]
        return {"parametrisation": param, "n_solutions": int(cfgs.size),
                "total_min": int(n.min()), "total_max": int(n.max()),
                "events_min": int(x.min()), "events_max": int(x.max()),
                "rate_min": float(rate.min()), "rate_max": float(rate.max()),
                "smallest": smallest, "by_total": by_total,
                "summary": (f"{cfgs.size:,} (events, total) pairs: total {int(n.min())}-{int(n.max())}, "
                            f"events {int(x.min())}-{int(x.max())}, remainder rate "
                            f"{rate.min():.3f}-{rate.max():.3f}; smallest totals: "
                            + ", ".join(f"{a}/{b}" for a, b in smallest[:3]))}
    eff, se = g["effect"][cfgs], g["se"][cfgs]
    order = np.lexsort((eff, se))
    eff, se = eff[order], se[order]
    us, start = np.unique(se, return_index=True)
    end = np.r_[start[1:], se.size]
    by = [[float(o), float(eff[a]), float(eff[b - 1])] for o, a, b in zip(us, start, end)]
    out = {"parametrisation": param, "n_solutions": int(cfgs.size),
           "se_min": float(se.min()), "se_max": float(se.max()),
           "effect_min": float(eff.min()), "effect_max": float(eff.max()), "by_se": by}
    text = (f"{cfgs.size:,} points: remainder effect {eff.min():.4g} to {eff.max():.4g}, "
            f"SE {se.min():.4g} to {se.max():.4g}")
    neq = _n_equivalent(measure, eff, se, r)
    if neq is not None:
        out.update(n_equivalent_min=float(neq.min()), n_equivalent_max=float(neq.max()))
        text += f" (one study of n = {neq.min():.1f} to {neq.max():.1f})"
    out["summary"] = text
    return out


def _n_equivalent(measure, y, se, r):
    """Sample size of one study with effect y and standard error se (standardised measures).

    escalc large-sample variances: SMD ``4/n + y^2/(2n)`` (two equal arms), SMCR
    ``2(1-r)/n + y^2/(2n)``, SMCC ``1/n + y^2/(2n)``; None for raw measures (n and SD trade off).
    """
    rr = DEFAULT_R if r is None else float(r)
    a = {"SMD": 4.0, "SMCR": 2 * (1 - rr), "SMCC": 1.0}.get(measure)
    if a is None:
        return None
    return (a + np.asarray(y) ** 2 / 2) / np.asarray(se) ** 2


def _pooled_with(sv, y, s, method, test, level):
    """Pooled estimate and CI half-width of the table plus one row (y, SE s), for one model."""
    B, k0 = y.size, sv.yi.size
    Y = np.concatenate([np.broadcast_to(sv.yi, (B, k0)), y[:, None]], axis=1)
    V = np.concatenate([np.broadcast_to(sv.vi, (B, k0)), (s ** 2)[:, None]], axis=1)
    M = np.ones((B, k0 + 1), dtype=bool)
    tau2 = np.zeros(B) if method == "FE" else _tau2.estimate_tau2_batch(Y, V, M, method)
    mu, vb, rss = _pool(Y, V, M, tau2)
    if test == "knha":
        df = float(k0)
        s2w = np.where(rss <= np.finfo(float).eps, 0.0, rss / df)
        half = -special.stdtrit(df, (1 - level) / 2) * np.sqrt(vb * s2w)
    else:
        half = _zcrit(level) * np.sqrt(vb)
    return mu, half


def _bisect(f, lo, hi, target, iters=14):
    """Vectorised root of ``f(x) = target`` on brackets [lo, hi] (f monotone in each bracket).

    Regula falsi with the Illinois modification (superlinear for smooth f, and the bracket is
    kept, so the result always lies in [lo, hi]); rows whose bracket does not contain the
    target return the nearer end.
    """
    lo, hi = np.asarray(lo, dtype=float).copy(), np.asarray(hi, dtype=float).copy()
    target = np.broadcast_to(np.asarray(target, dtype=float), lo.shape)
    fl, fh = f(lo) - target, f(hi) - target
    x = np.where(np.abs(fl) <= np.abs(fh), lo, hi)
    side = np.zeros(lo.shape, dtype=int)
    for _ in range(iters):
        with np.errstate(invalid="ignore", divide="ignore"):
            xn = np.where(fh != fl, hi - fh * (hi - lo) / (fh - fl), 0.5 * (lo + hi))
        xn = np.where(np.isfinite(xn) & (xn >= np.minimum(lo, hi)) & (xn <= np.maximum(lo, hi)), xn, 0.5 * (lo + hi))
        fx = f(xn) - target
        same_lo = np.sign(fx) == np.sign(fl)
        # replace the end with the same sign; halve the kept end's value twice in a row (Illinois)
        lo = np.where(same_lo, xn, lo)
        fl_new = np.where(same_lo, fx, np.where(side == -1, fl / 2, fl))
        hi = np.where(same_lo, hi, xn)
        fh_new = np.where(same_lo, np.where(side == 1, fh / 2, fh), fx)
        side = np.where(same_lo, 1, -1)
        fl, fh = fl_new, fh_new
        x = xn
    return x


def _estimate_band(sv, s_row, y_grid, e0, e1, method, level):
    """For each SE s, the intervals of remainder effects y whose pooled estimate lies in [e0, e1].

    The pooled estimate is scanned on ``y_grid``; in each grid cell where it meets the band, the
    ends are bisected (the estimate is assumed monotone within a cell).  Returns arrays
    (s, y_start, y_end), one entry per cell.
    """
    G = y_grid.size
    Yg = np.tile(y_grid, s_row.size)
    Sg = np.repeat(s_row, G)
    mu = _pooled_with(sv, Yg, Sg, method, "z", level)[0].reshape(s_row.size, G)
    m0, m1 = mu[:, :-1], mu[:, 1:]
    with np.errstate(invalid="ignore"):
        hit = (np.fmax(m0, m1) >= e0) & (np.fmin(m0, m1) <= e1)
    ri, cj = np.nonzero(hit)
    if ri.size == 0:
        return np.empty(0), np.empty(0), np.empty(0)
    a, b = y_grid[cj], y_grid[cj + 1]
    ma, mb = m0[ri, cj], m1[ri, cj]
    sc = s_row[ri]
    inc = mb >= ma

    def f(y):
        return _pooled_with(sv, y, sc, method, "z", level)[0]

    start_t, end_t = np.where(inc, e0, e1), np.where(inc, e1, e0)
    y_start = np.where(np.where(inc, ma < e0, ma > e1), _bisect(f, a, b, start_t), a)
    y_end = np.where(np.where(inc, mb > e1, mb < e0), _bisect(f, a, b, end_t), b)
    return sc, y_start, y_end


def _continuous_points(sv, box_e, box_l, box_u, s_grid, y_grid, level, n_sample=11):
    """Candidate remainders (y, s) -- effect and SE -- for continuous, pre/post and generic data.

    Estimate only: for every s of ``s_grid`` and every method, the effects whose pooled estimate
    falls in the printed band (:func:`_estimate_band`), sampled at ``2 n_sample - 1`` points.
    With a CI: along the curve ``y*(s)`` on which the pooled estimate equals the printed one,
    the CI half-width of each model is computed on the s grid; where it meets the printed band
    of half-widths, the band's ends in s are bisected (the half-width assumed monotone within a
    grid cell of s) and ``n_sample`` values of s between them, each with ``n_sample`` effects
    across its estimate band, are the candidates.  Every model is then evaluated on them.
    """
    e0, e1 = box_e
    ec = 0.5 * (e0 + e1)
    pts_y, pts_s = [], []

    def sample(sc, ya, yb, m):
        frac = np.linspace(0.0, 1.0, m)
        pts_y.append((ya[:, None] + (yb - ya)[:, None] * frac[None, :]).ravel())
        pts_s.append(np.repeat(sc, m))

    for method in METHODS:
        if method == "EB":   # metapool's EB tau2 is the PM root: same candidates
            continue
        if box_l is None:
            sc, ya, yb = _estimate_band(sv, s_grid, y_grid, e0, e1, method, level)
            if sc.size:
                sample(sc, ya, yb, 2 * n_sample - 1)
            continue
        (l0, l1), (u0, u1) = box_l, box_u
        h_lo, h_hi = max(0.0, (u0 - l1) / 2), (u1 - l0) / 2
        # the curve y*(s): pooled estimate = centre of the printed estimate band
        sc, ya, _ = _estimate_band(sv, s_grid, y_grid, ec, ec, method, level)
        if sc.size == 0:
            continue
        for test in TESTS:
            half = _pooled_with(sv, ya, sc, method, test, level)[1]
            # consecutive grid values of s (same branch of the curve: keep the order of cells)
            order = np.lexsort((ya, sc))
            s_o, y_o, h_o = sc[order], ya[order], half[order]
            pairs = np.flatnonzero((np.searchsorted(s_grid, s_o[1:]) == np.searchsorted(s_grid, s_o[:-1]) + 1))
            ins = np.flatnonzero((h_o >= h_lo) & (h_o <= h_hi))
            cand_s = [s_o[ins]]
            if pairs.size:
                i, j = pairs, pairs + 1
                cross = (np.fmax(h_o[i], h_o[j]) >= h_lo) & (np.fmin(h_o[i], h_o[j]) <= h_hi)
                i, j = i[cross], j[cross]
                if i.size:
                    y_lo, y_hi = np.minimum(y_o[i], y_o[j]), np.maximum(y_o[i], y_o[j])
                    pad = 0.5 * (y_hi - y_lo) + 1e-12

                    def ystar(s_vals, y_lo=y_lo, y_hi=y_hi, pad=pad):
                        def f(y):
                            return _pooled_with(sv, y, s_vals, method, "z", level)[0]
                        return _bisect(f, y_lo - pad, y_hi + pad, np.full(s_vals.size, ec))

                    def hfun(s_vals):
                        return _pooled_with(sv, ystar(s_vals), s_vals, method, test, level)[1]

                    sa, sb = s_o[i], s_o[j]
                    ha, hb = h_o[i], h_o[j]
                    inc = hb >= ha
                    lo_t, hi_t = np.where(inc, h_lo, h_hi), np.where(inc, h_hi, h_lo)
                    s_from = np.where(np.where(inc, ha < h_lo, ha > h_hi),
                                      _bisect(hfun, sa, sb, lo_t), sa)
                    s_to = np.where(np.where(inc, hb > h_hi, hb < h_lo),
                                    _bisect(hfun, sa, sb, hi_t), sb)
                    frac = np.linspace(0.0, 1.0, n_sample)
                    cand_s.append((s_from[:, None] + (s_to - s_from)[:, None] * frac[None, :]).ravel())
            s_c = np.unique(np.concatenate(cand_s))
            if s_c.size == 0:
                continue
            # the estimate band at each candidate s: bracket around the curve, then bisect
            sc2, ya2, yb2 = _estimate_band(sv, s_c, y_grid, e0, e1, method, level)
            if sc2.size:
                sample(sc2, ya2, yb2, n_sample)
    if not pts_y:
        return np.empty(0), np.empty(0)
    P = np.unique(np.column_stack([np.concatenate(pts_s), np.concatenate(pts_y)]), axis=0)
    return P[:, 1], P[:, 0]


def _continuous_candidates(kind, variants, boxes, est, max_n, r, level):
    """Remainder candidates per measure: measure -> ("effect,se", {effect, se}, description).

    The remainder row is described on the analysis scale by its effect y and standard error s
    (for standardised measures also by the equivalent n of one study, see :func:`_n_equivalent`).
    s runs over 121 log-spaced values in [s_med/30, 30 s_med] (s_med: median SE of the table),
    y over 401 values in ``estimate +- 50 max(max |y_i - estimate|, s_med)``.
    """
    out = {}
    for sv in variants:
        if sv.measure in out:
            continue
        be, bl, bu = boxes(sv.measure, None, 1)
        be = (float(be[0][0]), float(be[1][0]))
        if bl is not None:
            bl = (float(bl[0][0]), float(bl[1][0]))
            bu = (float(bu[0][0]), float(bu[1][0]))
        se_med = float(np.median(np.sqrt(sv.vi[np.isfinite(sv.vi)])))
        s_grid = np.geomspace(se_med / 30, se_med * 30, 121)
        span = 50 * max(float(np.max(np.abs(sv.yi - est.value))), se_med)
        y_grid = np.linspace(est.value - span, est.value + span, 401)
        y, s_ = _continuous_points(sv, be, bl, bu, s_grid, y_grid, level)
        what = {"SMD": "a two-group study with equal arms", "SMCR": "a pre/post study",
                "SMCC": "a pre/post study"}.get(sv.measure)
        text = (f"{sv.measure}: one remainder row with effect y (analysis scale) and standard error s; "
                + (f"n_equivalent: the total n of {what} with that (y, s). " if what else
                   ("SD = s sqrt(n) for any n. " if sv.measure == "MC" else
                    "SD = s sqrt(n)/2 for two equal arms of n/2. " if sv.measure == "MD" else "")))
        out[sv.measure] = ("effect,se", {"effect": y, "se": s_}, text)
    return out


def audit(data, estimate, ci=None, *, decimals: int | None = None, family: str | None = None,
          p=None, level: float = 0.95, subsets: bool = False, missing: bool = False,
          max_n: int = 1000, r: float | None = None, max_list: int = 100,
          glmm: bool = True, add_to_all: bool = False, missing_detail: int | None = 5,
          measures=None) -> AuditResult:
    """Audit a printed pooled estimate against a table of studies.

    Parameters
    ----------
    data : mapping of column name -> sequence
        A dict of lists or a pandas DataFrame: ``study`` (optional labels) and the columns of one
        kind (:data:`metapool.effects.KIND_COLUMNS`: ``events, total``; ``events_treat,
        total_treat, events_ctrl, total_ctrl``; two-group or pre/post means; ``yi, vi``).
    estimate : float or str
        The printed pooled estimate on the reporting scale (a proportion as a fraction, e.g.
        0.548 for 54.8 %; a ratio as a ratio).  A string keeps its printed decimals (``"0.50"``).
    ci : (lower, upper), optional
        The printed confidence interval (None, or a pair of NaN/empty values: not printed).
    decimals : int, optional
        Printed decimals of the estimate and the CI (default: read from ``estimate``).
    family : str, optional
        proportion / two-arm / continuous / prepost / generic (default: read from the columns,
        :func:`metapool.effects.detect_kind`).
    p : float or str, optional
        The printed p-value (``0.001``, ``"<0.001"``, ``">0.05"``); its decimals are its own.
        None, NaN or an empty string: not printed (so a row of a targets table can be passed as is).
    level : float
        Confidence level of the printed CI.
    subsets : bool
        Also search every non-empty subset of the table's rows (k <= 20).
    missing : bool
        Search for the aggregated remainder row that, added to the table, reproduces the printed
        numbers (proportions: events/total with total up to ``max_n``; continuous and pre/post:
        a region in (effect, n) or (effect, SE)).
    max_n : int
        Largest remainder total (or n) searched.
    r : float, optional
        Pre/post correlation for studies without an ``r`` column value (default 0.5, as escalc).
    max_list : int
        Reproducing entries kept in the result (all are counted in ``n_reproducing``).
    glmm : bool
        Fit the binomial-normal GLMM for proportions (per fit, ~0.1 s each).
    measures : sequence of str, optional
        Evaluate only these measures of the family (default all: PR PLO PAS PFT; OR RR RD PETO
        (MH and Peto follow OR/RR/RD and PETO); SMD MD; SMCR SMCC MC; GEN), e.g. ``("SMCR",
        "SMCC")`` when the paper printed an SMD of pre/post data.
    missing_detail : int or None
        The missing search lists every remainder (``by_total`` / ``by_se``) for this many of its
        best-ranked models (all when None); the others get a summary.
    add_to_all : bool
        Also evaluate add = 1/2 to every study of configurations *without* zero cells (metafor
        ``to="all"``, meta's ``addincr``; rarely used).  With a zero cell, ``to="all"`` is
        ``if0all`` and always evaluated.

    Returns
    -------
    AuditResult

    Notes
    -----
    Reproducing models are ranked by (1) fewer table studies left out, (2) standard methods
    first: FE, DL, REML, MH, PETO, GLMM, PM, ML, HS, SJ, HE, EB, (3) z before knha, (4) the
    metafor default continuity correction first (``only0``; ``none`` for PAS/PFT), (5) vtype LS
    before AV, (6) the family's usual measure first (PR PLO PAS PFT; OR RR RD PETO; SMD MD;
    SMCR SMCC MC), (7) distance.  Validated as described in the module docstring.
    """
    cols, study = _table(data)
    present = [c for c in cols if c != "study" and _nonempty(cols[c])]
    if family is None:
        from .effects import detect_kind

        kind = detect_kind(present)
    else:
        if family not in FAMILIES:
            raise ValueError(f"unknown family {family!r}; choose from {', '.join(FAMILIES)}")
        kind = FAMILIES[family]
    if not 0 < float(level) < 1:
        raise ValueError(f"level must be between 0 and 1, got {level}")
    level = float(level)
    def _missing(x):
        return x is None or (isinstance(x, (float, np.floating)) and math.isnan(x)) or \
            (isinstance(x, str) and x.strip().lower() in ("", "nan", "na", "nr"))

    if decimals is not None and _missing(decimals):
        decimals = None
    est = Printed.parse(estimate, decimals, what="estimate")
    dec = est.decimals
    lb = ub = None
    if ci is not None and all(_missing(x) for x in ci):
        ci = None
    if ci is not None:
        if len(ci) != 2:
            raise ValueError("ci must be a pair (lower, upper)")
        lb = Printed.parse(ci[0], dec, what="ci lower bound")
        ub = Printed.parse(ci[1], dec, what="ci upper bound")
        if not lb.value <= est.value <= ub.value:
            raise ValueError(f"the CI ({lb.value:g}, {ub.value:g}) does not contain the estimate {est.value:g}")
    pp = None if _missing(p) else Printed.parse(p, what="p-value")
    if pp is not None and not 0 <= pp.value <= 1:
        raise ValueError(f"p-value must be between 0 and 1, got {pp.value:g}")
    if est.relation != "=" or (lb is not None and (lb.relation != "=" or ub.relation != "=")):
        raise ValueError("estimate and CI must be plain numbers (no < or >)")
    k_table = len(study)
    notes = []

    # ---------------------------------------------------------------- which scale
    n_ft = None
    if kind == "proportion":
        tot = np.asarray(cols["total"], dtype=float)
        n_ft = float(k_table / np.sum(1.0 / tot))
    checks, implied_se, implied_n, consistent = _check_scales(kind, est, lb, ub, level, n_ft)
    if kind == "proportion" and lb is not None:
        notes.append(f"Freeman-Tukey scale checked with n = {n_ft:.1f}, the harmonic mean of the table's "
                     "totals (metafor back-transforms PFT with the harmonic mean n of the pooled studies; "
                     "the check depends on n only weakly for n >= 20)")
    if lb is not None:
        notes.append("implied SE and the p-value check use the normal quantile (z); a Knapp-Hartung "
                     "CI uses t(k-1) and would imply a smaller SE")
    p_check = _check_p(kind, est, lb, ub, pp, level, consistent, n_ft)
    if lb is None and (pp is None or kind == "proportion"):
        notes.append("only an estimate is matched: z and knha give the same estimate, so every model is "
                     "listed once, with test 'z' (its knha twin reproduces equally)")

    # ---------------------------------------------------------------- which method / studies
    if measures is None:
        measures = _MEASURES[kind]
    else:
        measures = tuple(dict.fromkeys(str(m).upper() for m in ([measures] if isinstance(measures, str) else measures)))
        bad = [m for m in measures if m not in _MEASURES[kind]]
        if bad or not measures:
            raise ValueError(f"measure {', '.join(bad) or '(none)'} is not one of the {_FAMILY_OF_KIND[kind]} "
                             f"measures: {', '.join(_MEASURES[kind])}")
    variants = _study_variants(kind, cols, measures, r=r)
    zero_study = _count_zero(kind, cols)
    printed = [("estimate", est)]
    if lb is not None:
        printed += [("ci_lb", lb), ("ci_ub", ub)]
    if pp is not None and kind != "proportion":
        printed.append(("pval", pp))
    elif pp is not None:
        notes.append("the printed p-value is not used to match proportion models (no natural null)")
    boxes = _printed_boxes(est, lb, ub)
    coll = _Collector(printed, level, prune=True, k_table=k_table)

    if subsets:
        if k_table > MAX_SUBSET_K:
            raise ValueError(f"the subset search is limited to k <= {MAX_SUBSET_K} studies (table has {k_table})")
        nconf = 2 ** k_table - 1
        masks = _subset_masks(k_table, 1, nconf + 1)
        configs = np.arange(nconf)
    else:
        masks = np.ones((1, k_table), dtype=bool)
        configs = np.zeros(1, dtype=int)

    def describe(cfg):
        m = masks[cfg]
        return {"studies": [s for s, keep in zip(study, m) if keep],
                "excluded": [s for s, keep in zip(study, m) if not keep]}

    for blk in _blocks_for_masks(variants, masks, configs, zero_study, add_to_all):
        _run_block(blk, coll, boxes, lb is not None)
    if kind == "binary":
        _run_counts(cols, masks, configs, zero_study, coll, measures)
    if kind == "proportion" and glmm and "PLO" in measures:
        if masks.shape[0] <= _GLMM_SUBSET_MAX:
            _run_glmm(cols, masks, configs, zero_study, coll)
        else:
            # heuristic (not a bound): GLMM on the subsets whose logit FE estimate is nearest
            order = _glmm_order(variants, masks, est)
            _run_glmm(cols, masks, configs, zero_study, coll, limit=_GLMM_SUBSET_MAX, order=order)
            notes.append(f"GLMM (one fit each) was evaluated on the {_GLMM_SUBSET_MAX} subsets whose logit FE "
                         "estimate is nearest to the printed estimate (a heuristic, not a bound)")
    if coll.pruned:
        notes.append(f"{coll.pruned:,} subset x model combinations of the iterative tau2 estimators "
                     "(REML, ML, PM, EB) were excluded by the pruning bound (no tau2 >= 0 can match)")
    reproducing, n_rep = _entries(coll, describe, k_table, max_list)
    nearest = _nearest(coll, describe)

    # ---------------------------------------------------------------- missing studies
    miss = None
    if missing:
        miss = _search_missing(kind, cols, study, variants, printed, boxes, level, int(max_n), r, est,
                               add_to_all, missing_detail)

    inputs = {"estimate": est.to_dict(), "ci_lb": lb.to_dict() if lb else None,
              "ci_ub": ub.to_dict() if ub else None, "p": pp.to_dict() if pp else None,
              "decimals": dec, "family": _FAMILY_OF_KIND[kind], "level": level, "k": k_table,
              "studies": study, "measures": list(measures), "subsets": bool(subsets), "missing": bool(missing),
              "max_n": int(max_n) if missing else None}
    return AuditResult(inputs=inputs, family=_FAMILY_OF_KIND[kind], ci_scales=tuple(consistent),
                       scale_checks=tuple(checks), implied_se=implied_se, implied_n=implied_n,
                       p_check=p_check, reproducing=tuple(reproducing), n_reproducing=n_rep,
                       nearest=nearest, evaluated=coll.evaluated, pruned=coll.pruned,
                       missing=miss, notes=tuple(notes))


def audit_printed(estimate, ci=None, *, decimals: int | None = None, family: str | None = None, p=None,
                  level: float = 0.95) -> AuditResult:
    """The checks of :func:`audit` that need no study table: on which scales the printed CI can be
    symmetric around the printed estimate, the implied SE (and, for a raw or transformed
    proportion, the implied number of patients) and whether a printed p-value agrees with the CI.

    Used for published estimates without public study data.  The Freeman-Tukey scale needs the
    studies' sizes, so it is not examined here.  Validated with :func:`audit` (same functions):
    ``tests/test_audit.py`` checks both agree on SRI-4.
    """
    kind = FAMILIES.get(family or "continuous")
    if kind is None:
        raise ValueError(f"unknown family {family!r}; choose from {', '.join(FAMILIES)}")

    def _missing(x):
        return x is None or (isinstance(x, (float, np.floating)) and math.isnan(x)) or \
            (isinstance(x, str) and x.strip().lower() in ("", "nan", "na", "nr"))

    decimals = None if decimals is not None and _missing(decimals) else decimals
    est = Printed.parse(estimate, decimals, what="estimate")
    lb = ub = None
    if ci is not None and not all(_missing(x) for x in ci):
        lb = Printed.parse(ci[0], est.decimals, what="ci lower bound")
        ub = Printed.parse(ci[1], est.decimals, what="ci upper bound")
    pp = None if _missing(p) else Printed.parse(p, what="p-value")
    checks, implied_se, implied_n, consistent = _check_scales(kind, est, lb, ub, float(level), None)
    checks = [c for c in checks if c["scale"] != "freeman-tukey"]
    consistent = [c for c in consistent if c != "freeman-tukey"]
    p_check = _check_p(kind, est, lb, ub, pp, float(level), consistent, None)
    notes = ("no study table: only the printed numbers are examined (which scale, implied SE, p-value)",)
    inputs = {"estimate": est.to_dict(), "ci_lb": lb.to_dict() if lb else None, "ci_ub": ub.to_dict() if ub else None,
              "p": pp.to_dict() if pp else None, "decimals": est.decimals, "family": _FAMILY_OF_KIND[kind],
              "level": float(level), "k": 0, "studies": [], "measures": [], "subsets": False, "missing": False,
              "max_n": None}
    return AuditResult(inputs=inputs, family=_FAMILY_OF_KIND[kind], ci_scales=tuple(consistent),
                       scale_checks=tuple(checks), implied_se=implied_se, implied_n=implied_n, p_check=p_check,
                       reproducing=(), n_reproducing=0, nearest=None, evaluated=0, pruned=0, notes=notes)


def _glmm_order(variants, masks, est):
    sv = next(v for v in variants if v.measure == "PLO" and v.cc == "only0" and v.vtype == "LS")
    Mf = (masks & sv.ok[None, :]).astype(float)
    w = np.where(sv.ok, 1 / np.nan_to_num(sv.vi, nan=1.0), 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mu = (Mf @ (w * np.nan_to_num(sv.yi))) / (Mf @ w)
        d = np.abs(special.expit(mu) - est.value)
    d = np.where((masks.sum(axis=1) >= 2) & np.isfinite(d), d, np.inf)
    return np.argsort(d, kind="stable")


# =============================================================================== command line
def add_cli_parser(sub) -> None:
    """Register ``metapool audit`` on the ``metapool`` subparsers (called by metapool.cli)."""
    p = sub.add_parser("audit", help="forensic audit of a published pooled estimate",
                       description="How could this printed pooled estimate have been computed? Checks the "
                                   "scale of the CI, every model the data allow, optionally every subset of "
                                   "studies and the content of missing studies.")
    p.add_argument("data", help="CSV file: a `study` column plus the columns of one data kind")
    p.add_argument("--estimate", required=True, help="the printed pooled estimate (e.g. 0.819; a proportion "
                                                     "as a fraction)")
    p.add_argument("--ci", nargs=2, metavar=("LOWER", "UPPER"), help="the printed confidence interval")
    p.add_argument("--decimals", type=int, help="printed decimals (default: those of --estimate)")
    p.add_argument("--family", choices=tuple(FAMILIES), help="data family (default: read from the columns)")
    p.add_argument("--measure", action="append", metavar="MEASURE",
                   help="only this measure of the family (repeat or comma-separate; default all)")
    p.add_argument("--p", dest="pvalue", metavar="P", help="the printed p-value (e.g. 0.001 or '<0.001')")
    p.add_argument("--level", type=float, default=0.95, help="confidence level of the CI (default 0.95)")
    p.add_argument("--subsets", action="store_true", help="search every subset of the rows (k <= 20)")
    p.add_argument("--missing", action="store_true", help="search the content of one missing remainder row")
    p.add_argument("--max-n", type=int, default=1000, help="largest remainder total searched (default 1000)")
    p.add_argument("--add-to-all", action="store_true", help="also add 1/2 to every study without zero cells")
    p.add_argument("--no-glmm", action="store_true", help="skip the binomial-normal GLMM (proportions)")
    p.add_argument("--outcome", help="audit against this outcome's rows (tables with an `outcome` column)")
    p.add_argument("--format", default="md", choices=("json", "md"), help="output format (default md)")


def cli_main(args) -> int:
    """Run ``metapool audit`` for parsed arguments; returns the exit code (2 on user errors)."""
    import json
    import sys

    def fail(msg):
        msg = "; ".join(line.strip() for line in str(msg).splitlines() if line.strip())
        print(f"metapool audit: error: {msg}", file=sys.stderr)
        return 2

    from .data import DataError, load_plain_table

    try:
        _, rows, warnings = load_plain_table(args.data)       # the reader of `metapool pool` and the workflow
    except DataError as exc:
        return fail(exc)
    for w in warnings:
        print(f"metapool audit: note: {w}", file=sys.stderr)
    outcomes = list(dict.fromkeys(str(r["outcome"]) for r in rows if r.get("outcome")))
    if args.outcome is not None:
        if args.outcome not in outcomes:
            return fail(f"outcome {args.outcome!r} not in the table (have: {', '.join(outcomes) or 'none'})")
        rows = [r for r in rows if r.get("outcome") == args.outcome]
    elif len(outcomes) > 1:
        return fail(f"the table holds {len(outcomes)} outcomes ({', '.join(outcomes[:6])}"
                    f"{', ...' if len(outcomes) > 6 else ''}); choose the one the estimate pools with --outcome")
    cols = list(dict.fromkeys(c for r in rows for c in r if c not in ("line", "outcome")))
    table = {c: [r.get(c) for r in rows] for c in cols}
    try:
        res = audit(table, args.estimate, args.ci, decimals=args.decimals, family=args.family, p=args.pvalue,
                    level=args.level, subsets=args.subsets, missing=args.missing, max_n=args.max_n,
                    glmm=not args.no_glmm, add_to_all=args.add_to_all,
                    measures=None if not args.measure else [m.strip() for v in args.measure for m in v.split(",")
                                                            if m.strip()])
    except ValueError as exc:
        return fail(exc)
    if args.format == "json":
        sys.stdout.write(json.dumps(res.to_dict(), indent=2, allow_nan=False) + "\n")
    else:
        sys.stdout.write(res.to_markdown())
    return 0
