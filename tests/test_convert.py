"""Median/range/IQR -> mean/SD conversion (metapool.convert) against R package meta 6.5-0.

Outside references only:

* ``conversion_cases.json`` -- 480 cases computed with R meta 6.5-0 (``meta:::mean_sd_range``,
  ``meta:::mean_sd_iqr``, ``meta:::mean_sd_iqr_range``; regenerate with
  ``Rscript tests/make_conversion_cases.R shared tests/conversion_cases.json``);
* ``wan2014_tables.json`` -- Wan et al. (2014) Tables 1 and 2 as meta stores them;
* the exact expected range and interquartile range of n standard normal observations (numerical
  integration of the order-statistic densities), and exact limits (symmetric summaries give
  ``mean = median``; ``eta(n) -> 2 Phi^-1(0.75)``; Luo's S1 weight on the mid-range -> 0).

No formula is re-implemented here.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import integrate
from scipy.special import gammaln, log_ndtr, ndtr, ndtri

from metapool.convert import (WAN2014_TABLE1, WAN2014_TABLE2, conversion_label, eta,
                              median_to_mean_sd, scenario, xi)

HERE = Path(__file__).resolve().parent
REF = json.loads((HERE / "conversion_cases.json").read_text())
CASES = REF["cases"]
TABLES = json.loads((HERE / "wan2014_tables.json").read_text())
T1 = np.array(TABLES["xi_table1_n_1_to_50"])   # index n - 1
T2 = np.array(TABLES["eta_table2_Q_1_to_50"])  # index Q - 1, Q = (n - 1) / 4
MEAN = {"Luo": "luo2018", "Wan": "wan2014"}
SD = {"Shi": "shi2020", "Wan": "wan2014"}
RTOL = 1e-8  # relative; the smallest |reference| is 2.06 (mean) and 0.63 (SD)


def _kw(case):
    return {k: case[c] for k, c in (("q1", "q1"), ("q3", "q3"), ("minimum", "min"), ("maximum", "max"))
            if c in case}


def test_reference_file_is_meta_6_5_0_with_480_cases():
    assert REF["meta"]["generator"] == "meta" and REF["meta"]["version"] == "6.5.0"
    assert len(CASES) == 480 and len({c["id"] for c in CASES}) == 480
    combos = {(c["scenario"], c["method_mean"], c["method_sd"]) for c in CASES}
    assert combos == {("S1", "Luo", "Wan"), ("S1", "Wan", "Wan"), ("S3", "Luo", "Wan"), ("S3", "Wan", "Wan"),
                      ("S2", "Luo", "Shi"), ("S2", "Luo", "Wan"), ("S2", "Wan", "Shi"), ("S2", "Wan", "Wan")}


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_matches_r_meta(case):
    mean, sd = median_to_mean_sd(case["median"], n=case["n"], mean_method=MEAN[case["method_mean"]],
                                 sd_method=SD[case["method_sd"]], **_kw(case))
    assert float(mean) == pytest.approx(case["mean"], rel=RTOL, abs=0)
    assert float(sd) == pytest.approx(case["sd"], rel=RTOL, abs=0)
    assert str(scenario(**_kw(case))) == case["scenario"]
    # meta's metacont defaults: method.mean = "Luo", method.sd = "Shi" (Shi applies in S2 only)
    if case["method_mean"] == "Luo" and (case["method_sd"] == "Shi" or case["scenario"] != "S2"):
        m0, s0 = median_to_mean_sd(case["median"], n=case["n"], **_kw(case))
        assert float(m0) == pytest.approx(case["mean"], rel=RTOL, abs=0)
        assert float(s0) == pytest.approx(case["sd"], rel=RTOL, abs=0)


@pytest.mark.parametrize("mm,ms", [("Luo", "Shi"), ("Luo", "Wan"), ("Wan", "Shi"), ("Wan", "Wan")])
def test_vectorised_over_mixed_scenarios_matches_r_meta(mm, ms):
    # one call over all three scenarios (S1/S3 rows are the same under either SD method)
    sel = [c for c in CASES if c["method_mean"] == mm and (c["method_sd"] == ms or c["scenario"] != "S2")]
    col = {k: np.array([c.get(k, np.nan) for c in sel], dtype=float)
           for k in ("median", "q1", "q3", "min", "max", "n", "mean", "sd")}
    mean, sd = median_to_mean_sd(col["median"], q1=col["q1"], q3=col["q3"], minimum=col["min"],
                                 maximum=col["max"], n=col["n"], mean_method=MEAN[mm], sd_method=SD[ms])
    assert mean.shape == sd.shape == (len(sel),) == (180,)
    np.testing.assert_allclose(mean, col["mean"], rtol=RTOL, atol=0)
    np.testing.assert_allclose(sd, col["sd"], rtol=RTOL, atol=0)
    assert list(scenario(col["q1"], col["q3"], col["min"], col["max"])) == [c["scenario"] for c in sel]


# --- Wan 2014 constants -------------------------------------------------------------------------

def test_tables_are_the_stored_meta_tables():
    np.testing.assert_array_equal(WAN2014_TABLE1, T1)
    np.testing.assert_array_equal(WAN2014_TABLE2, T2)


def _expected_range(n):
    """E[max - min] of n iid N(0, 1) = integral of 1 - Phi(x)^n - (1 - Phi(x))^n."""
    return integrate.quad(lambda x: 1.0 - ndtr(x) ** n - ndtr(-x) ** n, -np.inf, np.inf, limit=200)[0]


def _expected_order_stat(r, n):
    """E[X_(r)] of n iid N(0, 1), by integrating x times the density of the r-th order statistic."""
    logc = gammaln(n + 1) - gammaln(r) - gammaln(n - r + 1)
    f = lambda x: x * np.exp(logc + (r - 1) * log_ndtr(x) + (n - r) * log_ndtr(-x)  # noqa: E731
                             - x * x / 2) / math.sqrt(2 * math.pi)
    return integrate.quad(f, -np.inf, np.inf, limit=200)[0]


def test_table1_is_the_exact_expected_range_to_print_precision():
    # Table 1 prints E[range of n normals] to 3 decimals (largest gap 5.4e-4 at n = 12)
    exact = np.array([_expected_range(n) for n in range(2, 51)])
    np.testing.assert_allclose(T1[1:], exact, atol=6e-4, rtol=0)
    assert _expected_range(2) == pytest.approx(2 / math.sqrt(math.pi), rel=1e-10)   # E|Z1 - Z2|


def test_table2_is_the_exact_expected_iqr_to_print_precision():
    # Table 2: E[X_(3Q+1) - X_(Q+1)] for n = 4Q + 1 normals, 3 decimals (largest gap 5.3e-4, Q = 12)
    exact = np.array([_expected_order_stat(3 * q + 1, 4 * q + 1) - _expected_order_stat(q + 1, 4 * q + 1)
                      for q in range(1, 51)])
    np.testing.assert_allclose(T2, exact, atol=6e-4, rtol=0)


def test_xi_and_eta_read_the_tables_at_their_defining_n():
    n = np.arange(2, 51)
    np.testing.assert_array_equal(xi(n), T1[n - 1])
    q = np.arange(1, 51)
    np.testing.assert_array_equal(eta(4 * q + 1), T2[q - 1])


def test_closed_forms_meet_the_tables_where_meta_switches():
    # xi: Table 1 up to n = 50, closed form from 51; eta: Table 2 up to n = 201 (Q = 50), closed from 202
    assert xi(50) == T1[49] and xi(51) != T1[49]
    assert xi(51) == pytest.approx(T1[49], rel=3e-3)              # 4.5019 vs 4.498
    assert xi(51) == pytest.approx(_expected_range(51), rel=3e-3)
    assert eta(201) == T2[49] and eta(202) != T2[49]
    assert eta(202) == pytest.approx(T2[49], rel=1e-3)            # 1.3393 vs 1.340
    assert xi(51) > xi(50) and np.all(np.diff(xi(np.arange(51, 400))) > 0)


def test_eta_limit():
    assert eta(10 ** 8) == pytest.approx(2 * ndtri(0.75), rel=1e-7)   # IQR of N(0, 1) = 1.34898


# --- exact limits -------------------------------------------------------------------------------

@pytest.mark.parametrize("mean_method", ["luo2018", "wan2014"])
@pytest.mark.parametrize("sd_method", ["shi2020", "wan2014"])
@pytest.mark.parametrize("n", [2, 7, 30, 51, 202, 5000])
def test_symmetric_summaries_give_the_median(mean_method, sd_method, n):
    mean, sd = median_to_mean_sd([10.0, 10.0, 10.0], q1=[np.nan, 8, 8], q3=[np.nan, 12, 12],
                                 minimum=[4, 4, np.nan], maximum=[16, 16, np.nan], n=n,
                                 mean_method=mean_method, sd_method=sd_method)
    np.testing.assert_allclose(mean, 10.0, rtol=1e-14)
    assert np.all(sd > 0)


def test_luo_s1_weight_on_midrange_vanishes_for_large_n():
    # Luo 2018 S1: w (a + b)/2 + (1 - w) m with w = 4/(4 + n^0.75) -> 0: mean -> median
    m_small, _ = median_to_mean_sd(12, minimum=8, maximum=28, n=2)   # mid-range 18
    m_big, _ = median_to_mean_sd(12, minimum=8, maximum=28, n=10 ** 12)
    assert 15 < float(m_small) < 18                                   # most weight on the mid-range
    assert float(m_big) == pytest.approx(12, abs=1e-7)              # w * 6 = 2.4e-8


def test_range_equal_to_expected_range_gives_unit_sd():
    # a range of exactly xi(n) standard deviations (Table 1) gives SD = 1, for every tabulated n
    n = np.arange(2, 51)
    _, sd = median_to_mean_sd(0.0, minimum=-T1[n - 1] / 2, maximum=T1[n - 1] / 2, n=n)
    np.testing.assert_allclose(sd, 1.0, rtol=1e-14)
    q = np.arange(1, 51)
    _, sd = median_to_mean_sd(0.0, q1=-T2[q - 1] / 2, q3=T2[q - 1] / 2, n=4 * q + 1)
    np.testing.assert_allclose(sd, 1.0, rtol=1e-14)


# --- labels, scenarios, vectorisation, errors ---------------------------------------------------

def test_labels():
    q1, q3, lo, hi = [np.nan, 4, 4, np.nan], [np.nan, 9, 9, np.nan], [1, 1, np.nan, np.nan], [20, 20, np.nan, np.nan]
    assert list(scenario(q1, q3, lo, hi)) == ["S1", "S2", "S3", ""]
    assert list(conversion_label(q1, q3, lo, hi)) == [
        "Luo 2018 mean + Wan 2014 SD (S1: median, range)",
        "Luo 2018 mean + Shi 2020 SD (S2: median, IQR, range)",
        "Luo 2018 mean + Wan 2014 SD (S3: median, IQR)", ""]
    assert list(conversion_label(q1, q3, lo, hi, mean_method="wan2014", sd_method="wan2014")) == [
        "Wan 2014 mean + Wan 2014 SD (S1: median, range)",
        "Wan 2014 mean + Wan 2014 SD (S2: median, IQR, range)",
        "Wan 2014 mean + Wan 2014 SD (S3: median, IQR)", ""]
    assert conversion_label(minimum=8, maximum=27).item() == "Luo 2018 mean + Wan 2014 SD (S1: median, range)"


def test_no_scenario_gives_nan_and_missing_median_gives_nan_mean():
    mean, sd = median_to_mean_sd([3.0, np.nan], minimum=[np.nan, 1], maximum=[np.nan, 9], n=40)
    assert math.isnan(mean[0]) and math.isnan(sd[0])
    assert math.isnan(mean[1]) and sd[1] > 0


def test_scalar_inputs_give_0d_arrays():
    mean, sd = median_to_mean_sd(12, minimum=8, maximum=27, n=30)
    assert np.ndim(mean) == 0 and np.ndim(sd) == 0


@pytest.mark.parametrize("kw,fragment", [
    (dict(minimum=1, maximum=9), "n .*required"),
    (dict(minimum=1, maximum=9, n=1), ">= 2"),
    (dict(minimum=1, maximum=9, n=[10, 0]), r"element\(s\) \[1\]"),
    (dict(minimum=1, maximum=9, n=10.5), "whole number"),
    (dict(minimum=1, maximum=9, n=np.nan), "whole number"),
    (dict(q1=6, q3=9, n=10), "q1 > median"),
    (dict(q1=1, q3=4, n=10), "median > q3"),
    (dict(minimum=6, maximum=9, n=10), "minimum > median"),
    (dict(minimum=1, maximum=4, n=10), "median > maximum"),
    (dict(q1=2, q3=9, minimum=3, maximum=10, n=10), "minimum > q1"),
    (dict(q1=2, q3=9, minimum=1, maximum=8, n=10), "q3 > maximum"),
    (dict(q1=4, q3=9, n=10, mean_method="hozo"), "mean_method"),
    (dict(q1=4, q3=9, n=10, sd_method="bland"), "sd_method"),
])
def test_errors(kw, fragment):
    with pytest.raises(ValueError, match=fragment):
        median_to_mean_sd(5, **kw)


def test_label_rejects_unknown_method():
    with pytest.raises(ValueError, match="sd_method"):
        conversion_label(q1=1, q3=2, sd_method="hozo")
