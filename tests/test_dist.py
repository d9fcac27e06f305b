"""metapool.dist: the distribution functions, against scipy.stats and printed table values.

scipy.stats is an independent, well-kept implementation of the same distributions (its
frozen-distribution code, argument order and tail handling); printed values come from
Abramowitz & Stegun, Handbook of Mathematical Functions, tables 26.1, 26.7 and 26.8.
"""
import numpy as np
import pytest
from scipy import stats

from metapool import dist

X = np.array([-3.7, -1.96, -0.3, 0.0, 0.5, 1.2, 2.5, 6.0])
P = np.array([1e-6, 0.001, 0.025, 0.3, 0.5, 0.8, 0.975, 0.999])
DF = [1, 2.5, 4, 10, 30]


def test_normal():
    np.testing.assert_allclose(dist.norm_cdf(X), stats.norm.cdf(X), rtol=1e-14)
    np.testing.assert_allclose(dist.norm_sf(X), stats.norm.sf(X), rtol=1e-14)
    np.testing.assert_allclose(dist.norm_ppf(P), stats.norm.ppf(P), rtol=1e-14)
    assert dist.norm_ppf(0.975) == pytest.approx(1.959963985, abs=1e-9)        # A&S 26.2


@pytest.mark.parametrize("df", DF)
def test_t(df):
    np.testing.assert_allclose(dist.t_cdf(X, df), stats.t.cdf(X, df), rtol=1e-12)
    np.testing.assert_allclose(dist.t_sf(X, df), stats.t.sf(X, df), rtol=1e-12)
    np.testing.assert_allclose(dist.t_ppf(P, df), stats.t.ppf(P, df), rtol=1e-10)


def test_t_table_values():
    assert dist.t_ppf(0.975, 10) == pytest.approx(2.228, abs=5e-4)             # A&S 26.10
    assert dist.t_ppf(0.975, 1) == pytest.approx(12.706, abs=5e-4)


@pytest.mark.parametrize("df", DF)
def test_chi2(df):
    x = np.abs(X) * 2
    np.testing.assert_allclose(dist.chi2_sf(x, df), stats.chi2.sf(x, df), rtol=1e-12)
    np.testing.assert_allclose(dist.chi2_cdf(x, df), stats.chi2.cdf(x, df), rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(dist.chi2_ppf(P, df), stats.chi2.ppf(P, df), rtol=1e-10)


def test_chi2_and_f_table_values():
    assert dist.chi2_ppf(0.95, 1) == pytest.approx(3.841, abs=5e-4)             # A&S 26.8
    assert dist.f_sf(4.96, 1, 10) == pytest.approx(0.05, abs=5e-4)              # F(1,10) 95% = 4.96


def test_f():
    x = np.array([0.1, 1.0, 3.5, 12.0])
    for a, b in ((1, 5), (2, 10), (3.5, 7)):
        np.testing.assert_allclose(dist.f_sf(x, a, b), stats.f.sf(x, a, b), rtol=1e-12)


def test_binomial_and_beta():
    n, p = 29, 0.138
    k = np.arange(0, 30)
    np.testing.assert_allclose(dist.binom_logpmf(k, n, p), stats.binom.logpmf(k, n, p), rtol=1e-12)
    np.testing.assert_allclose(dist.beta_ppf(P, 4, 26), stats.beta.ppf(P, 4, 26), rtol=1e-10)
    # Clopper-Pearson 95% interval of 4/29: exact limits (binom.test in R: 0.0389 to 0.3166)
    assert dist.beta_ppf(0.025, 4, 26) == pytest.approx(0.03891, abs=5e-5)
    assert dist.beta_ppf(0.975, 5, 25) == pytest.approx(0.31665, abs=5e-5)
