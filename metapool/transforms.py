"""Analysis-scale <-> reporting-scale transformations of effect-size measures.

Pooling happens on an *analysis* scale (logit, arcsine, Freeman-Tukey double arcsine, log ratio);
results are reported on the natural scale (proportion, ratio).  The functions here mirror R
metafor's ``transf.*`` functions (metafor 3.8-1), which the reference cases in
``tests/metafor_cases.json`` were computed with:

======== ============================= =====================================================
measure  analysis scale                back-transform (metafor)
======== ============================= =====================================================
PR       proportion                    identity
PLO      logit proportion              inverse logit (``transf.ilogit``)
PAS      arcsine square root           ``sin(x)^2`` clipped to [0, 1] (``transf.iarcsin``)
PFT      Freeman-Tukey double arcsine  Miller (1978) inverse, harmonic-mean n (``transf.ipft.hm``)
RR/OR    log ratio                     ``exp`` (also PETO: Peto log odds ratio)
others   as computed                   identity
======== ============================= =====================================================

The Freeman-Tukey transform uses metafor's half-sum scaling
``t = 0.5 * (asin(sqrt(x / (n + 1))) + asin(sqrt((x + 1) / (n + 1))))``; some software omits the
factor 1/2, so values on that scale are not interchangeable with other programs.
"""
from __future__ import annotations

import numpy as np

__all__ = ["back_transform", "forward_transform", "scale_label", "analysis_scale_label",
           "is_ratio", "is_proportion", "harmonic_mean_n", "PROPORTION_MEASURES", "RATIO_MEASURES"]

PROPORTION_MEASURES = ("PR", "PLO", "PAS", "PFT")
RATIO_MEASURES = ("RR", "OR", "PETO")

_SCALE_LABELS = {
    "PR": "proportion",
    "PLO": "proportion",
    "PAS": "proportion",
    "PFT": "proportion",
    "RR": "risk ratio",
    "OR": "odds ratio",
    "PETO": "odds ratio (Peto)",
    "RD": "risk difference",
    "MD": "mean difference",
    "SMD": "standardised mean difference (Hedges' g)",
    "MC": "mean change",
    "SMCR": "standardised mean change (raw-score standardisation, pre-treatment SD)",
    "SMCC": "standardised mean change (change-score standardisation)",
    "GEN": "effect size (as given)",
}

_ANALYSIS_LABELS = {
    "PR": "proportion",
    "PLO": "log odds (logit proportion)",
    "PAS": "arcsine square-root proportion",
    "PFT": "Freeman-Tukey double arcsine proportion",
    "RR": "log risk ratio",
    "OR": "log odds ratio",
    "PETO": "log odds ratio (Peto)",
}


def _norm(measure: str) -> str:
    if not isinstance(measure, str):
        raise TypeError(f"measure must be a string, got {type(measure).__name__}")
    return measure.upper()


def is_ratio(measure: str) -> bool:
    """True for ratio measures pooled on the log scale (RR, OR, PETO)."""
    return _norm(measure) in RATIO_MEASURES


def is_proportion(measure: str) -> bool:
    """True for single-arm proportion measures (PR, PLO, PAS, PFT)."""
    return _norm(measure) in PROPORTION_MEASURES


def scale_label(measure: str) -> str:
    """Human-readable name of the *reporting* scale of ``measure``.

    Examples: ``"proportion"`` (PR, PLO, PAS, PFT), ``"risk ratio"``, ``"odds ratio"``,
    ``"risk difference"``, ``"mean difference"``, ``"standardised mean difference (Hedges' g)"``.
    Unknown measures are returned unchanged.
    """
    m = _norm(measure)
    return _SCALE_LABELS.get(m, measure)


def analysis_scale_label(measure: str) -> str:
    """Human-readable name of the *analysis* scale (e.g. ``"log risk ratio"``, ``"logit ..."``)."""
    m = _norm(measure)
    return _ANALYSIS_LABELS.get(m, scale_label(measure))


def harmonic_mean_n(ni) -> float:
    """Harmonic mean of the sample sizes, ignoring NaN (metafor ``transf.ipft.hm``)."""
    n = np.asarray(ni, dtype=float).ravel()
    n = n[~np.isnan(n)]
    if n.size == 0:
        raise ValueError("harmonic mean of sample sizes: no non-missing sample size given")
    if np.any(n <= 0):
        raise ValueError(f"harmonic mean of sample sizes: sample sizes must be > 0, got {n[n <= 0]}")
    return float(1.0 / np.mean(1.0 / n))


def _pft(p, n):
    """metafor ``transf.pft``: Freeman-Tukey double arcsine of proportion ``p`` with size ``n``."""
    x = p * n
    return 0.5 * (np.arcsin(np.sqrt(x / (n + 1))) + np.arcsin(np.sqrt((x + 1) / (n + 1))))


def _ipft(t, n):
    """Miller (1978) inverse of the Freeman-Tukey double arcsine (metafor ``transf.ipft``).

    ``n`` is a scalar (or broadcastable array) sample size; values beyond the transform's range
    for that ``n`` map to 0 or 1, as in metafor.
    """
    t = np.asarray(t, dtype=float)
    # near t = 0 (and t = pi/2) 1/sin(2t) overflows or divides by zero and the square root gets
    # a negative argument; such t lie outside the transform's range for this n and are mapped to
    # 0 or 1 below, so these floating-point conditions are expected, not errors.
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        s = np.sin(2 * t)
        inner = 1 - (s + (s - 1 / s) / n) ** 2
        p = 0.5 * (1 - np.sign(np.cos(2 * t)) * np.sqrt(inner))
    p = np.where(np.isfinite(p), p, np.nan)
    with np.errstate(invalid="ignore"):
        p = np.where(t > _pft(1.0, n), 1.0, p)
        p = np.where(t < _pft(0.0, n), 0.0, p)
    return np.where(np.isnan(t), np.nan, p)


def back_transform(measure: str, x, ni=None) -> np.ndarray:
    """Transform values from the analysis scale of ``measure`` to its reporting scale.

    Parameters
    ----------
    measure : str
        Effect-size measure (PR, PLO, PAS, PFT, RR, OR, PETO, RD, MD, SMD, ...).
    x : array_like
        Values on the analysis scale (estimates, CI or PI bounds); NaN passes through.
    ni : array_like, optional
        Per-study sample sizes; required for PFT, whose inverse uses their harmonic mean.

    Returns
    -------
    ndarray
        Same shape as ``x``.

    Notes
    -----
    Validated against R metafor 3.8-1 ``transf.ilogit``, ``transf.iarcsin`` and
    ``transf.ipft.hm`` (the ``back`` values of ``tests/metafor_cases.json``) and against the
    worked example of Miller (1978), *The inverse of the Freeman-Tukey double arcsine
    transformation*, Am Stat 32:138.
    """
    m = _norm(measure)
    a = np.asarray(x, dtype=float)
    if m == "PLO":
        with np.errstate(over="ignore"):
            return 1.0 / (1.0 + np.exp(-a))
    if m == "PAS":
        p = np.sin(a) ** 2
        p = np.where(a < 0, 0.0, p)
        p = np.where(a > np.arcsin(1.0), 1.0, p)
        return np.where(np.isnan(a), np.nan, p)
    if m == "PFT":
        if ni is None:
            raise ValueError("back_transform('PFT', ...) needs the per-study sample sizes ni "
                             "(harmonic-mean inverse of Miller 1978)")
        return _ipft(a, harmonic_mean_n(ni))
    if m in RATIO_MEASURES:
        with np.errstate(over="ignore"):
            return np.exp(a)
    return a.copy()


def forward_transform(measure: str, p, ni=None) -> np.ndarray:
    """Transform reporting-scale values to the analysis scale of ``measure``.

    The inverse of :func:`back_transform`: PLO logit, PAS ``asin(sqrt(p))``, PFT metafor
    ``transf.pft`` with the harmonic mean of ``ni`` (so that ``back_transform`` recovers ``p``),
    RR/OR/PETO ``log``; identity otherwise.  Useful to place reporting-scale values (e.g. a
    published pooled proportion) on the analysis scale.
    """
    m = _norm(measure)
    a = np.asarray(p, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        if m == "PLO":
            return np.log(a / (1 - a))
        if m == "PAS":
            return np.arcsin(np.sqrt(a))
        if m == "PFT":
            if ni is None:
                raise ValueError("forward_transform('PFT', ...) needs the per-study sample sizes ni")
            return _pft(a, harmonic_mean_n(ni))
        if m in RATIO_MEASURES:
            return np.log(a)
    return a.copy()
