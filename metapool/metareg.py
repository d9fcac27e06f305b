"""Mixed-effects meta-regression (weighted least squares with residual heterogeneity).

The model is ``yi = X beta + u_i + e_i`` with ``e_i ~ N(0, vi)`` and ``u_i ~ N(0, tau2)``; tau² is
the *residual* between-study variance left after the moderators, estimated by the method of
metafor's ``rma.uni(mods = ...)`` (FE, DL, HE, HS, SJ, ML, REML, EB, PM).  Inference on the
coefficients is normal (``test="z"``) or Knapp-Hartung t(k-p) with the omnibus test as F
(``test="knha"``).  Everything is computed with k x p matrices (p small); no k x k matrix is formed.

Validated against R metafor 3.8-1 ``rma(yi, vi, mods = ~ ..., method, test)`` in
``tests/metafor_cases_analyses.json`` (``analysis == "metareg"``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from . import dist

from .results import Record, array_field

METHODS = ("FE", "EE", "DL", "HE", "HS", "SJ", "ML", "REML", "EB", "PM")
_EPS = np.finfo(float).eps


# ---------------------------------------------------------------------------------------------
# design matrix
# ---------------------------------------------------------------------------------------------
def _columns(moderators) -> dict:
    """Moderators as ``{name: list of values}`` from a mapping of columns or a DataFrame."""
    if hasattr(moderators, "to_dict") and hasattr(moderators, "columns"):
        return {str(c): moderators[c].tolist() for c in moderators.columns}
    return {str(k): list(v) for k, v in dict(moderators).items()}


def _is_missing(x) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def _is_number(x) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, (bool, np.bool_))


def design_matrix(moderators, *, categorical: Sequence[str] = (), intercept: bool = True):
    """Build the design matrix of a meta-regression from a table of moderators.

    Numeric columns enter as they are; text, boolean and categorical columns (and the columns
    named in ``categorical``) are dummy-coded with treatment contrasts against the first level in
    sorted order, which is R's ``factor()`` default.  Coefficient names follow metafor:
    ``intrcpt``, ``ablat``, ``allocrandom`` (column name + level).

    Parameters
    ----------
    moderators : mapping of column name -> sequence, or pandas.DataFrame
        One row per study.  A column is numeric when every value is a number (bool excepted).
    categorical : sequence of str
        Columns to treat as categorical even if numeric.
    intercept : bool
        Add the intercept column first.

    Returns
    -------
    X : ndarray, shape (k, p)
    names : tuple of str
    """
    df = _columns(moderators)
    unknown = [c for c in categorical if c not in df]
    if unknown:
        raise ValueError(f"categorical moderator(s) {unknown} not among the moderators {list(df)}")
    cols, names = [], []
    k = len(next(iter(df.values()))) if df else 0
    full_coding = not intercept        # without intercept the first factor keeps all its levels
    if intercept:
        cols.append(np.ones(k))
        names.append("intrcpt")
    for name, values in df.items():
        missing = [i for i, x in enumerate(values) if _is_missing(x)]
        if missing:
            raise ValueError(f"moderator {name!r} is missing for row(s) {missing}; drop those studies first")
        is_cat = name in categorical or not all(_is_number(x) for x in values)
        if not is_cat:
            cols.append(np.array([float(x) for x in values]))
            names.append(str(name))
            continue
        sv = np.array([str(x) for x in values], dtype=object)
        levels = sorted(set(sv.tolist()))
        if len(levels) < 2:
            raise ValueError(f"categorical moderator {name!r} has a single level ({levels[0]!r})")
        for lev in levels if full_coding else levels[1:]:
            cols.append((sv == lev).astype(float))
            names.append(f"{name}{lev}")
        full_coding = False
    if not cols:
        raise ValueError("the model has no columns (no intercept and no moderators)")
    X = np.column_stack(cols)
    if k < X.shape[1]:
        raise ValueError(f"{k} studies cannot estimate {X.shape[1]} coefficients ({', '.join(names)})")
    if np.linalg.matrix_rank(X) < X.shape[1]:
        raise ValueError(f"the design matrix ({', '.join(names)}) is rank deficient: "
                         "some moderators are collinear")
    return X, tuple(names)


# ---------------------------------------------------------------------------------------------
# weighted least-squares pieces with k x p matrices only
# ---------------------------------------------------------------------------------------------
def _wls(y, X, w):
    """beta, (X'WX)^-1, residuals for weights w."""
    XtW = X.T * w
    A_inv = np.linalg.inv(XtW @ X)
    beta = A_inv @ (XtW @ y)
    return beta, A_inv, y - X @ beta


def _traces(X, w, A_inv):
    """tr(P) and tr(PP) for P = W - W X (X'WX)^-1 X'W, without forming P."""
    B = A_inv @ ((X.T * w**2) @ X)               # A^-1 X'W^2 X
    trP = w.sum() - np.trace(B)
    trPP = (w**2).sum() - 2 * np.trace(A_inv @ ((X.T * w**3) @ X)) + np.trace(B @ B)
    return trP, trPP


def _rss(y, X, w):
    """y'Py = sum w e^2 for the WLS residuals."""
    _, _, e = _wls(y, X, w)
    return float(np.sum(w * e**2))


def _loglik(y, v, X, tau2, method):
    w = 1.0 / (v + tau2)
    _, A_inv, e = _wls(y, X, w)
    rss = np.sum(w * e**2)
    ll = -0.5 * np.sum(np.log(v + tau2)) - 0.5 * rss
    if method == "REML":
        ll += 0.5 * np.linalg.slogdet(A_inv)[1]
    return ll


def _tau2_HE(y, v, X):
    k, p = X.shape
    XtX_inv = np.linalg.inv(X.T @ X)
    e = y - X @ (XtX_inv @ (X.T @ y))
    trPV = v.sum() - np.trace(XtX_inv @ ((X.T * v) @ X))
    return (e @ e - trPV) / (k - p)


def _fisher_scoring(y, v, X, method, tau2, tol, maxiter):
    """metafor's Fisher scoring for ML, REML and EB; returns (tau2, converged, iterations)."""
    k, p = X.shape
    for it in range(1, maxiter + 1):
        w = 1.0 / (v + tau2)
        _, A_inv, e = _wls(y, X, w)
        Py = w * e
        if method == "EB":
            adj = (np.sum(w * e**2) * k / (k - p) - k) / w.sum()
        else:
            trP, trPP = _traces(X, w, A_inv)
            if method == "ML":
                adj = (Py @ Py - w.sum()) / (w**2).sum()
            else:
                adj = (Py @ Py - trP) / trPP
        if not np.isfinite(adj):
            adj = 0.0
        while tau2 + adj < 0:
            adj /= 2
        old, tau2 = tau2, tau2 + adj
        if abs(tau2 - old) <= tol:
            return tau2, True, it
    return tau2, False, maxiter


def residual_tau2(yi, vi, X, method="REML", *, tol=1e-12, maxiter=10000):
    """Residual between-study variance of a meta-regression.

    Closed forms (DL, HE, HS, SJ) and iterative solutions (ML, REML, EB by Fisher scoring, PM by
    root finding) exactly as in metafor's ``rma.uni`` with moderators (metafor 3.8-1), truncated at
    zero; ML/REML check that the likelihood at tau² = 0 is not larger (metafor's ``ll0check``).

    Returns
    -------
    tau2 : float
    notes : tuple of str
    """
    y, v, X = np.asarray(yi, float), np.asarray(vi, float), np.asarray(X, float)
    k, p = X.shape
    method = method.upper()
    if method in ("FE", "EE"):
        return 0.0, ()
    if k <= p:
        return 0.0, (f"tau2 set to 0: k = {k} studies for p = {p} coefficients",)
    notes = []
    if method == "DL":
        w = 1.0 / v
        _, A_inv, e = _wls(y, X, w)
        trP, _ = _traces(X, w, A_inv)
        tau2 = (np.sum(w * e**2) - (k - p)) / trP
    elif method == "HE":
        tau2 = _tau2_HE(y, v, X)
    elif method == "HS":
        w = 1.0 / v
        tau2 = (_rss(y, X, w) - k) / w.sum()
    elif method == "SJ":
        tau0 = np.var(y)                        # metafor: var(yi) * (k-1)/k
        tau2 = tau0 * _rss(y, X, 1.0 / (v + tau0)) / (k - p)
    elif method == "PM":
        target = k - p

        def f(t):
            return _rss(y, X, 1.0 / (v + t)) - target
        if f(0.0) < 0:
            tau2 = 0.0
        else:
            hi = max(1.0, 10 * np.var(y))
            while f(hi) > 0:
                hi *= 10
            from scipy import optimize

            tau2 = optimize.brentq(f, 0.0, hi, xtol=tol, rtol=4 * _EPS, maxiter=maxiter)
    elif method in ("ML", "REML", "EB"):
        start = max(0.0, _tau2_HE(y, v, X))
        tau2, conv, _ = _fisher_scoring(y, v, X, method, start, tol, maxiter)
        if not conv:
            raise RuntimeError(f"{method} Fisher scoring did not converge in {maxiter} iterations")
        if method in ("ML", "REML") and tau2 > tol:
            if _loglik(y, v, X, 0.0, method) - _loglik(y, v, X, tau2, method) > tol:
                notes.append(f"{method} scoring stopped at a local maximum; tau2 set to 0")
                tau2 = 0.0
    else:
        raise ValueError(f"unknown tau2 method {method!r}; choose one of {', '.join(METHODS)}")
    return max(0.0, float(tau2)), tuple(notes)


# ---------------------------------------------------------------------------------------------
# the result object
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MetaRegression(Record):
    """A fitted mixed-effects (or fixed-effects) meta-regression.

    Attributes
    ----------
    method, test : str
        tau² estimator and inference (``z`` or ``knha``).
    level : float
        Confidence level.
    study : tuple of str
    yi, vi : ndarray
    X : ndarray, shape (k, p)
        Design matrix (first column the intercept when there is one).
    coef : tuple of str
        Coefficient names (metafor style: ``intrcpt``, ``ablat``, ``allocrandom``).
    estimate, se, stat, pval, ci_lb, ci_ub : ndarray, shape (p,)
        Coefficient table; ``stat`` is z or t.
    vcov : ndarray, shape (p, p)
        Covariance matrix of the coefficients (Knapp-Hartung scaled under ``knha``).
    df : float
        t degrees of freedom k - p (NaN under ``z``).
    QM, QM_df, QM_df2, QM_pval : float
        Omnibus test of the moderators (all coefficients but the intercept): chi²(QM_df) under
        ``z``; F(QM_df, QM_df2) under ``knha`` (QM is then the F statistic, as in metafor).
    tau2 : float
        Residual between-study variance.
    I2, H2 : float
        Residual heterogeneity (metafor's definitions for models with moderators).
    R2 : float
        Pseudo-R² in percent: the proportional reduction of tau² relative to the intercept-only
        model with the same estimator (adjusted weighted R² for FE models); NaN without intercept.
    QE, QE_df, QE_pval : float
        Test for residual heterogeneity.
    weights : ndarray
        Per-study weights in percent.
    notes : tuple of str
    """

    method: str
    test: str
    level: float
    study: tuple
    yi: np.ndarray = array_field()
    vi: np.ndarray = array_field()
    X: np.ndarray = array_field()
    coef: tuple
    estimate: np.ndarray = array_field()
    se: np.ndarray = array_field()
    stat: np.ndarray = array_field()
    pval: np.ndarray = array_field()
    ci_lb: np.ndarray = array_field()
    ci_ub: np.ndarray = array_field()
    vcov: np.ndarray = array_field()
    weights: np.ndarray = array_field()
    df: float = math.nan
    QM: float = math.nan
    QM_df: float = math.nan
    QM_df2: float = math.nan
    QM_pval: float = math.nan
    tau2: float = math.nan
    I2: float = math.nan
    H2: float = math.nan
    R2: float = math.nan
    QE: float = math.nan
    QE_df: float = math.nan
    QE_pval: float = math.nan
    moderators: tuple = ()
    notes: tuple = field(default=())

    def __post_init__(self):
        object.__setattr__(self, "study", tuple(str(s) for s in self.study))
        object.__setattr__(self, "coef", tuple(self.coef))
        object.__setattr__(self, "notes", tuple(self.notes))
        self._freeze_arrays()

    @property
    def k(self) -> int:
        return len(self.study)

    @property
    def p(self) -> int:
        return len(self.coef)

    def _crit(self) -> float:
        a = 0.5 + self.level / 2
        return float(dist.t_ppf(a, self.df) if self.test == "knha" else dist.norm_ppf(a))

    def predict(self, X_new) -> dict:
        """Fitted values for rows of a design matrix: ``pred, se, ci_lb, ci_ub, pi_lb, pi_ub``.

        The prediction interval adds tau² to the variance and uses the same quantile as the
        confidence interval (metafor's ``predict.rma`` convention).
        """
        Xn = np.atleast_2d(np.asarray(X_new, dtype=float))
        if Xn.shape[1] != self.p:
            raise ValueError(f"X_new has {Xn.shape[1]} columns; "
                             f"the model has {self.p} ({', '.join(self.coef)})")
        pred = Xn @ self.estimate
        se = np.sqrt(np.einsum("ij,jk,ik->i", Xn, self.vcov, Xn))
        crit = self._crit()
        pse = np.sqrt(se**2 + self.tau2)
        return {"pred": pred, "se": se, "ci_lb": pred - crit * se, "ci_ub": pred + crit * se,
                "pi_lb": pred - crit * pse, "pi_ub": pred + crit * pse}

    def coefficients(self) -> list:
        """The coefficient table as records: ``coef, estimate, se, stat, pval, ci_lb, ci_ub``."""
        return [{"coef": c, "estimate": float(e), "se": float(s), "stat": float(z), "pval": float(pv),
                 "ci_lb": float(lb), "ci_ub": float(ub)}
                for c, e, s, z, pv, lb, ub in zip(self.coef, self.estimate, self.se, self.stat, self.pval,
                                                  self.ci_lb, self.ci_ub)]

    def to_frame(self):
        """The coefficient table as a pandas DataFrame (needs pandas)."""
        import pandas as pd

        return pd.DataFrame(self.coefficients())


def _heterogeneity(y, v, X, method, tau2):
    """QE, its p-value, I2 and H2 as metafor computes them for models with moderators (k > p)."""
    k, p = X.shape
    w = 1.0 / v
    _, A_inv, e = _wls(y, X, w)
    QE = max(0.0, float(np.sum(w * e**2)))
    QEp = float(dist.chi2_sf(QE, k - p))
    if method in ("FE", "EE"):
        I2 = max(0.0, 100 * (QE - (k - p)) / QE) if QE > 0 else 0.0
        return QE, QEp, I2, QE / (k - p)
    trP, _ = _traces(X, w, A_inv)
    vt = (k - p) / trP                              # typical within-study variance
    return QE, QEp, 100 * tau2 / (vt + tau2), tau2 / vt + 1


def _r2(y, v, X, names, method, tau2, tol, maxiter):
    """metafor's pseudo-R² (percent)."""
    k, p = X.shape
    if "intrcpt" not in names or p < 2:
        return math.nan
    if method in ("FE", "EE"):
        w = 1.0 / v
        ybar = np.sum(w * y) / w.sum()
        _, _, e = _wls(y, X, w)
        tss = np.sum(w * (y - ybar) ** 2)
        if tss == 0:
            return 0.0
        r2 = 1 - np.sum(w * e**2) / tss
        adj = 1 - (1 - r2) * (k - 1) / (k - p)
        return max(0.0, 100 * adj)
    tau2_0, _ = residual_tau2(y, v, np.ones((k, 1)), method, tol=tol, maxiter=maxiter)
    if tau2_0 == 0:
        return 0.0
    return max(0.0, 100 * (tau2_0 - tau2) / tau2_0)


def meta_regression(yi, vi, moderators=None, *, method="REML", test="z", level=0.95, study=None,
                    categorical: Sequence[str] = (), X=None, coef_names=None, intercept=True,
                    tol=1e-12, maxiter=10000) -> MetaRegression:
    """Fit a mixed-effects meta-regression.

    Parameters
    ----------
    yi, vi : array_like
        Effect sizes and sampling variances (analysis scale), length k.
    moderators : pandas.DataFrame or mapping, optional
        Moderator columns (numeric or categorical), one row per study; see :func:`design_matrix`.
    method : str
        Residual tau² estimator: FE, DL, HE, HS, SJ, ML, REML, EB or PM.
    test : {"z", "knha"}
        Normal inference or Knapp-Hartung (t(k-p) coefficients, F omnibus test).
    level : float
        Confidence level.
    study : sequence of str, optional
        Study labels.
    categorical : sequence of str
        Moderator columns to dummy-code even if numeric.
    X, coef_names : array_like and sequence of str, optional
        A ready design matrix instead of ``moderators``.
    intercept : bool
        Include an intercept (ignored when ``X`` is given).

    Returns
    -------
    MetaRegression

    Notes
    -----
    Validated against metafor 3.8-1 ``rma(yi, vi, mods = ~ ..., method = method, test = test)``:
    coefficients, se, z/t, p, CI, QM (chi² or F), QMp, tau², I², H², R², QE and QEp
    (``tests/test_metareg.py``).
    """
    y = np.asarray(yi, dtype=float)
    v = np.asarray(vi, dtype=float)
    method = method.upper()
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    if test not in ("z", "knha"):
        raise ValueError(f"test must be 'z' or 'knha', not {test!r}")
    if y.ndim != 1 or y.shape != v.shape:
        raise ValueError("yi and vi must be 1-d arrays of the same length")
    if not (np.isfinite(y).all() and np.isfinite(v).all() and (v > 0).all()):
        raise ValueError("yi must be finite and vi finite and positive")
    if X is None:
        if moderators is None:
            raise ValueError("give the moderators (a table) or a design matrix X")
        X, names = design_matrix(moderators, categorical=categorical, intercept=intercept)
        mods = tuple(_columns(moderators))
    else:
        X = np.asarray(X, dtype=float)
        names = tuple(coef_names) if coef_names is not None else tuple(f"X{j}" for j in range(X.shape[1]))
        mods = ()
    k, p = X.shape
    if k != y.size:
        raise ValueError(f"the design matrix has {k} rows for {y.size} studies")
    if k < p:
        raise ValueError(f"{k} studies cannot estimate {p} coefficients ({', '.join(names)})")
    study = tuple(study) if study is not None else tuple(str(i + 1) for i in range(k))

    tau2, notes = residual_tau2(y, v, X, method, tol=tol, maxiter=maxiter)
    w = 1.0 / (v + tau2)
    beta, vb, e = _wls(y, X, w)
    df = math.nan
    if test == "knha":
        df = float(k - p)
        rss = np.sum(w * e**2)
        s2w = 0.0 if rss <= _EPS else rss / (k - p)
        vb = s2w * vb
    se = np.sqrt(np.diag(vb))
    stat = beta / se
    btt = [j for j, n in enumerate(names) if n != "intrcpt"] or list(range(p))
    m = len(btt)
    sub = vb[np.ix_(btt, btt)]
    QM = float(beta[btt] @ np.linalg.solve(sub, beta[btt]))
    a = 0.5 + level / 2
    if test == "knha":
        QM /= m
        QM_df2 = float(k - p)
        QMp = float(dist.f_sf(QM, m, k - p)) if k > p else math.nan
        pval = 2 * dist.t_sf(np.abs(stat), df) if k > p else np.full(p, math.nan)
        crit = dist.t_ppf(a, df) if k > p else math.nan
    else:
        QM_df2 = math.nan
        QMp = float(dist.chi2_sf(QM, m))
        pval = 2 * dist.norm_sf(np.abs(stat))
        crit = dist.norm_ppf(a)

    if k > p:
        QE, QEp, I2, H2 = _heterogeneity(y, v, X, method, tau2)
    else:
        QE, QEp, I2, H2 = 0.0, 1.0, 0.0, 1.0
    R2 = _r2(y, v, X, names, method, tau2, tol, maxiter)
    return MetaRegression(method=method, test=test, level=level, study=study, yi=y, vi=v, X=X,
                          coef=names, estimate=beta, se=se, stat=stat, pval=pval,
                          ci_lb=beta - crit * se, ci_ub=beta + crit * se, vcov=vb, df=df, QM=QM,
                          QM_df=float(m), QM_df2=QM_df2, QM_pval=QMp, tau2=tau2, I2=I2, H2=H2, R2=R2,
                          QE=QE, QE_df=float(k - p), QE_pval=QEp, weights=100 * w / w.sum(),
                          moderators=mods, notes=notes)
