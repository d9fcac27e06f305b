"""metapool.models.fit: worked examples against R metafor 3.8-1 and internal consistency.

R calls are given beside the hard-coded numbers;
``ctrl <- list(threshold = 1e-12, tol = 1e-12, maxiter = 10000, stepadj = 0.5)``.
"""
import math

import numpy as np
import pytest
from scipy import stats

from conftest import load_cases, rows_frame
from metapool.models import BatchFit, fit, fit_batch
from metapool.results import EffectSizes, MetaResult, result_from_dict


def _case(name):
    return next(c for c in load_cases() if c["case"] == name)


def _normand_md():
    """dat.normand1999 length of stay: mean difference computed here by hand."""
    d = rows_frame(_case("normand1999_MD_REML_z"))
    yi = (d.mean_treat - d.mean_ctrl).to_numpy(float)
    vi = (d.sd_treat ** 2 / d.n_treat + d.sd_ctrl ** 2 / d.n_ctrl).to_numpy(float)
    return yi, vi, tuple(d.study)


def _bcg():
    e = _case("bcg_RR_REML_z")["expected"]
    return np.array(e["yi"]), np.array(e["vi"])


def test_normand1999_worked_example():
    # rma(measure = "MD", m1i, sd1i, n1i, m2i, sd2i, n2i, data = dat.normand1999, method = "REML",
    #     control = ctrl); predict(); confint(control = list(tol = 1e-12))
    yi, vi, study = _normand_md()
    r = fit(yi, vi, method="REML", measure="MD", study=study)
    assert r.k == 9 and r.study == study
    assert r.estimate == pytest.approx(-15.10602747347830, rel=1e-6)
    assert r.se == pytest.approx(8.94655283975496, rel=1e-6)
    assert r.ci_lb == pytest.approx(-32.64094882518257, rel=1e-6)
    assert r.ci_ub == pytest.approx(2.42889387822596, rel=1e-6)
    assert r.stat == pytest.approx(-1.6884746274959737, rel=1e-6)
    assert r.pval == pytest.approx(0.0913201554907159, rel=1e-6)
    assert r.pi_lb == pytest.approx(-69.3048601748839985, rel=1e-6)
    assert r.pi_ub == pytest.approx(39.0928052279273857, rel=1e-6)
    assert r.tau2 == pytest.approx(684.64615192966710, rel=1e-6)
    assert r.I2 == pytest.approx(98.97127434739059, rel=1e-8)
    assert r.H2 == pytest.approx(97.2076469040549824, rel=1e-6)
    assert r.Q == pytest.approx(238.91581086200961, rel=1e-10)
    assert (r.tau2_ci_lb, r.tau2_ci_ub) == pytest.approx((292.9181216569123, 2889.4513491216198), rel=1e-6)
    assert (r.I2_ci_lb, r.I2_ci_ub) == pytest.approx((97.6281597138514, 99.7543182497626), rel=1e-6)
    assert (r.H2_ci_lb, r.H2_ci_ub) == pytest.approx((42.1613548703071, 407.0306398556892), rel=1e-6)


def test_normand1999_knha():
    # same, test = "knha": se, ci.lb, ci.ub, pval
    yi, vi, _ = _normand_md()
    r = fit(yi, vi, method="REML", test="knha")
    assert r.se == pytest.approx(9.198908746625184, rel=1e-6)
    assert r.ci_lb == pytest.approx(-36.318749082561752, rel=1e-6)
    assert r.ci_ub == pytest.approx(6.106694135605146, rel=1e-6)
    assert r.pval == pytest.approx(0.139184037260034, rel=1e-6)
    assert r.df == 8
    assert fit(yi, vi, method="REML", test="hksj").se == r.se  # alias


def test_bcg_level_90():
    # dat <- escalc("RR", ai = tpos, bi = tneg, ci = cpos, di = cneg, data = dat.bcg)
    # r <- rma(yi, vi, data = dat, level = 90, control = ctrl); predict(r); confint(r)
    yi, vi = _bcg()
    r = fit(yi, vi, method="REML", level=0.90, measure="RR")
    assert r.level == 0.90
    assert r.ci_lb == pytest.approx(-1.010246620982995, rel=1e-6)
    assert r.ci_ub == pytest.approx(-0.418818063333428, rel=1e-6)
    assert r.pi_lb == pytest.approx(-1.681455390437486, rel=1e-6)
    assert r.pi_ub == pytest.approx(0.252390706121063, rel=1e-6)
    assert r.tau2_ci_lb == pytest.approx(0.141002241583160, rel=1e-6)
    assert r.tau2_ci_ub == pytest.approx(0.909805471952732, rel=1e-6)
    assert r.I2_ci_ub == pytest.approx(97.177906538645118, rel=1e-6)
    assert fit(yi, vi, level=90).ci_lb == r.ci_lb  # metafor also accepts percentages


def test_higgins_prediction_interval():
    # r <- rma(yi, vi, data = dat, control = ctrl); h <- qt(0.975, r$k - 2) * sqrt(r$tau2 + r$se^2)
    yi, vi = _bcg()
    r = fit(yi, vi, method="REML", pi_method="higgins")
    assert r.pi_method == "higgins"
    assert r.pi_lb == pytest.approx(-2.008375906924258, rel=1e-6)
    assert r.pi_ub == pytest.approx(0.579311222607835, rel=1e-6)
    assert any("Higgins" in n for n in r.notes)
    m = fit(yi, vi, method="REML")
    assert m.pi_ub - m.pi_lb < r.pi_ub - r.pi_lb  # normal quantile < t(k-2) quantile


def test_prediction_interval_formula_knha():
    yi, vi = _bcg()
    r = fit(yi, vi, method="DL", test="knha")
    half = stats.t.isf(0.025, r.k - 1) * math.sqrt(r.se ** 2 + r.tau2)
    assert (r.pi_lb, r.pi_ub) == pytest.approx((r.estimate - half, r.estimate + half), rel=1e-12)


def test_fixed_effect_by_hand():
    yi, vi = _bcg()
    r = fit(yi, vi, method="FE")
    w = 1 / vi
    mu = np.sum(w * yi) / w.sum()
    q = np.sum(w * (yi - mu) ** 2)
    assert r.estimate == pytest.approx(mu, rel=1e-12)
    assert r.se == pytest.approx(w.sum() ** -0.5, rel=1e-12)
    assert r.Q == pytest.approx(q, rel=1e-12) and r.Q_df == len(yi) - 1
    assert r.I2 == pytest.approx(100 * (q - (len(yi) - 1)) / q, rel=1e-12)
    assert r.H2 == pytest.approx(q / (len(yi) - 1), rel=1e-12)
    np.testing.assert_allclose(r.weights, 100 * w / w.sum(), rtol=1e-12)
    assert np.isnan(r.pi_lb) and not r.is_random


def test_random_effects_i2_uses_typical_variance():
    yi, vi = _bcg()
    r = fit(yi, vi, method="PM")
    w = 1 / vi
    s2 = (len(yi) - 1) * w.sum() / (w.sum() ** 2 - (w ** 2).sum())
    assert r.I2 == pytest.approx(100 * r.tau2 / (r.tau2 + s2), rel=1e-12)
    assert r.H2 == pytest.approx(1 + r.tau2 / s2, rel=1e-12)
    wr = 1 / (vi + r.tau2)
    np.testing.assert_allclose(r.weights, 100 * wr / wr.sum(), rtol=1e-12)


def test_accepts_effect_sizes_and_keeps_labels_and_ni():
    d = rows_frame(_case("pritz1997_PLO_REML_z"))
    e = _case("pritz1997_PLO_REML_z")["expected"]
    es = EffectSizes(measure="PLO", kind="proportion", study=tuple(d.study), yi=e["yi"], vi=e["vi"],
                     ni=d.total.to_numpy(float), notes=("from test",))
    r = fit(es, method="REML")
    assert isinstance(r, MetaResult)
    assert r.measure == "PLO" and r.study == es.study and r.ni is not None
    assert "from test" in r.notes
    assert r.estimate == pytest.approx(e["estimate"], rel=1e-6)
    back = r.reporting()
    assert back["estimate"] == pytest.approx(e["back"]["estimate"], rel=1e-6)


def test_result_round_trips_through_dict():
    yi, vi = _bcg()
    r = fit(yi, vi, method="REML", measure="RR")
    r2 = result_from_dict(r.to_dict())
    assert r2.estimate == r.estimate and r2.tau2_ci_ub == r.tau2_ci_ub and r2.notes == r.notes


def test_fit_uses_the_batch_core():
    yi, vi = _bcg()
    b = fit_batch(yi[None], vi[None], method="SJ", test="knha")
    r = fit(yi, vi, method="SJ", test="knha")
    assert isinstance(b, BatchFit)
    for f in ("estimate", "se", "pval", "ci_lb", "pi_ub", "tau2", "I2", "H2", "Q_pval"):
        assert getattr(b, f)[0] == getattr(r, f), f


def test_batch_frame():
    yi, vi = _bcg()
    b = fit_batch(np.vstack([yi, yi[::-1]]), np.vstack([vi, vi[::-1]]), method="DL")
    df = b.to_frame()
    assert len(df) == 2 and {"estimate", "tau2", "I2"} <= set(df.columns)
    assert df.estimate[0] == pytest.approx(df.estimate[1], rel=1e-12)  # order does not matter


def test_leave_one_out_via_mask_matches_metafor():
    # metafor leave1out(rma(yi, vi, data = dat.bcg escalc RR, method = "REML")) in the bias case
    case = _case("bcg_RR_bias")
    l1 = case["expected"]["leave1out_REML"]
    yi, vi = _bcg()
    k = len(yi)
    mask = ~np.eye(k, dtype=bool)
    b = fit_batch(np.tile(yi, (k, 1)), np.tile(vi, (k, 1)), mask, method="REML")
    np.testing.assert_allclose(b.estimate, l1["estimate"], rtol=1e-6)
    np.testing.assert_allclose(b.tau2, l1["tau2"], rtol=1e-6, atol=1e-10)
    np.testing.assert_allclose(b.I2, l1["I2"], rtol=1e-6, atol=1e-8)


def test_distribution_shortcuts_equal_scipy_stats():
    """models calls scipy.special directly; it must give scipy.stats' numbers (NaN df -> NaN)."""
    from scipy import stats

    from metapool import models as M

    df = np.array([1.0, 2.0, 3.0, 7.0, 29.0, 250.0, np.nan])
    x = np.array([0.0, 0.3, 1.96, 4.0, 12.0, np.inf, 1.0])
    for q in (0.25, 0.05, 0.025, 0.005):
        assert M._norm_isf(q) == pytest.approx(stats.norm.isf(q), rel=1e-15)
        np.testing.assert_allclose(M._t_isf(q, df), stats.t.isf(q, df), rtol=1e-15)
    np.testing.assert_allclose(M._norm_sf(x), stats.norm.sf(x), rtol=1e-15)
    np.testing.assert_allclose(M._t_sf(x, df), stats.t.sf(x, df), rtol=1e-15)
    np.testing.assert_allclose(M._chi2_sf(x[:-2], df[:-2]), stats.chi2.sf(x[:-2], df[:-2]), rtol=1e-15)
    from metapool import tau2 as T

    hi, lo = T._chi2_quantiles(0.05, df[:-1])
    np.testing.assert_allclose(hi, stats.chi2.isf(0.025, df[:-1]), rtol=1e-15)
    np.testing.assert_allclose(lo, stats.chi2.ppf(0.025, df[:-1]), rtol=1e-15)


def test_batch_pvalues_are_scipy_stats_and_read_only():
    """pval and Q_pval of a BatchFit (computed on first access) are scipy.stats' tail areas."""
    rng = np.random.default_rng(8)
    V = rng.uniform(0.01, 0.3, (30, 7))
    Y = rng.normal(0.1, np.sqrt(V + 0.1))
    M = np.arange(7)[None, :] < rng.integers(1, 8, 30)[:, None]
    for test in ("z", "knha"):
        b = fit_batch(Y, V, M, method="REML", test=test)
        k = b.k
        with np.errstate(divide="ignore"):  # k = 1 under knha: se = 0
            z = np.abs(b.estimate / b.se)
        if test == "z":
            want = 2 * stats.norm.sf(z)
        else:
            want = 2 * stats.t.sf(z, np.where(k > 1, k - 1, np.nan))
        np.testing.assert_allclose(b.pval, want, rtol=1e-12)
        np.testing.assert_allclose(b.Q_pval, np.where(k > 1, stats.chi2.sf(b.Q, np.maximum(k - 1, 1)), 1.0),
                                   rtol=1e-12)
        for f in ("pval", "Q_pval"):
            with pytest.raises(ValueError):
                getattr(b, f)[0] = 0.5
        assert list(b.to_frame().columns)[:5] == ["k", "estimate", "se", "stat", "pval"]


def test_knha_critical_values_per_distinct_df():
    """t quantiles computed once per distinct df (ragged batches) equal scipy.stats' per row."""
    rng = np.random.default_rng(9)
    V = rng.uniform(0.01, 0.3, (200, 9))
    Y = rng.normal(0.1, np.sqrt(V + 0.1))
    M = np.arange(9)[None, :] < rng.integers(2, 10, 200)[:, None]
    b = fit_batch(Y, V, M, method="DL", test="knha", level=0.9)
    crit = stats.t.isf(0.05, b.k - 1)
    np.testing.assert_allclose(b.ci_ub, b.estimate + crit * b.se, rtol=1e-12)
