"""Mean and SD from a median with a range and/or an interquartile range.

Primary studies often print ``median (min-max)`` or ``median (Q1, Q3)`` instead of a mean and a
standard deviation.  :func:`median_to_mean_sd` estimates both, assuming roughly normal data,
with the estimators of

* Wan X, Wang W, Liu J, Tong T (2014). Estimating the sample mean and standard deviation from the
  sample size, median, range and/or interquartile range. *BMC Med Res Methodol* 14:135
  (doi:10.1186/1471-2288-14-135) -- the standard deviation in all three scenarios and, on request,
  the mean;
* Luo D, Wan X, Liu J, Tong T (2018). Optimally estimating the sample mean from the sample size,
  median, mid-range, and/or mid-quartile range. *Stat Methods Med Res* 27(6):1785-1805
  (doi:10.1177/0962280216669183) -- the mean (default).

Scenarios (Wan 2014 notation):

``S1``  median ``m``, minimum ``a``, maximum ``b``, sample size ``n``;
``S2``  ``a, q1, m, q3, b, n`` (five-number summary);
``S3``  ``q1, m, q3, n``.

Formulas (``Phi^-1`` the standard normal quantile function)::

    xi(n)  = 2 Phi^-1((n - 0.375) / (n + 0.25))          Wan 2014, S1 (expected range / sigma)
    eta(n) = 2 Phi^-1((0.75 n - 0.125) / (n + 0.25))     Wan 2014, S3 (expected IQR / sigma)

    SD   S1: (b - a) / xi(n)
         S2: (b - a) / (2 xi(n)) + (q3 - q1) / (2 eta(n))
         S3: (q3 - q1) / eta(n)
    mean (Wan 2014)  S1: (a + 2m + b) / 4
                     S2: (a + 2 q1 + 2m + 2 q3 + b) / 8
                     S3: (q1 + m + q3) / 3
    mean (Luo 2018)  S1: w m + (1 - w) (a + b) / 2,  w = 4 / (4 + n^0.75)
                     S2: w1 (a + b) / 2 + w2 (q1 + q3) / 2 + (1 - w1 - w2) m,
                         w1 = 2.2 / (2.2 + n^0.75),  w2 = 0.7 - 0.72 / n^0.55
                     S3: w (q1 + q3) / 2 + (1 - w) m,  w = 0.7 + 0.39 / n

Validated against: the exact expected range and interquartile range of normal samples
(tabulated in Wan 2014, Table 1/Table 2 discussion; the classical ``d2`` constants), the
formulas above evaluated independently in ``tests/test_convert.py``, and closed-form limits
(symmetric summaries give ``mean = median``; ``w -> 0`` as ``n -> inf`` in Luo S1).
"""
from __future__ import annotations

import numpy as np
from scipy.stats import norm

__all__ = ["median_to_mean_sd", "xi", "eta", "MEAN_METHODS", "scenario"]

MEAN_METHODS = ("luo2018", "wan2014")
"""Mean estimators: Luo et al. 2018 (default, optimal weights) or Wan et al. 2014."""

_SCEN_NAME = {"S1": "median, range", "S2": "median, IQR, range", "S3": "median, IQR"}


def xi(n):
    """Wan 2014 ``xi(n) = 2 Phi^-1((n - 0.375)/(n + 0.25))``: expected range of n normals / sigma."""
    n = np.asarray(n, dtype=float)
    return 2.0 * norm.ppf((n - 0.375) / (n + 0.25))


def eta(n):
    """Wan 2014 ``eta(n) = 2 Phi^-1((0.75 n - 0.125)/(n + 0.25))``: expected IQR / sigma."""
    n = np.asarray(n, dtype=float)
    return 2.0 * norm.ppf((0.75 * n - 0.125) / (n + 0.25))


def _arr(x, shape):
    if x is None:
        return np.full(shape, np.nan)
    return np.broadcast_to(np.asarray(x, dtype=float), shape).astype(float)


def scenario(q1=None, q3=None, minimum=None, maximum=None):
    """Scenario label per element: ``"S1"``, ``"S2"``, ``"S3"`` or ``""`` (not enough numbers)."""
    shape = np.broadcast(*[np.asarray(v if v is not None else np.nan, dtype=float)
                           for v in (q1, q3, minimum, maximum)]).shape
    q1, q3, a, b = (_arr(v, shape) for v in (q1, q3, minimum, maximum))
    has_r = np.isfinite(a) & np.isfinite(b)
    has_q = np.isfinite(q1) & np.isfinite(q3)
    return np.where(has_r & has_q, "S2", np.where(has_r, "S1", np.where(has_q, "S3", "")))


def median_to_mean_sd(median, q1=None, q3=None, minimum=None, maximum=None, n=None, *,
                      mean_method: str = "luo2018"):
    """Estimate mean and SD from a median with range and/or IQR (vectorised over studies).

    Parameters
    ----------
    median : float or array
        Sample median ``m``.
    q1, q3 : float or array, optional
        First and third quartiles.
    minimum, maximum : float or array, optional
        Sample minimum ``a`` and maximum ``b``.
    n : int or array
        Sample size (required: every estimator depends on it).
    mean_method : {"luo2018", "wan2014"}
        Mean estimator; the SD always follows Wan et al. (2014).

    Returns
    -------
    mean, sd : ndarray
        Estimates (NaN where the numbers given fit no scenario).
    method : ndarray of str
        Per element, e.g. ``"Luo 2018 mean + Wan 2014 SD (S1: median, range)"``.

    Raises
    ------
    ValueError
        ``n`` missing or < 2, an unknown ``mean_method``, or a summary out of order
        (``minimum <= q1 <= median <= q3 <= maximum`` must hold where given).

    Notes
    -----
    Validated against the formulas of Wan et al. (2014), BMC Med Res Methodol 14:135 (S1-S3)
    and Luo et al. (2018), Stat Methods Med Res 27:1785 (S1-S3), and the exact normal-sample
    expected range (``d2`` constants); see ``tests/test_convert.py``.
    """
    if mean_method not in MEAN_METHODS:
        raise ValueError(f"mean_method must be one of {', '.join(MEAN_METHODS)}, not {mean_method!r}")
    if n is None:
        raise ValueError("n (sample size) is required to convert a median to a mean and SD")
    shape = np.broadcast(*[np.asarray(v if v is not None else np.nan, dtype=float)
                           for v in (median, q1, q3, minimum, maximum, n)]).shape
    m, q1, q3, a, b, n = (_arr(v, shape) for v in (median, q1, q3, minimum, maximum, n))
    if np.any(~np.isfinite(n)) or np.any(n < 2):
        raise ValueError(f"n must be a number >= 2 for every study, got {n.tolist()}")
    seq = np.stack([a, q1, m, q3, b])
    with np.errstate(invalid="ignore"):
        for lo, hi in zip(range(4), range(1, 5)):
            for j in range(hi, 5):
                bad = np.isfinite(seq[lo]) & np.isfinite(seq[j]) & (seq[lo] > seq[j])
                if np.any(bad):
                    raise ValueError("summary out of order: need minimum <= q1 <= median <= q3 "
                                     f"<= maximum (element(s) {np.flatnonzero(bad).tolist()})")
    scen = scenario(q1, q3, a, b)
    x, e = xi(n), eta(n)
    sd = np.select([scen == "S1", scen == "S2", scen == "S3"],
                   [(b - a) / x, (b - a) / (2 * x) + (q3 - q1) / (2 * e), (q3 - q1) / e], np.nan)
    if mean_method == "wan2014":
        mean = np.select([scen == "S1", scen == "S2", scen == "S3"],
                         [(a + 2 * m + b) / 4, (a + 2 * q1 + 2 * m + 2 * q3 + b) / 8,
                          (q1 + m + q3) / 3], np.nan)
        mname = "Wan 2014 mean"
    else:
        n75 = n ** 0.75
        w_s1 = 4.0 / (4.0 + n75)
        w1_s2 = 2.2 / (2.2 + n75)
        w2_s2 = 0.7 - 0.72 / n ** 0.55
        w_s3 = 0.7 + 0.39 / n
        mean = np.select(
            [scen == "S1", scen == "S2", scen == "S3"],
            [w_s1 * m + (1 - w_s1) * (a + b) / 2,
             w1_s2 * (a + b) / 2 + w2_s2 * (q1 + q3) / 2 + (1 - w1_s2 - w2_s2) * m,
             w_s3 * (q1 + q3) / 2 + (1 - w_s3) * m], np.nan)
        mname = "Luo 2018 mean"
    names = [f"{mname} + Wan 2014 SD ({k}: {v})" for k, v in _SCEN_NAME.items()]
    label = np.select([scen == k for k in _SCEN_NAME], names, "").astype(object)
    return mean, sd, label
