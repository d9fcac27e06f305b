"""Mean and SD from a median with a range and/or an interquartile range, as R package meta does.

Primary studies often print ``median (min-max)`` or ``median (Q1, Q3)`` instead of a mean and a
standard deviation.  :func:`median_to_mean_sd` estimates both, assuming roughly normal data, with
exactly the estimators of R package **meta** 6.5-0 (``meta:::mean_sd_range``,
``meta:::mean_sd_iqr_range``, ``meta:::mean_sd_iqr`` in ``R/mean-sd-internal.R``; the functions
behind ``metacont(median.e=, q1.e=, q3.e=, min.e=, max.e=, method.mean=, method.sd=)``):

* Wan X, Wang W, Liu J, Tong T (2014). Estimating the sample mean and standard deviation from the
  sample size, median, range and/or interquartile range. *BMC Med Res Methodol* 14:135
  (doi:10.1186/1471-2288-14-135) -- the SD in S1 and S3 (always) and in S2 on request, and the
  mean on request;
* Luo D, Wan X, Liu J, Tong T (2018). Optimally estimating the sample mean from the sample size,
  median, mid-range, and/or mid-quartile range. *Stat Methods Med Res* 27(6):1785-1805
  (doi:10.1177/0962280216669183) -- the mean (meta's default);
* Shi J, Luo D, Weng H, Zeng XT, Lin L, Chu H, Tong T (2020). Optimally estimating the sample
  standard deviation from the five-number summary. *Res Synth Methods* 11(5):641-654
  (doi:10.1002/jrsm.1429) -- the SD in S2 (meta's default).

Scenarios (Wan 2014 notation): ``S1`` median ``m``, minimum ``a``, maximum ``b``; ``S2`` the
five-number summary ``a, q1, m, q3, b``; ``S3`` ``q1, m, q3``; always with the sample size ``n``.

Formulas, as in meta 6.5-0 (``Phi^-1`` the standard normal quantile function)::

    xi(n)  = Wan 2014 Table 1 [n]                          n <= 50   (expected range / sigma)
           = 2 Phi^-1((n - 0.375) / (n + 0.25))            n > 50
    eta(n) = Wan 2014 Table 2 [Q], Q = ceiling((n - 1)/4)  n <= 201  (expected IQR / sigma)
           = 2 Phi^-1((0.75 n - 0.125) / (n + 0.25))       n > 201

    SD (Wan 2014)   S1: (b - a) / xi(n)
                    S2: (b - a) / (2 xi(n)) + (q3 - q1) / (2 eta(n))
                    S3: (q3 - q1) / eta(n)
    SD (Shi 2020)   S2: (b - a) / ((2 + 0.14 n^0.6) Phi^-1((n - 0.375)/(n + 0.25)))
                        + (q3 - q1) / ((2 + 2 / (0.07 n^0.6)) Phi^-1((0.75 n - 0.125)/(n + 0.25)))
    mean (Wan 2014) S1: (a + 2m + b) / 4 + (a - 2m + b) / (4n)     (Wan 2014 eq. 2)
                    S2: (a + 2 q1 + 2m + 2 q3 + b) / 8
                    S3: (q1 + m + q3) / 3
    mean (Luo 2018) S1: w (a + b) / 2 + (1 - w) m,  w = 4 / (4 + n^0.75)
                    S2: w1 (a + b) / 2 + w2 (q1 + q3) / 2 + (1 - w1 - w2) m,
                        w1 = 2.2 / (2.2 + n^0.75),  w2 = 0.7 - 0.72 / n^0.55
                    S3: w (q1 + q3) / 2 + (1 - w) m,  w = 0.7 + 0.39 / n

In S1 and S3 the SD is Wan 2014 whatever ``sd_method`` says (meta has no Shi 2020 estimator
there).  Validated against 480 cases computed with R meta 6.5-0 (``tests/conversion_cases.json``,
made by ``tests/make_conversion_cases.R``), Wan 2014's Tables 1 and 2 as meta stores them
(``tests/wan2014_tables.json``) and exact limits; see ``tests/test_convert.py``.
"""
from __future__ import annotations

import numpy as np
from scipy.special import ndtri

__all__ = ["median_to_mean_sd", "conversion_label", "scenario", "xi", "eta",
           "MEAN_METHODS", "SD_METHODS", "WAN2014_TABLE1", "WAN2014_TABLE2"]

MEAN_METHODS = ("luo2018", "wan2014")
"""Mean estimators: Luo et al. 2018 (meta's default ``method.mean = "Luo"``) or Wan et al. 2014."""

SD_METHODS = ("shi2020", "wan2014")
"""S2 SD estimators: Shi et al. 2020 (meta's default ``method.sd = "Shi"``) or Wan et al. 2014."""

WAN2014_TABLE1 = np.array([
    0.000, 1.128, 1.693, 2.059, 2.326, 2.534, 2.704, 2.847, 2.970, 3.078,
    3.173, 3.259, 3.336, 3.407, 3.472, 3.532, 3.588, 3.640, 3.689, 3.735,
    3.778, 3.819, 3.858, 3.895, 3.931, 3.964, 3.997, 4.027, 4.057, 4.086,
    4.113, 4.139, 4.165, 4.189, 4.213, 4.236, 4.259, 4.280, 4.301, 4.322,
    4.341, 4.361, 4.379, 4.398, 4.415, 4.433, 4.450, 4.466, 4.482, 4.498])
"""``xi(n)`` for n = 1..50 (index n - 1): Wan et al. 2014, Table 1, as stored in R meta 6.5-0
(option ``Wan2014.Table1``, ``R/meta-internal.R``)."""

WAN2014_TABLE2 = np.array([
    0.990, 1.144, 1.206, 1.239, 1.260, 1.274, 1.284, 1.292, 1.298, 1.303,
    1.307, 1.311, 1.313, 1.316, 1.318, 1.320, 1.322, 1.323, 1.324, 1.326,
    1.327, 1.328, 1.329, 1.330, 1.330, 1.331, 1.332, 1.332, 1.333, 1.333,
    1.334, 1.334, 1.335, 1.335, 1.336, 1.336, 1.336, 1.337, 1.337, 1.337,
    1.338, 1.338, 1.338, 1.338, 1.339, 1.339, 1.339, 1.339, 1.339, 1.340])
"""``eta`` for Q = 1..50 (index Q - 1; n = 4Q + 1): Wan et al. 2014, Table 2, as stored in R meta
6.5-0 (option ``Wan2014.Table2``)."""

_MEAN_NAME = {"luo2018": "Luo 2018 mean", "wan2014": "Wan 2014 mean"}
_SD_NAME = {"shi2020": "Shi 2020 SD", "wan2014": "Wan 2014 SD"}
_SCEN_NAME = {"S1": "median, range", "S2": "median, IQR, range", "S3": "median, IQR"}


def _xi_closed(n):
    return 2.0 * ndtri((n - 0.375) / (n + 0.25))


def _eta_closed(n):
    return 2.0 * ndtri((0.75 * n - 0.125) / (n + 0.25))


def xi(n):
    """Range divisor ``xi(n)`` (expected range of n standard normals) as meta 6.5-0 uses it.

    Parameters
    ----------
    n : int or array of int
        Sample size(s), whole numbers >= 2.

    Returns
    -------
    ndarray
        Wan 2014 Table 1 for ``n <= 50``; ``2 Phi^-1((n - 0.375)/(n + 0.25))`` (Wan 2014 eq. 9)
        above.

    Notes
    -----
    Validated against ``tests/wan2014_tables.json`` (the table as meta stores it) and, through
    :func:`median_to_mean_sd`, the R meta 6.5-0 reference cases.
    """
    n = np.asarray(n, dtype=float)
    small = n <= 50
    idx = np.where(small, n, 1).astype(int) - 1
    return np.where(small, WAN2014_TABLE1[idx], _xi_closed(n))


def eta(n):
    """IQR divisor ``eta(n)`` (expected IQR of n standard normals) as meta 6.5-0 uses it.

    Parameters
    ----------
    n : int or array of int
        Sample size(s), whole numbers >= 2.

    Returns
    -------
    ndarray
        Wan 2014 Table 2 at ``Q = ceiling((n - 1)/4)`` for ``n <= 201``;
        ``2 Phi^-1((0.75 n - 0.125)/(n + 0.25))`` (Wan 2014 eq. 16) above.

    Notes
    -----
    Validated against ``tests/wan2014_tables.json`` and, through :func:`median_to_mean_sd`, the
    R meta 6.5-0 reference cases.
    """
    n = np.asarray(n, dtype=float)
    small = n <= 201
    q = np.where(small, np.ceil(0.25 * (np.where(small, n, 2) - 1)), 1).astype(int)
    return np.where(small, WAN2014_TABLE2[q - 1], _eta_closed(n))


def _arr(x, shape):
    if x is None:
        return np.full(shape, np.nan)
    return np.broadcast_to(np.asarray(x, dtype=float), shape).astype(float)


def _shape(*values):
    return np.broadcast(*[np.asarray(v if v is not None else np.nan, dtype=float)
                          for v in values]).shape


def scenario(q1=None, q3=None, minimum=None, maximum=None):
    """Scenario per element: ``"S1"`` (range), ``"S2"`` (range and IQR), ``"S3"`` (IQR) or ``""``.

    Parameters
    ----------
    q1, q3, minimum, maximum : float or array, optional
        The summaries given (NaN or None = not given).

    Returns
    -------
    ndarray of str
        ``"S2"`` where both range and IQR are complete, else ``"S1"``/``"S3"``, else ``""``, in
        the order meta's ``metacont`` tries them (IQR and range, then IQR, then range).
    """
    shape = _shape(q1, q3, minimum, maximum)
    q1, q3, a, b = (_arr(v, shape) for v in (q1, q3, minimum, maximum))
    has_r = np.isfinite(a) & np.isfinite(b)
    has_q = np.isfinite(q1) & np.isfinite(q3)
    return np.where(has_r & has_q, "S2", np.where(has_q, "S3", np.where(has_r, "S1", "")))


def _check_methods(mean_method, sd_method):
    if mean_method not in MEAN_METHODS:
        raise ValueError(f"mean_method must be one of {', '.join(MEAN_METHODS)}, not {mean_method!r}")
    if sd_method not in SD_METHODS:
        raise ValueError(f"sd_method must be one of {', '.join(SD_METHODS)}, not {sd_method!r}")


def conversion_label(q1=None, q3=None, minimum=None, maximum=None, *,
                     mean_method: str = "luo2018", sd_method: str = "shi2020"):
    """Human-readable method per element, e.g. ``"Luo 2018 mean + Shi 2020 SD (S2: median, IQR, range)"``.

    Parameters
    ----------
    q1, q3, minimum, maximum : float or array, optional
        The summaries given, as for :func:`median_to_mean_sd`.
    mean_method, sd_method : str
        As for :func:`median_to_mean_sd`.

    Returns
    -------
    ndarray of object (str)
        The label of the estimators :func:`median_to_mean_sd` applies to each element (the SD is
        named Wan 2014 in S1/S3, where Shi 2020 does not apply); ``""`` where no scenario fits.
    """
    _check_methods(mean_method, sd_method)
    scen = scenario(q1, q3, minimum, maximum)
    names = []
    for k, v in _SCEN_NAME.items():
        sd_name = _SD_NAME[sd_method if k == "S2" else "wan2014"]
        names.append(f"{_MEAN_NAME[mean_method]} + {sd_name} ({k}: {v})")
    return np.select([scen == k for k in _SCEN_NAME], names, "").astype(object)


def median_to_mean_sd(median, q1=None, q3=None, minimum=None, maximum=None, n=None, *,
                      mean_method: str = "luo2018", sd_method: str = "shi2020"):
    """Estimate mean and SD from a median with range and/or IQR, as R meta 6.5-0 (vectorised).

    Parameters
    ----------
    median : float or array
        Sample median ``m`` (NaN gives a NaN mean; the SD does not use it).
    q1, q3 : float or array, optional
        First and third quartiles.
    minimum, maximum : float or array, optional
        Sample minimum ``a`` and maximum ``b``.
    n : int or array of int
        Sample size, a whole number >= 2 (required: every estimator depends on it).
    mean_method : {"luo2018", "wan2014"}
        Mean estimator.  Default ``"luo2018"``, meta's default (``metacont(method.mean = "Luo")``).
    sd_method : {"shi2020", "wan2014"}
        SD estimator for S2 (median, IQR and range).  Default ``"shi2020"``, meta's default
        (``metacont(method.sd = "Shi")``).  S1 and S3 always use Wan 2014, as meta does.

    Returns
    -------
    mean, sd : ndarray
        Estimates (NaN where the numbers given fit no scenario).  The scenario per element is
        :func:`scenario`, the method's name :func:`conversion_label`.

    Raises
    ------
    ValueError
        ``n`` missing, not a whole number or < 2; an unknown ``mean_method``/``sd_method``; or a
        summary out of order (``minimum <= q1 <= median <= q3 <= maximum`` must hold where given).

    Notes
    -----
    With the defaults this is what a reviewer gets from ``meta::metacont`` 6.5-0 for a study
    arm that reports a median instead of a mean: Luo 2018 mean + Shi 2020 SD (S2), Luo 2018
    mean + Wan 2014 SD (S1, S3), with Wan 2014's tabulated constants for small ``n`` (see the
    module docstring).  Validated against 480 cases computed with ``meta:::mean_sd_range``,
    ``meta:::mean_sd_iqr_range`` and ``meta:::mean_sd_iqr`` (``tests/conversion_cases.json``;
    agreement within 1e-8 relative), and exact limits; see ``tests/test_convert.py``.
    """
    _check_methods(mean_method, sd_method)
    if n is None:
        raise ValueError("n (sample size) is required to convert a median to a mean and SD")
    shape = _shape(median, q1, q3, minimum, maximum, n)
    m, q1, q3, a, b, n = (_arr(v, shape) for v in (median, q1, q3, minimum, maximum, n))
    bad_n = ~np.isfinite(n) | (n < 2) | (n != np.round(n))
    if np.any(bad_n):
        raise ValueError(f"n must be a whole number >= 2 for every study, got {n.tolist()} "
                         f"(element(s) {np.flatnonzero(bad_n).tolist()})")
    seq = np.stack([a, q1, m, q3, b])
    names = ("minimum", "q1", "median", "q3", "maximum")
    with np.errstate(invalid="ignore"):
        for lo in range(4):
            for hi in range(lo + 1, 5):
                bad = np.isfinite(seq[lo]) & np.isfinite(seq[hi]) & (seq[lo] > seq[hi])
                if np.any(bad):
                    raise ValueError(f"summary out of order: {names[lo]} > {names[hi]}; need minimum "
                                     "<= q1 <= median <= q3 <= maximum (element(s) "
                                     f"{np.flatnonzero(bad).tolist()})")
    scen = scenario(q1, q3, a, b)
    s1, s2, s3 = scen == "S1", scen == "S2", scen == "S3"
    x, e = xi(n), eta(n)
    if sd_method == "shi2020":
        theta1 = (2.0 + 0.14 * n ** 0.6) * ndtri((n - 0.375) / (n + 0.25))
        theta2 = (2.0 + 2.0 / (0.07 * n ** 0.6)) * ndtri((0.75 * n - 0.125) / (n + 0.25))
        sd2 = (b - a) / theta1 + (q3 - q1) / theta2
    else:
        sd2 = 0.5 * ((b - a) / x + (q3 - q1) / e)
    sd = np.select([s1, s2, s3], [(b - a) / x, sd2, (q3 - q1) / e], np.nan)
    if mean_method == "wan2014":
        mean = np.select([s1, s2, s3],
                         [(a + 2 * m + b) / 4 + (a - 2 * m + b) / (4 * n),
                          (a + 2 * q1 + 2 * m + 2 * q3 + b) / 8,
                          (q1 + m + q3) / 3], np.nan)
    else:
        n75 = n ** 0.75
        w1 = 4.0 / (4.0 + n75)                      # S1: weight of the mid-range
        w1_s2 = 2.2 / (2.2 + n75)                   # S2: weight of the mid-range
        w2_s2 = 0.7 - 0.72 / n ** 0.55              # S2: weight of the mid-quartile range
        w_s3 = 0.7 + 0.39 / n                       # S3: weight of the mid-quartile range
        mean = np.select([s1, s2, s3],
                         [w1 * (a + b) / 2 + (1 - w1) * m,
                          w1_s2 * (a + b) / 2 + w2_s2 * (q1 + q3) / 2 + (1 - w1_s2 - w2_s2) * m,
                          w_s3 * (q1 + q3) / 2 + (1 - w_s3) * m], np.nan)
    return mean, sd
