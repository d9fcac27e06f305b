"""Fixed- and random-effects inverse-variance pooling (R metafor ``rma.uni`` conventions).

:func:`fit` fits one meta-analysis and returns a :class:`metapool.results.MetaResult`;
:func:`fit_batch` fits B meta-analyses given as ``(B, k)`` arrays in one vectorised call
(leave-one-out, cumulative meta-analysis, GOSH, simulations).  Both go through the same
vectorised core (:func:`_pool_core`), so they cannot disagree.

Conventions (metafor 3.8-1, validated in tests/test_metafor_conformance.py):

* ``method="FE"``: inverse-variance fixed effect, tau² = 0; I² = max(0, (Q - df)/Q) and
  H² = Q/df; no prediction interval (NaN).
* random effects: weights ``1/(v_i + tau²)`` with tau² from :mod:`metapool.tau2`;
  I² = 100 tau²/(tau² + s²) and H² = 1 + tau²/s² with the typical within-study variance
  ``s² = (k-1) / (sum w - sum w² / sum w)``, ``w = 1/v`` (Higgins & Thompson 2002).
* ``test="knha"``: Hartung-Knapp-Sidik-Jonkman, the variance of the estimate multiplied by
  ``sum w (y - mu)² / (k-1)`` (not truncated at 1), t distribution with k-1 df.
* prediction interval ``mu ± crit sqrt(se² + tau²)`` with the normal quantile under ``z``
  and t(k-1) under ``knha`` (metafor), or t(k-2) with ``pi_method="higgins"``
  (Higgins, Thompson & Spiegelhalter 2009).
* Q-profile CIs for tau², I², H² (Viechtbauer 2007) for random-effects fits with k >= 3,
  bounds beyond metafor's search limit ``max(100, 10 tau²)`` reported as that limit (as
  metafor; the uncapped bound is given in the notes).
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, fields

import numpy as np
from scipy import special

from . import tau2 as _tau2
from .results import EffectSizes, MetaResult, NumberedStudies

FIXED = ("FE", "EE", "CE")
TESTS = {"z": "z", "knha": "knha", "hksj": "knha", "hk": "knha"}
PI_METHODS = ("metafor", "higgins")


def _norm_method(method):
    m = str(method).upper()
    if m in FIXED:
        return "FE"
    if m not in _tau2.METHODS:
        raise ValueError(f"unknown method {method!r}; choose FE or one of {', '.join(_tau2.METHODS)}")
    return m


def _norm_test(test):
    t = TESTS.get(str(test).lower())
    if t is None:
        raise ValueError(f"unknown test {test!r}; choose 'z' or 'knha' (alias 'hksj')")
    return t


def _check_level(level):
    level = float(level)
    if level > 1:  # metafor accepts 95 for 0.95
        level /= 100.0
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    return level


# The scipy.special functions that scipy.stats' norm, t and chi2 call for these quantities
# (same numbers, including NaN for NaN df); calling them directly saves the distribution
# machinery's per-call overhead (about 0.1 ms per call, several calls per fit).
def _norm_isf(q):
    return -special.ndtri(q)


def _norm_sf(x):
    return special.ndtr(-x)


def _t_isf(q, df):
    return -special.stdtrit(df, q)


def _t_sf(x, df):
    return special.stdtr(df, -x)


def _chi2_sf(x, df):
    return special.chdtrc(df, x)


def _pvalues(stat, df, test):
    """Two-sided p-values of ``stat``: t(df) under knha, else normal (as metafor)."""
    with np.errstate(invalid="ignore"):
        if test == "knha":
            return 2 * _t_sf(np.abs(stat), df)
        return 2 * _norm_sf(np.abs(stat))


def _q_pvalues(Q, k):
    """p-values of the Q test, chi2(k - 1); 1 where k = 1."""
    return np.where(k > 1, _chi2_sf(Q, np.maximum(k - 1, 1).astype(float)), 1.0)


def _t_isf_rows(q, df):
    """``_t_isf(q, df)`` for a (B,) df array with few distinct values: one call per value."""
    if df.size <= 16:
        return _t_isf(q, df)
    uniq, inv = np.unique(df, return_inverse=True)  # NaN df (k = 1) sort last, one entry each
    return _t_isf(q, uniq)[inv]


#: BatchFit's arrays, in the column order of :meth:`BatchFit.to_frame`
BATCH_COLUMNS = ("k", "estimate", "se", "stat", "pval", "ci_lb", "ci_ub", "pi_lb", "pi_ub", "tau2",
                 "Q", "Q_pval", "I2", "H2", "df")


@dataclass(frozen=True)
class BatchFit:
    """Results of B meta-analyses fitted at once by :func:`fit_batch` (arrays of shape (B,)).

    Attributes mirror :class:`metapool.results.MetaResult`: ``k, estimate, se, stat, pval,
    ci_lb, ci_ub, pi_lb, pi_ub, tau2, Q, Q_pval, I2, H2`` plus ``df`` (t df, NaN under z),
    ``method``, ``test`` and ``level``.  ``pval`` and ``Q_pval`` (the costly distribution
    functions) are computed on first access; all arrays are read-only.
    """

    k: np.ndarray
    estimate: np.ndarray
    se: np.ndarray
    stat: np.ndarray
    ci_lb: np.ndarray
    ci_ub: np.ndarray
    pi_lb: np.ndarray
    pi_ub: np.ndarray
    tau2: np.ndarray
    Q: np.ndarray
    I2: np.ndarray
    H2: np.ndarray
    df: np.ndarray
    method: str = "REML"
    test: str = "z"
    level: float = 0.95

    def __post_init__(self):
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, np.ndarray):
                v = v.copy()
                v.setflags(write=False)
                object.__setattr__(self, f.name, v)

    @functools.cached_property
    def pval(self) -> np.ndarray:
        """Two-sided p-values of the estimates (z, or t(k-1) under knha)."""
        p = _pvalues(self.stat, self.df, self.test)
        p.setflags(write=False)
        return p

    @functools.cached_property
    def Q_pval(self) -> np.ndarray:
        """p-values of the test of heterogeneity (chi2 with k - 1 df; 1 where k = 1)."""
        p = _q_pvalues(self.Q, self.k)
        p.setflags(write=False)
        return p

    def __len__(self):
        return int(self.k.shape[0])

    def to_frame(self):
        """One row per meta-analysis (pandas DataFrame)."""
        import pandas as pd

        return pd.DataFrame({name: getattr(self, name) for name in BATCH_COLUMNS})


def _pool_core(d, tau2, *, fixed, test, level, pi_method="metafor", weights=False):
    """Vectorised pooling of a :class:`metapool.tau2._Data` given tau2 (B,).

    Returns a dict of (B,) arrays (no p-values; see :func:`_pvalues`, :func:`_q_pvalues`)
    and, with ``weights=True`` and B = 1, the percentage weights of the studies.
    """
    k = d.n
    dfk = (k - 1).astype(float)
    Q, sw0, sw02, _ = _tau2._fe(d)  # heterogeneity (fixed-effect weights)
    mu, sw = _tau2._wmean_pw(d, tau2)
    vb = 1.0 / sw
    with np.errstate(invalid="ignore", divide="ignore"):
        if test == "knha":
            if fixed:
                rss = Q
            else:
                swe, swzz = _tau2._moments(d, tau2, mu, zz=True, w2=False)[1:]
                rss = swzz - swe * swe / sw
            s2w = np.where(rss <= np.finfo(float).eps, 0.0, rss / dfk)
            vb = vb * s2w
            df = np.where(dfk > 0, dfk, np.nan)
            crit = _t_isf_rows((1 - level) / 2, df)
        else:
            df = np.full(k.shape, np.nan)
            crit = np.full(k.shape, _norm_isf((1 - level) / 2))
        se = np.sqrt(vb)
        stat = mu / se
        ci_lb, ci_ub = mu - crit * se, mu + crit * se
        Q = np.where(k > 1, np.maximum(0.0, Q), 0.0)
        trp = sw0 - sw02 / sw0
        s2 = dfk / trp  # typical within-study variance
        if fixed:
            I2 = np.where(Q > 0, np.maximum(0.0, 100 * (Q - dfk) / Q), 0.0)
            H2 = Q / dfk
            pi_lb = pi_ub = np.full(k.shape, np.nan)
        else:
            I2 = 100 * tau2 / (s2 + tau2)
            H2 = tau2 / s2 + 1
            if pi_method == "higgins":
                pcrit = _t_isf_rows((1 - level) / 2, np.where(k > 2, k - 2, np.nan).astype(float))
            else:
                pcrit = crit
            half = pcrit * np.sqrt(vb + tau2)
            pi_lb, pi_ub = mu - half, mu + half
        I2 = np.where(k > 1, I2, 0.0)
        H2 = np.where(k > 1, H2, 1.0)
    out = dict(k=k, estimate=mu, se=se, stat=stat, ci_lb=ci_lb, ci_ub=ci_ub, pi_lb=pi_lb, pi_ub=pi_ub,
               tau2=tau2, Q=Q, I2=I2, H2=H2, df=df, s2=s2)
    if weights:
        w = 1.0 / (d.V[:, 0] + tau2[0])
        w *= 100.0
        w /= sw[0]
        out["weights"] = w
    return out


def fit_batch(Y, V, mask=None, *, method="REML", test="z", level=0.95, pi_method="metafor"):
    """Fit B meta-analyses at once.

    Parameters
    ----------
    Y, V : array_like, shape (B, k)
        Effect sizes and sampling variances (entries where ``mask`` is False are ignored).
    mask : array_like of bool, shape (B, k), optional
        Which entries are studies; all True by default (ragged k otherwise).
    method, test, level, pi_method
        As in :func:`fit`.

    Returns
    -------
    BatchFit
        Arrays of shape (B,); row ``b`` equals ``fit(Y[b][mask[b]], V[b][mask[b]], ...)``.

    Notes
    -----
    Same formulas as :func:`fit` (validated against R metafor 3.8-1 ``rma.uni``); tau² by
    :func:`metapool.tau2.estimate_tau2_batch`, iterating all rows together.
    """
    method, test, level = _norm_method(method), _norm_test(test), _check_level(level)
    if pi_method not in PI_METHODS:
        raise ValueError(f"pi_method must be one of {PI_METHODS}, got {pi_method!r}")
    d = _tau2._prep(Y, V, mask)
    if method == "FE":
        tau2 = np.zeros(d.B)
    else:
        tau2, _ = _tau2._tau2_core(d, method)
    r = _pool_core(d, tau2, fixed=method == "FE", test=test, level=level, pi_method=pi_method)
    names = [f.name for f in fields(BatchFit) if f.name not in ("method", "test", "level")]
    return BatchFit(**{n: r[n] for n in names}, method=method, test=test, level=level)


def _inputs(effects_or_yi, vi, measure, study, ni):
    if isinstance(effects_or_yi, EffectSizes):
        es = effects_or_yi
        return (es.yi, es.vi, measure or es.measure, es.study if study is None else study,
                es.ni if ni is None else ni, es.notes)
    if vi is None:
        raise ValueError("fit() needs vi when given plain effect sizes (or pass an EffectSizes)")
    yi = np.asarray(effects_or_yi, dtype=float).ravel()
    vi = np.asarray(vi, dtype=float).ravel()
    if yi.shape != vi.shape:
        raise ValueError(f"yi and vi differ in length: {yi.size} vs {vi.size}")
    if study is None:
        study = NumberedStudies(yi.size)           # "1".."k", built only if read
    return yi, vi, measure or "GEN", study, ni, ()


def fit(effects_or_yi, vi=None, *, method="REML", test="z", level=0.95, pi_method="metafor",
        measure=None, study=None, ni=None) -> MetaResult:
    """Fit a fixed-effect or random-effects meta-analysis.

    Parameters
    ----------
    effects_or_yi : EffectSizes or array_like
        Per-study effect sizes (an :class:`~metapool.results.EffectSizes`, or ``yi``).
    vi : array_like, optional
        Sampling variances (required with plain ``yi``).
    method : str
        ``FE`` (inverse-variance fixed effect) or a tau² estimator: ``REML`` (default),
        ``DL``, ``ML``, ``PM``, ``HE``, ``SJ``, ``EB``, ``HS``.
    test : str
        ``z`` (normal) or ``knha`` (Hartung-Knapp-Sidik-Jonkman, t(k-1); alias ``hksj``).
    level : float
        Confidence level for CIs and the prediction interval.
    pi_method : str
        ``metafor`` (normal quantile under z, t(k-1) under knha) or ``higgins`` (t(k-2)).
    measure, study, ni
        Effect measure label, study labels and total sample sizes (used for back-transforms
        such as PFT); taken from the EffectSizes when given.

    Returns
    -------
    MetaResult
        Analysis-scale results; weights in percent.

    Notes
    -----
    Validated against R metafor 3.8-1 ``rma(yi, vi, method=, test=)``, ``predict`` and
    ``confint`` on the reference cases in tests/metafor_cases.json.
    """
    yi, vi, measure, study, ni, in_notes = _inputs(effects_or_yi, vi, measure, study, ni)
    method, test, level = _norm_method(method), _norm_test(test), _check_level(level)
    if pi_method not in PI_METHODS:
        raise ValueError(f"pi_method must be one of {PI_METHODS}, got {pi_method!r}")
    if len(study) != yi.size:
        raise ValueError(f"{len(study)} study labels for {yi.size} effect sizes")
    d = _tau2._prep(yi[None], vi[None])
    k = yi.size
    notes = []
    if method == "FE":
        tau2 = 0.0
        if test == "knha":
            notes.append("Knapp-Hartung adjustment applied to a fixed-effect model (as metafor)")
    else:
        tau2, tnotes = _tau2._estimate_one(d, method)
        notes.extend(tnotes)
    t2 = np.array([tau2])
    r = _pool_core(d, t2, fixed=method == "FE", test=test, level=level, pi_method=pi_method,
                   weights=True)
    g = {key: float(val[0]) for key, val in r.items() if key != "weights"}
    g["pval"] = float(_pvalues(r["stat"], r["df"], test)[0])
    g["Q_pval"] = float(_q_pvalues(r["Q"], r["k"])[0])
    het = dict(tau2_ci_lb=math.nan, tau2_ci_ub=math.nan, I2_ci_lb=math.nan, I2_ci_ub=math.nan,
               H2_ci_lb=math.nan, H2_ci_ub=math.nan)
    if method != "FE" and k >= 3:
        lb, ub = _tau2._qprofile_core(d, level, 1e-12, 200, start=t2, mu=r["estimate"])
        cap = float(_tau2.metafor_tau2_max(tau2))
        if ub[0] > cap:
            notes.append(f"Q-profile upper bound for tau2 reported as metafor's search limit "
                         f"tau2.max = max(100, 10 tau2) = {cap:.6g}; the uncapped bound is {ub[0]:.6g}")
            lb, ub = np.minimum(lb, cap), np.minimum(ub, cap)
        s2 = g["s2"]
        het.update(tau2_ci_lb=float(lb[0]), tau2_ci_ub=float(ub[0]),
                   I2_ci_lb=float(100 * lb[0] / (s2 + lb[0])), I2_ci_ub=float(100 * ub[0] / (s2 + ub[0])),
                   H2_ci_lb=float(lb[0] / s2 + 1), H2_ci_ub=float(ub[0] / s2 + 1))
    elif method != "FE":
        notes.append(f"k = {k}: no Q-profile CI for tau2 (needs k >= 3)")
    if k == 1:
        notes.append("k = 1: the pooled estimate is the single study")
    if pi_method == "higgins" and method != "FE":
        notes.append("prediction interval with t(k-2) (Higgins, Thompson & Spiegelhalter 2009)")
    ratio = float(vi.max() / vi.min())
    if ratio >= 1e7:
        notes.append(f"ratio of largest to smallest sampling variance is {ratio:.3g}; "
                     "results may be numerically unstable")
    return MetaResult(
        measure=measure, method=method, test=test, level=level, yi=yi, vi=vi,
        study=study if isinstance(study, NumberedStudies) else tuple(study),
        weights=r["weights"], k=k, estimate=g["estimate"], se=g["se"], stat=g["stat"],
        pval=g["pval"], ci_lb=g["ci_lb"], ci_ub=g["ci_ub"], pi_lb=g["pi_lb"], pi_ub=g["pi_ub"],
        df=g["df"], tau2=g["tau2"], I2=g["I2"], H2=g["H2"], Q=g["Q"], Q_df=float(k - 1),
        Q_pval=g["Q_pval"], pi_method=pi_method, ni=None if ni is None else np.asarray(ni, float),
        notes=tuple(in_notes) + tuple(notes), **het)
