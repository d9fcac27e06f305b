"""Median/range/IQR -> mean/SD conversion (metapool.convert).

References
----------
Wan X, Wang W, Liu J, Tong T (2014). BMC Med Res Methodol 14:135 -- scenarios C1 (median, range),
C2 (five-number summary) and C3 (median, IQR); the SD estimators divide the range by
xi(n) = 2 Phi^-1((n - 0.375)/(n + 0.25)) (Blom's approximation to the expected range of n standard
normals, the quantity Wan et al. tabulate against the exact values) and the IQR by
eta(n) = 2 Phi^-1((0.75 n - 0.125)/(n + 0.25)).
Luo D, Wan X, Liu J, Tong T (2018). Stat Methods Med Res 27:1785 -- optimal mean weights
4/(4 + n^0.75) (S1), 2.2/(2.2 + n^0.75) and 0.7 - 0.72/n^0.55 (S2), 0.7 + 0.39/n (S3).

The expected numbers below are computed here from those published formulas written out by hand
(not by calling the module), from the exact expected range of normal samples (numerical
integration, and the classical d2 constants of quality-control tables), and by simulation.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate
from scipy.stats import norm

from metapool.convert import eta, median_to_mean_sd, scenario, xi


def exact_expected_range(n: int) -> float:
    """E[max - min] of n iid N(0, 1): integral of 1 - Phi(x)^n - (1 - Phi(x))^n over R."""
    f = lambda x: 1.0 - norm.cdf(x) ** n - norm.sf(x) ** n  # noqa: E731
    return integrate.quad(f, -np.inf, np.inf, limit=200)[0]


# d2 constants (expected range / sigma of n normals), e.g. Montgomery, Introduction to Statistical
# Quality Control, Appendix Table VI.
D2 = {2: 1.128, 3: 1.693, 5: 2.326, 10: 3.078, 15: 3.472, 20: 3.735, 25: 3.931}


@pytest.mark.parametrize("n,d2", sorted(D2.items()))
def test_exact_range_integral_matches_d2_table(n, d2):
    assert exact_expected_range(n) == pytest.approx(d2, abs=6e-4)


@pytest.mark.parametrize("n", [5, 10, 30, 50, 100, 400])
def test_xi_approximates_expected_range(n):
    # Wan 2014 (C1): xi(n) is an approximation of the expected range; within 2% for n >= 5
    assert xi(n) == pytest.approx(exact_expected_range(n), rel=0.02)


def test_eta_limit_and_values():
    # IQR of N(0,1) is 2 * 0.6745 = 1.349; eta(n) -> that as n grows
    assert eta(10 ** 7) == pytest.approx(2 * norm.ppf(0.75), rel=1e-6)
    assert eta(30) == pytest.approx(2 * norm.ppf((0.75 * 30 - 0.125) / 30.25), rel=1e-12)


def test_he2020_sledai_scenario1_by_hand():
    # He 2020 Table 2, IL-2 arm baseline SLEDAI 12 (8-27), n = 30 (the bundled conversion)
    n, a, m, b = 30, 8.0, 12.0, 27.0
    w = 4 / (4 + n ** 0.75)                                   # Luo 2018, S1
    mean_luo = w * m + (1 - w) * (a + b) / 2
    sd_wan = (b - a) / (2 * norm.ppf((n - 0.375) / (n + 0.25)))   # Wan 2014, C1
    mean, sd, method = median_to_mean_sd(m, minimum=a, maximum=b, n=n)
    assert float(mean) == pytest.approx(mean_luo, rel=1e-12)
    assert float(sd) == pytest.approx(sd_wan, rel=1e-12)
    assert str(method) == "Luo 2018 mean + Wan 2014 SD (S1: median, range)"
    assert mean_luo == pytest.approx(16.19, abs=0.01) and sd_wan == pytest.approx(4.656, abs=0.001)
    mean_w, _, method_w = median_to_mean_sd(m, minimum=a, maximum=b, n=n, mean_method="wan2014")
    assert float(mean_w) == pytest.approx((a + 2 * m + b) / 4)       # Wan 2014, C1 mean
    assert str(method_w).startswith("Wan 2014 mean")


def test_scenario2_by_hand():
    n, a, q1, m, q3, b = 100, 1.0, 4.0, 6.0, 9.0, 20.0
    w1 = 2.2 / (2.2 + n ** 0.75)
    w2 = 0.7 - 0.72 / n ** 0.55
    mean_luo = w1 * (a + b) / 2 + w2 * (q1 + q3) / 2 + (1 - w1 - w2) * m
    xi_n = 2 * norm.ppf((n - 0.375) / (n + 0.25))
    eta_n = 2 * norm.ppf((0.75 * n - 0.125) / (n + 0.25))
    sd_wan = (b - a) / (2 * xi_n) + (q3 - q1) / (2 * eta_n)
    mean, sd, method = median_to_mean_sd(m, q1=q1, q3=q3, minimum=a, maximum=b, n=n)
    assert float(mean) == pytest.approx(mean_luo, rel=1e-12)
    assert float(sd) == pytest.approx(sd_wan, rel=1e-12)
    assert "S2" in str(method)
    mean_w, _, _ = median_to_mean_sd(m, q1=q1, q3=q3, minimum=a, maximum=b, n=n, mean_method="wan2014")
    assert float(mean_w) == pytest.approx((a + 2 * q1 + 2 * m + 2 * q3 + b) / 8)


def test_scenario3_by_hand_miao2021_cdasi():
    # Miao 2021 CDASI-a 7 (4.5, 13) with n = 18 (assumed; the bundled INFERRED row)
    n, q1, m, q3 = 18, 4.5, 7.0, 13.0
    w = 0.7 + 0.39 / n
    mean, sd, method = median_to_mean_sd(m, q1=q1, q3=q3, n=n)
    assert float(mean) == pytest.approx(w * (q1 + q3) / 2 + (1 - w) * m, rel=1e-12)
    assert float(sd) == pytest.approx((q3 - q1) / (2 * norm.ppf((0.75 * n - 0.125) / (n + 0.25))), rel=1e-12)
    assert "S3" in str(method)
    mean_w, _, _ = median_to_mean_sd(m, q1=q1, q3=q3, n=n, mean_method="wan2014")
    assert float(mean_w) == pytest.approx((q1 + m + q3) / 3)


@pytest.mark.parametrize("method", ["luo2018", "wan2014"])
def test_symmetric_summaries_give_the_median(method):
    m = np.array([10.0, 10.0, 10.0])
    mean, _, _ = median_to_mean_sd(m, q1=[np.nan, 8, 8], q3=[np.nan, 12, 12],
                                   minimum=[4, 4, np.nan], maximum=[16, 16, np.nan], n=[20, 20, 20],
                                   mean_method=method)
    np.testing.assert_allclose(mean, 10.0, rtol=1e-12)


def test_vectorised_equals_elementwise():
    med = np.array([12.0, 7.0, 6.0, 3.0])
    q1 = np.array([np.nan, 4.5, 4.0, np.nan])
    q3 = np.array([np.nan, 13.0, 9.0, np.nan])
    lo = np.array([8.0, np.nan, 1.0, np.nan])
    hi = np.array([27.0, np.nan, 20.0, np.nan])
    n = np.array([30, 18, 100, 40])
    mean, sd, lab = median_to_mean_sd(med, q1=q1, q3=q3, minimum=lo, maximum=hi, n=n)
    assert list(scenario(q1, q3, lo, hi)) == ["S1", "S3", "S2", ""]
    for i in range(3):
        kw = {k: v[i] for k, v in dict(q1=q1, q3=q3, minimum=lo, maximum=hi).items() if np.isfinite(v[i])}
        m1, s1, l1 = median_to_mean_sd(med[i], n=n[i], **kw)
        assert float(m1) == pytest.approx(mean[i]) and float(s1) == pytest.approx(sd[i])
        assert str(l1) == lab[i]
    assert math.isnan(mean[3]) and math.isnan(sd[3]) and lab[3] == ""


@pytest.mark.parametrize("scen", ["S1", "S2", "S3"])
def test_simulation_recovers_normal_mean_and_sd(scen):
    # large normal samples: the estimators are (nearly) unbiased for N(50, 10^2)
    rng = np.random.default_rng(20140135)
    n, reps = 400, 300
    x = rng.normal(50, 10, size=(reps, n))
    q = np.percentile(x, [0, 25, 50, 75, 100], axis=1)
    kw = {"S1": dict(minimum=q[0], maximum=q[4]), "S2": dict(minimum=q[0], q1=q[1], q3=q[3], maximum=q[4]),
          "S3": dict(q1=q[1], q3=q[3])}[scen]
    mean, sd, _ = median_to_mean_sd(q[2], n=n, **kw)
    assert np.mean(mean) == pytest.approx(50, abs=0.15)
    assert np.mean(sd) == pytest.approx(10, rel=0.03)


def test_errors():
    with pytest.raises(ValueError, match="n .*required"):
        median_to_mean_sd(5, minimum=1, maximum=9)
    with pytest.raises(ValueError, match=">= 2"):
        median_to_mean_sd(5, minimum=1, maximum=9, n=1)
    with pytest.raises(ValueError, match="out of order"):
        median_to_mean_sd(5, q1=6, q3=9, n=10)
    with pytest.raises(ValueError, match="mean_method"):
        median_to_mean_sd(5, q1=4, q3=9, n=10, mean_method="hozo")
