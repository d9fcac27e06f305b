"""The distribution functions the statistics need, from ``scipy.special``.

``scipy.stats`` costs about 0.7 s of import per process; every workflow job is a process, so the
statistics call these thin wrappers of the special functions instead (same algorithms: scipy.stats
evaluates its normal, t, chi², F and beta distributions with these very functions).

Validated against ``scipy.stats`` and printed table values (Abramowitz & Stegun 26.2, 26.7) in
``tests/test_dist.py``.
"""
from __future__ import annotations

import numpy as np
from scipy import special

__all__ = ["norm_cdf", "norm_sf", "norm_ppf", "t_sf", "t_ppf", "t_cdf", "chi2_sf", "chi2_cdf", "chi2_ppf",
           "f_sf", "binom_logpmf", "beta_ppf"]


def norm_cdf(x):
    """Standard normal distribution function Phi(x)."""
    return special.ndtr(x)


def norm_sf(x):
    """Upper tail 1 - Phi(x), accurate in the tail."""
    return special.ndtr(-np.asarray(x, dtype=float))


def norm_ppf(p):
    """Standard normal quantile Phi^-1(p)."""
    return special.ndtri(p)


def t_cdf(x, df):
    """Student t distribution function with ``df`` degrees of freedom."""
    return special.stdtr(df, x)


def t_sf(x, df):
    """Upper tail of Student's t."""
    return special.stdtr(df, -np.asarray(x, dtype=float))


def t_ppf(p, df):
    """Quantile of Student's t."""
    return special.stdtrit(df, p)


def chi2_sf(x, df):
    """Upper tail of chi² with ``df`` degrees of freedom."""
    return special.chdtrc(df, x)


def chi2_cdf(x, df):
    """Distribution function of chi²."""
    return special.chdtr(df, x)


def chi2_ppf(p, df):
    """Quantile of chi²."""
    return special.chdtri(df, 1.0 - np.asarray(p, dtype=float))


def f_sf(x, dfn, dfd):
    """Upper tail of the F distribution."""
    return special.fdtrc(dfn, dfd, x)


def binom_logpmf(x, n, p):
    """log P(X = x) for X ~ Binomial(n, p) (x may be non-integer-valued arrays of counts)."""
    x, n, p = (np.asarray(a, dtype=float) for a in (x, n, p))
    return (special.gammaln(n + 1) - special.gammaln(x + 1) - special.gammaln(n - x + 1)
            + special.xlogy(x, p) + special.xlog1py(n - x, -p))


def beta_ppf(q, a, b):
    """Quantile of the Beta(a, b) distribution (Clopper-Pearson limits)."""
    return special.betaincinv(a, b, q)
