"""Small-study effects: Egger's and Peters' regression tests, Begg's rank test, trim-and-fill.

Every function follows R metafor 3.8-1 (``regtest``, ``ranktest``, ``trimfill``) and is validated
against it in ``tests/test_bias.py`` (reference cases in ``tests/metafor_cases_bias.json`` made by
``tests/make_bias_cases.R``, and the bias cases of ``tests/metafor_cases.json``).

With fewer than 10 studies these tests have little power to tell chance from asymmetry
(Sterne et al., BMJ 2011;343:d4002; Cochrane Handbook version 6.4, chapter 13); every result then
carries :data:`POWER_NOTE` in ``power_note`` so that reports do not imply a verdict.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from . import dist

from . import models
from .metareg import meta_regression
from .results import MetaResult, Record, array_field

__all__ = ["POWER_NOTE", "RegressionTest", "RankTest", "TrimFill", "regression_test", "egger_test",
           "peters_test", "begg_test", "trim_and_fill", "kendall_exact_cdf"]

POWER_NOTE = ("with fewer than 10 studies these tests have little power "
              "(Sterne et al. 2011; Cochrane Handbook 6.4, chapter 13)")
MIN_K_FOR_POWER = 10


def _power_note(k: int):
    return POWER_NOTE if k < MIN_K_FOR_POWER else None


def _as_arrays(yi, vi):
    y = np.asarray(yi, dtype=float)
    v = np.asarray(vi, dtype=float)
    if y.ndim != 1 or y.shape != v.shape:
        raise ValueError("yi and vi must be 1-d arrays of the same length")
    if not (np.isfinite(y).all() and np.isfinite(v).all() and (v > 0).all()):
        raise ValueError("yi must be finite and vi finite and positive")
    return y, v


# ---------------------------------------------------------------------------------------------
# regression tests (Egger, Peters)
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RegressionTest(Record):
    """A regression test for funnel-plot asymmetry (metafor ``regtest``).

    Attributes
    ----------
    name : str
        ``egger`` (predictor: standard error) or ``peters`` (predictor: 1/n).
    model : str
        ``lm``: weighted least squares with a multiplicative dispersion, t(k-2) test (the
        classical Egger test); ``rma``: meta-regression with the fit's tau² estimator.
    predictor : str
        ``sei`` or ``ninv``.
    method : str
        tau² estimator of the meta-regression (``model="rma"``); ``WLS`` for ``model="lm"``.
    k : int
    slope, slope_se : float
        Coefficient of the predictor (the asymmetry) and its standard error.
    stat, pval, df : float
        Test of the slope: t with ``df = k - 2`` under ``lm`` (and under Knapp-Hartung), z
        under ``rma`` with ``test="z"`` (``df`` NaN).
    estimate, ci_lb, ci_ub : float
        Intercept: the limit estimate as the predictor goes to 0 (a study of infinite size).
    tau2 : float
        Residual tau² of the meta-regression (NaN under ``lm``).
    level : float
    power_note : str or None
        :data:`POWER_NOTE` when k < 10.
    """

    name: str
    model: str
    predictor: str
    method: str
    k: int
    slope: float
    slope_se: float
    stat: float
    pval: float
    df: float
    estimate: float
    ci_lb: float
    ci_ub: float
    tau2: float = math.nan
    level: float = 0.95
    power_note: str | None = None
    notes: tuple = ()


def _wls_lm(y, X, w, level):
    """Weighted lm with estimated dispersion (R's ``lm(y ~ X - 1, weights = w)`` + summary)."""
    k, p = X.shape
    XtW = X.T * w
    A_inv = np.linalg.inv(XtW @ X)
    beta = A_inv @ (XtW @ y)
    e = y - X @ beta
    df = k - p
    sigma2 = float(np.sum(w * e**2) / df)
    se = np.sqrt(np.diag(A_inv) * sigma2)
    crit = dist.t_ppf(0.5 + level / 2, df)
    return beta, se, float(df), crit


def regression_test(yi, vi, *, predictor="sei", ni=None, model="lm", method="REML", test="z",
                    level=0.95, name=None) -> RegressionTest:
    """Regression test for funnel-plot asymmetry, as metafor's ``regtest``.

    Parameters
    ----------
    yi, vi : array_like
        Effect sizes and sampling variances.
    predictor : {"sei", "vi", "ninv", "sqrtninv"}
        Predictor of the effect size: standard error (Egger), variance, 1/n (Peters), 1/sqrt(n).
    ni : array_like, optional
        Total sample size per study (needed for ``ninv`` and ``sqrtninv``).
    model : {"lm", "rma"}
        ``lm``: weighted regression with weights 1/vi and a free dispersion, t test with k-2 df
        (Egger et al. 1997); ``rma``: mixed-effects meta-regression with tau² by ``method`` and
        inference by ``test`` (metafor's default).
    method : str
        tau² estimator for ``model="rma"`` (``FE`` for a fixed-effects meta-regression).
    test : {"z", "knha"}
        Inference for ``model="rma"``.
    level : float
        Confidence level of the limit estimate's CI.
    name : str, optional
        Label stored in the result (default ``egger`` for ``sei``, ``peters`` for ``ninv``).

    Returns
    -------
    RegressionTest

    Notes
    -----
    Validated against R metafor 3.8-1 ``regtest(x, model, predictor)`` (``tests/test_bias.py``).
    """
    y, v = _as_arrays(yi, vi)
    k = y.size
    preds = {"sei": lambda: np.sqrt(v), "vi": lambda: v}
    if predictor in ("ninv", "sqrtninv"):
        if ni is None:
            raise ValueError(f"predictor {predictor!r} needs the total sample size of each study (ni)")
        n = np.asarray(ni, dtype=float)
        if n.shape != y.shape or not (np.isfinite(n).all() and (n > 0).all()):
            raise ValueError("ni must be positive, finite and one per study")
        preds.update(ninv=lambda: 1 / n, sqrtninv=lambda: 1 / np.sqrt(n))
    if predictor not in preds:
        raise ValueError(f"unknown predictor {predictor!r}; choose sei, vi, ninv or sqrtninv")
    if model not in ("lm", "rma"):
        raise ValueError(f"model must be 'lm' or 'rma', not {model!r}")
    if k < 3:
        raise ValueError(f"k = {k}: a regression test needs at least 3 studies")
    x = preds[predictor]()
    if np.ptp(x) <= 1e-12 * np.abs(x).max():
        raise ValueError(f"the predictor {predictor} is the same in every study: the regression "
                         "test is not defined")
    X = np.column_stack([np.ones(k), x])
    notes = []
    if model == "lm":
        beta, se, df, crit = _wls_lm(y, X, 1 / v, level)
        stat = beta[1] / se[1]
        pval = float(2 * dist.t_sf(abs(stat), df))
        est, lb, ub, tau2, meth = beta[0], beta[0] - crit * se[0], beta[0] + crit * se[0], math.nan, "WLS"
        slope, slope_se = beta[1], se[1]
    else:
        fit = meta_regression(y, v, X=X, coef_names=("intrcpt", predictor), method=method,
                              test=test, level=level)
        slope, slope_se, stat, pval = fit.estimate[1], fit.se[1], fit.stat[1], fit.pval[1]
        est, lb, ub, tau2, df, meth = (fit.estimate[0], fit.ci_lb[0], fit.ci_ub[0], fit.tau2, fit.df,
                                       fit.method)
        notes.extend(fit.notes)
    if name is None:
        name = {"sei": "egger", "ninv": "peters"}.get(predictor, f"regression on {predictor}")
    return RegressionTest(name=name, model=model, predictor=predictor, method=meth, k=k,
                          slope=float(slope), slope_se=float(slope_se), stat=float(stat),
                          pval=float(pval), df=float(df), estimate=float(est), ci_lb=float(lb),
                          ci_ub=float(ub), tau2=float(tau2), level=level,
                          power_note=_power_note(k), notes=tuple(notes))


def egger_test(yi, vi, model="lm", *, method="REML", test="z", level=0.95) -> RegressionTest:
    """Egger's regression test (effect size on its standard error, weights 1/vi).

    ``model="lm"`` is the classical test of Egger et al. (1997), a weighted regression with a
    free dispersion parameter and a t(k-2) test of the slope; ``model="rma"`` is metafor's
    default, a meta-regression on the standard error with tau² by ``method``.

    Validated against R metafor 3.8-1 ``regtest(fit, model = "lm")`` and ``regtest(fit)``
    (see :func:`regression_test`).
    """
    return regression_test(yi, vi, predictor="sei", model=model, method=method, test=test,
                           level=level, name="egger")


def peters_test(yi, vi, ni, model="lm", *, method="REML", test="z", level=0.95) -> RegressionTest:
    """Peters' test for binary outcomes: the (log) effect size regressed on 1/n.

    ``ni`` is the total sample size of each study (both arms).  Peters et al. (2006) proposed the
    test because, for odds ratios, the standard error is correlated with the log odds ratio
    itself, which inflates the type I error of Egger's test.

    Validated against R metafor 3.8-1 ``regtest(fit, model, predictor = "ninv")``
    (see :func:`regression_test`).
    """
    return regression_test(yi, vi, predictor="ninv", ni=ni, model=model, method=method, test=test,
                           level=level, name="peters")


# ---------------------------------------------------------------------------------------------
# Begg's rank correlation test
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RankTest(Record):
    """Begg and Mazumdar's rank correlation test (metafor ``ranktest``).

    Attributes
    ----------
    k : int
    tau : float
        Kendall's tau (tau-b) between the standardised effect sizes and their variances.
    stat : float
        Number of concordant pairs T (exact test) or the normal z statistic (with ties).
    pval : float
        Two-sided p-value: exact permutation distribution when there are no ties (R's
        ``cor.test(exact = TRUE)``), normal approximation with tie correction otherwise.
    exact : bool
    power_note : str or None
    """

    k: int
    tau: float
    stat: float
    pval: float
    exact: bool
    power_note: str | None = None
    notes: tuple = ()


def kendall_exact_cdf(q: int, n: int) -> float:
    """P(T <= q) for the number T of concordant pairs of n untied pairs under independence.

    T has the distribution of the number of inversions of a random permutation (Mahonian
    numbers), built by convolving discrete uniforms: O(n^3) operations, vectorised.
    """
    p = np.ones(1)
    for m in range(2, n + 1):
        # add an element: the inversion count increases by 0..m-1 with equal probability
        c = np.concatenate([[0.0], np.cumsum(p)])
        new_len = p.size + m - 1
        idx = np.arange(new_len)
        hi = np.minimum(idx + 1, p.size)
        lo = np.maximum(idx - m + 1, 0)
        p = (c[hi] - c[lo]) / m
    if q < 0:
        return 0.0
    return float(min(1.0, p[: q + 1].sum()))


def _kendall_tau_b(x, y):
    dx = np.sign(x[:, None] - x[None, :])
    dy = np.sign(y[:, None] - y[None, :])
    iu = np.triu_indices(x.size, 1)
    s = float(np.sum(dx[iu] * dy[iu]))
    n0 = x.size * (x.size - 1) / 2
    n1 = float(np.sum(dx[iu] == 0))
    n2 = float(np.sum(dy[iu] == 0))
    return s / math.sqrt((n0 - n1) * (n0 - n2))


def _tie_counts(a):
    _, counts = np.unique(a, return_counts=True)
    return counts[counts > 1].astype(float)


def begg_test(yi, vi) -> RankTest:
    """Begg and Mazumdar's (1994) rank correlation test for funnel-plot asymmetry.

    The effect sizes are standardised as ``(y_i - mu_FE) / sqrt(v_i - 1/sum(1/v))`` and
    correlated with their variances by Kendall's tau.  The p-value is exact (the permutation
    distribution of the number of concordant pairs) when neither variable has ties, and from the
    normal approximation with tie-corrected variance (no continuity correction) otherwise, as
    R's ``cor.test(method = "kendall", exact = TRUE)`` called by metafor.

    Validated against R metafor 3.8-1 ``ranktest(fit)`` (``tests/test_bias.py``).
    """
    y, v = _as_arrays(yi, vi)
    k = y.size
    if k < 3:
        raise ValueError(f"k = {k}: the rank correlation test needs at least 3 studies")
    w = 1 / v
    mu = np.sum(w * y) / w.sum()
    ystar = (y - mu) / np.sqrt(v - 1 / w.sum())
    for name, a in (("variance", v), ("standardised effect size", ystar)):
        if np.unique(a).size == 1:
            # Kendall's tau is 0/0; metafor's ranktest returns tau and p as NA here
            raise ValueError(f"every study has the same {name}, so Kendall's tau is undefined "
                             "(metafor returns NA)")
    tau = _kendall_tau_b(ystar, v)
    ties = min(np.unique(ystar).size, np.unique(v).size) < k
    notes = []
    if not ties:
        q = int(round((tau + 1) * k * (k - 1) / 4))
        if q > k * (k - 1) / 4:
            p = 1 - kendall_exact_cdf(q - 1, k)
        else:
            p = kendall_exact_cdf(q, k)
        return RankTest(k=k, tau=tau, stat=float(q), pval=min(2 * p, 1.0), exact=True,
                        power_note=_power_note(k))
    xt, yt = _tie_counts(ystar), _tie_counts(v)
    t0 = k * (k - 1) / 2
    s = tau * math.sqrt((t0 - np.sum(xt * (xt - 1)) / 2) * (t0 - np.sum(yt * (yt - 1)) / 2))
    v0 = k * (k - 1) * (2 * k + 5)
    vt = np.sum(xt * (xt - 1) * (2 * xt + 5))
    vu = np.sum(yt * (yt - 1) * (2 * yt + 5))
    v1 = np.sum(xt * (xt - 1)) * np.sum(yt * (yt - 1))
    v2 = np.sum(xt * (xt - 1) * (xt - 2)) * np.sum(yt * (yt - 1) * (yt - 2))
    var_s = (v0 - vt - vu) / 18 + v1 / (2 * k * (k - 1)) + v2 / (9 * k * (k - 1) * (k - 2))
    z = s / math.sqrt(var_s)
    notes.append("ties in the data: normal approximation with tie correction instead of the exact test")
    return RankTest(k=k, tau=tau, stat=float(z), pval=float(2 * dist.norm_sf(abs(z))), exact=False,
                    power_note=_power_note(k), notes=tuple(notes))


# ---------------------------------------------------------------------------------------------
# trim and fill
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrimFill(Record):
    """Result of Duval and Tweedie's trim-and-fill method (metafor ``trimfill``).

    Attributes
    ----------
    estimator : str
        ``L0`` or ``R0``.
    side : str
        Side on which studies are missing (``left`` or ``right``).
    side_chosen : str
        ``auto`` when the side came from the sign of Egger's slope (as metafor), else ``given``.
    k0 : int
        Number of imputed (filled) studies.
    se_k0 : float
        Standard error of k0 (NaN where metafor's variance formula is negative).
    p_k0 : float
        For R0, the p-value of the test k0 = 0 (``0.5^(k0 + 1)``); NaN for L0.
    method : str
        Estimator of the fits (``FE`` or a tau² method).
    yi, vi : ndarray
        Observed studies followed by the filled ones.
    filled : ndarray of bool
        True for the filled studies.
    fit : MetaResult
        The model refitted to observed + filled studies (the observed fit when k0 = 0).
    power_note : str or None
    """

    estimator: str
    side: str
    side_chosen: str
    k0: int
    se_k0: float
    p_k0: float
    method: str
    yi: np.ndarray = array_field()
    vi: np.ndarray = array_field()
    filled: np.ndarray = array_field(bool)
    fit: MetaResult = None
    power_note: str | None = None
    notes: tuple = field(default=())



def _pooled_estimate(y, v, method):
    """Intercept-only pooled estimate (models.fit_batch on one row)."""
    return float(models.fit_batch(y[None, :], v[None, :], method=method).estimate[0])


def _egger_side(y, v, method):
    """metafor's automatic side: 'right' if the slope of y on sqrt(v) is negative, else 'left'."""
    X = np.column_stack([np.ones(y.size), np.sqrt(v)])
    slope = meta_regression(y, v, X=X, coef_names=("intrcpt", "sei"), method=method).estimate[1]
    return "right" if slope < 0 else "left"


def _k0_estimate(yc, estimator, k):
    """k0 and its standard error from the centred, sorted effect sizes (Duval & Tweedie 2000)."""
    ranks = np.empty(k)
    ranks[np.argsort(np.abs(yc), kind="stable")] = np.arange(1, k + 1)   # ties: first
    signed = np.sign(yc) * ranks
    if estimator == "R0":
        neg = -signed[signed < 0]
        k0 = (k - (neg.max() if neg.size else 0.0)) - 1
        se = math.sqrt(2 * max(0.0, k0) + 2)
    else:
        sr = signed[signed > 0].sum()
        k0 = (4 * sr - k * (k + 1)) / (2 * k - 1)
        var_sr = (k * (k + 1) * (2 * k + 1) + 10 * k0**3 + 27 * k0**2 + 17 * k0 - 18 * k * k0**2
                  - 18 * k * k0 + 6 * k**2 * k0) / 24
        se = 4 * math.sqrt(var_sr) / (2 * k - 1) if var_sr >= 0 else math.nan
    return max(0, int(np.round(k0))), (max(0.0, se) if not math.isnan(se) else math.nan)


def trim_and_fill(yi, vi, *, estimator="L0", side=None, method="FE", test="z", level=0.95,
                  measure="GEN", study=None, ni=None, maxiter=100) -> TrimFill:
    """Duval and Tweedie's (2000) trim-and-fill method, as metafor's ``trimfill``.

    Parameters
    ----------
    yi, vi : array_like
        Effect sizes and sampling variances.
    estimator : {"L0", "R0"}
        Estimator of the number of missing studies.
    side : {None, "left", "right"}
        Side of the funnel plot on which studies are missing; None chooses it as metafor does:
        ``right`` when the slope of a meta-regression of the effects on their standard errors
        (with the same tau² estimator) is negative, ``left`` otherwise.
    method : str
        ``FE`` or a tau² estimator, used for the iterations and for the final refit.
    test, level
        Inference of the refitted model.
    measure, study, ni
        Passed to :func:`metapool.models.fit` for the refitted model; filled studies are
        labelled ``Filled 1``, ``Filled 2``, ... and take the n of the study they mirror.
    maxiter : int
        Maximum number of trim-and-fill iterations.

    Returns
    -------
    TrimFill

    Notes
    -----
    The studies are sorted (mirrored first if ``side="right"``); the k0 most extreme ones are
    trimmed, the model refitted, k0 re-estimated from the ranks of the centred effects, until
    k0 no longer changes.  The trimmed studies are then mirrored around the last trimmed
    estimate and the model refitted to all.  Validated against R metafor 3.8-1
    ``trimfill(fit, estimator, side)`` on FE and REML fits (``tests/test_bias.py``).
    """
    y0, v0 = _as_arrays(yi, vi)
    k = y0.size
    if estimator not in ("L0", "R0"):
        raise ValueError(f"estimator must be 'L0' or 'R0', not {estimator!r}")
    if side not in (None, "left", "right"):
        raise ValueError(f"side must be None, 'left' or 'right', not {side!r}")
    if k < 3:
        raise ValueError(f"k = {k}: trim-and-fill needs at least 3 studies")
    study = tuple(str(s) for s in study) if study is not None else tuple(str(i + 1) for i in range(k))
    n0 = None if ni is None else np.asarray(ni, dtype=float)
    notes = []
    chosen = "given" if side is not None else "auto"
    if side is None:
        side = _egger_side(y0, v0, method)
    sign = -1.0 if side == "right" else 1.0
    order = np.argsort(sign * y0, kind="stable")
    y, v = sign * y0[order], v0[order]
    k0, k0_prev, it = 0, -1, 0
    beta = math.nan
    while k0 != k0_prev:
        k0_prev = k0
        it += 1
        if it > maxiter:
            raise RuntimeError(f"trim-and-fill did not converge in {maxiter} iterations")
        beta = _pooled_estimate(y[: k - k0], v[: k - k0], method)
        k0, se_k0 = _k0_estimate(y - beta, estimator, k)
        if estimator == "R0" and not np.any(y - beta < 0):
            notes.append("R0: every study lies on one side of the estimate")
        k0 = min(k0, k - 1)
    p_k0 = 0.5 ** (k0 + 1) if estimator == "R0" else math.nan
    if k0 > 0:
        mirrored = sign * (2 * beta - y[k - k0:])
        y_all = np.concatenate([y0, mirrored])
        v_all = np.concatenate([v0, v[k - k0:]])
        ni_all = None if n0 is None else np.concatenate([n0, n0[order][k - k0:]])
        labels = study + tuple(f"Filled {i + 1}" for i in range(k0))
    else:
        y_all, v_all, ni_all, labels = y0, v0, n0, study
    fit = models.fit(y_all, v_all, method=method, test=test, level=level, measure=measure,
                     study=labels, ni=ni_all)
    filled = np.r_[np.zeros(k, bool), np.ones(k0, bool)]
    return TrimFill(estimator=estimator, side=side, side_chosen=chosen, k0=int(k0), se_k0=se_k0,
                    p_k0=p_k0, method=fit.method, yi=y_all, vi=v_all, filled=filled, fit=fit,
                    power_note=_power_note(k), notes=tuple(notes))
