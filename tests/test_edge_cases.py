"""Edge cases of fit()/fit_batch(): k = 1, k = 2, identical studies, Fisher-scoring failure,
extreme variance ratios, ragged batches.

Reference numbers were produced with R 4 / metafor 3.8-1; the R call is given beside each
value (``ctrl <- list(threshold = 1e-12, tol = 1e-12, maxiter = 10000, stepadj = 0.5)``).
"""
import warnings
import zlib

import numpy as np
import pytest

from metapool import tau2 as T
from metapool.models import fit, fit_batch

ALL = ("DL", "REML", "ML", "PM", "HE", "SJ", "EB", "HS")


# ----------------------------------------------------------------------------- k = 1
@pytest.mark.parametrize("method", ("FE",) + ALL)
def test_single_study_returns_the_study(method):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = fit([0.4], [0.1], method=method)
    # rma(0.4, 0.1): b 0.4, se 0.316227766016838, ci -0.219795032304562..1.019795032304561,
    # QE 0, QEp 1, I2 0, H2 1, pval 0.205903210732068
    assert r.k == 1 and r.estimate == 0.4 and r.tau2 == 0.0
    assert r.se == pytest.approx(0.316227766016838, rel=1e-12)
    assert r.ci_lb == pytest.approx(-0.219795032304562, rel=1e-12)
    assert r.pval == pytest.approx(0.205903210732068, rel=1e-10)
    assert r.Q == 0 and r.Q_df == 0 and r.Q_pval == 1
    assert np.isnan(r.tau2_ci_lb) and np.isnan(r.tau2_ci_ub) and np.isnan(r.I2_ci_lb)
    assert r.weights.tolist() == [100.0]
    assert any("k = 1" in n for n in r.notes)


def test_single_study_knha_has_no_t_inference():
    r = fit([0.4], [0.1], method="REML", test="knha")
    assert r.estimate == 0.4 and np.isnan(r.pval) and np.isnan(r.ci_lb) and np.isnan(r.df)


# ----------------------------------------------------------------------------- k = 2
# rma(c(0.1, 0.5), c(0.04, 0.09), method = m, control = ctrl): tau2, b, se, I2
K2 = {
    "FE": (0.0, 0.223076923076923, 0.166410058867569, 18.750000000000004),
    "DL": (0.015, 0.2375, 0.189983551919633, 18.75),
    "REML": (0.015, 0.2375, 0.189983551919633, 18.75),
    "ML": (0.0, 0.223076923076923, 0.166410058867569, 0.0),
    "PM": (0.015, 0.2375, 0.189983551919633, 18.75),
    "HE": (0.015, 0.2375, 0.189983551919633, 18.75),
    "SJ": (0.0304761904761905, 0.2476309226932668, 0.2108673229934511, 31.9201995012468842),
    "EB": (0.015, 0.2375, 0.189983551919633, 18.75),
    "HS": (0.0, 0.223076923076923, 0.166410058867569, 0.0),
}


@pytest.mark.parametrize("method", sorted(K2))
def test_two_studies_match_metafor(method):
    r = fit([0.1, 0.5], [0.04, 0.09], method=method)
    tau2, b, se, i2 = K2[method]
    assert r.tau2 == pytest.approx(tau2, abs=1e-10)
    assert r.estimate == pytest.approx(b, rel=1e-8)
    assert r.se == pytest.approx(se, rel=1e-8)
    assert r.I2 == pytest.approx(i2, rel=1e-8, abs=1e-8)
    assert r.Q == pytest.approx(1.230769230769231, rel=1e-12) and r.Q_df == 1
    assert np.isnan(r.tau2_ci_lb)  # metafor's reference gives no Q-profile CI for k < 3


def test_two_studies_knha():
    # rma(c(0.1, 0.5), c(0.04, 0.09), method = "REML", test = "knha"): b, se, ci, pval
    r = fit([0.1, 0.5], [0.04, 0.09], method="REML", test="knha")
    assert r.se == pytest.approx(0.189983551919633, rel=1e-8)
    assert r.ci_lb == pytest.approx(-2.176469907196538, rel=1e-8)
    assert r.ci_ub == pytest.approx(2.651469907196538, rel=1e-8)
    assert r.pval == pytest.approx(0.429526540509035, rel=1e-8)
    assert r.df == 1


def test_two_studies_higgins_pi_is_undefined():
    r = fit([0.1, 0.5], [0.04, 0.09], method="REML", pi_method="higgins")
    assert np.isnan(r.pi_lb) and np.isnan(r.pi_ub)


# ----------------------------------------------------------------------------- identical
@pytest.mark.parametrize("method", ALL)
def test_identical_studies_have_no_heterogeneity(method):
    # rma(c(0.3, 0.3, 0.3), c(0.1, 0.2, 0.3), method = m): tau2 0, b 0.3, se 0.233549683248457,
    # I2 0, H2 1, QE 0; confint: tau2 CI [0, 0]
    r = fit([0.3, 0.3, 0.3], [0.1, 0.2, 0.3], method=method)
    assert r.tau2 == 0.0 and r.I2 == 0.0 and r.H2 == 1.0
    assert r.estimate == pytest.approx(0.3, rel=1e-12)
    assert r.se == pytest.approx(0.233549683248457, rel=1e-10)
    assert r.Q == pytest.approx(0.0, abs=1e-20)
    assert r.tau2_ci_lb == 0.0 and r.tau2_ci_ub == 0.0
    assert r.I2_ci_ub == 0.0 and r.H2_ci_ub == 1.0


def test_identical_studies_knha_zero_variance_as_metafor():
    # rma(..., test = "knha"): RSS <= eps so s2w = 0, se 0, ci.lb 0.3
    r = fit([0.3, 0.3, 0.3], [0.1, 0.2, 0.3], test="knha")
    assert r.se == 0.0 and r.ci_lb == pytest.approx(0.3) and r.pval == 0.0


def test_whole_q_profile_interval_below_zero():
    # rma(c(0.1, 0.11, 0.09, 0.1), rep(0.1, 4)); confint(): tau2, I2, H2 CIs [0, 0], [0, 0], [1, 1]
    r = fit([0.1, 0.11, 0.09, 0.1], [0.1] * 4)
    assert (r.tau2_ci_lb, r.tau2_ci_ub) == (0.0, 0.0)
    assert (r.I2_ci_lb, r.I2_ci_ub, r.H2_ci_lb, r.H2_ci_ub) == (0.0, 0.0, 1.0, 1.0)


def test_q_profile_lower_bound_truncated_at_zero():
    # rma(c(0.1, 0.5, 0.2, 0.8, -0.1), c(0.1, 0.2, 0.15, 0.3, 0.1)); confint(control=list(tol=1e-12))
    r = fit([0.1, 0.5, 0.2, 0.8, -0.1], [0.1, 0.2, 0.15, 0.3, 0.1])
    assert r.tau2 == 0.0 and r.tau2_ci_lb == 0.0
    assert r.tau2_ci_ub == pytest.approx(0.826766679602441, rel=1e-6)
    assert r.I2_ci_ub == pytest.approx(84.796410867553419, rel=1e-6)
    assert r.H2_ci_ub == pytest.approx(6.577394267159328, rel=1e-6)


# ----------------------------------------------------------------------------- Fisher scoring fails
NC_Y = [0.2, 0.04, -0.58, -0.22, -0.73, -0.49]
NC_V = [0.039, 0.355, 0.51, 0.777, 0.017, 0.662]


def test_reml_where_fisher_scoring_oscillates():
    # rma(NC_Y, NC_V, method = "REML") stops: "Fisher scoring algorithm did not converge";
    # with control = ctrl (stepadj = 0.5): tau2 0.166211439153467, b -0.288549968560938,
    # se 0.250029219749082, ci -0.778598234351790..0.201498297229915, I2 61.040171915354158;
    # confint(): tau2 CI 0.00750616487279665..0.670063459352478
    Y, V, m = T._as_batch(np.array([NC_Y]), np.array([NC_V]))
    _, ok = T._fisher(Y, V, m, "REML", 1e-12, 100)
    assert not ok[0], "this data set is meant to defeat plain Fisher scoring"
    r = fit(NC_Y, NC_V, method="REML")
    assert r.tau2 == pytest.approx(0.166211439153467, rel=1e-6)
    assert r.estimate == pytest.approx(-0.288549968560938, rel=1e-6)
    assert r.se == pytest.approx(0.250029219749082, rel=1e-6)
    assert r.ci_ub == pytest.approx(0.201498297229915, rel=1e-6)
    assert r.I2 == pytest.approx(61.040171915354158, rel=1e-6)
    assert r.tau2_ci_lb == pytest.approx(0.00750616487279665, rel=1e-6)
    assert r.tau2_ci_ub == pytest.approx(0.670063459352478, rel=1e-6)
    assert any("did not converge" in n and "bounded search" in n for n in r.notes)
    # the answer is the maximum of the restricted likelihood on a fine grid
    grid = np.linspace(0, 2, 200001)
    ll = T._loglik(np.repeat(Y, grid.size, 0), np.repeat(V, grid.size, 0),
                   np.repeat(m, grid.size, 0), grid, True)
    assert abs(grid[np.argmax(ll)] - r.tau2) <= 1e-5


def test_ml_where_fisher_scoring_oscillates():
    # rma(NC_Y, NC_V, method = "ML", control = ctrl): tau2 0.125575533045971
    assert fit(NC_Y, NC_V, method="ML").tau2 == pytest.approx(0.125575533045971, rel=1e-6)


def test_batch_with_failing_row_matches_single_fit():
    Y = np.array([NC_Y, [0.1, 0.3, 0.2, 0.5, 0.0, 0.4]])
    V = np.array([NC_V, [0.05] * 6])
    b = fit_batch(Y, V, method="REML")
    for i in range(2):
        assert b.tau2[i] == pytest.approx(fit(Y[i], V[i]).tau2, rel=1e-12, abs=1e-15)


# ----------------------------------------------------------------------------- variance ratio 1e6
RATIO_Y = [0.1, 0.9, -0.4, 0.3, 2.5]
RATIO_V = [1e-3, 1e3, 0.05, 0.2, 1]
# rma(RATIO_Y, RATIO_V, method = m, control = ctrl): tau2, b, se
RATIO = {
    "DL": (0.135842974358214, 0.101138602166185, 0.245829257815943),
    "REML": (0.256901476833161, 0.171020150425202, 0.314330424912260),
    "ML": (0.0, 0.0935680374580532, 0.0312195118385398),
    "PM": (0.552912181506499, 0.280723724611927, 0.428861431770184),
    "HE": (0.0, 0.0935680374580532, 0.0312195118385398),
    "SJ": (0.728039591507439, 0.323107030969425, 0.481449687635655),
    "EB": (0.552912181505150, 0.280723724611553, 0.428861431769748),
    "HS": (0.00576821483877044, 0.06731484695467857, 0.07635236159676298),
}


@pytest.mark.parametrize("method", sorted(RATIO))
def test_extreme_variance_ratio(method):
    r = fit(RATIO_Y, RATIO_V, method=method)
    tau2, b, se = RATIO[method]
    rel = 1e-6 if method in ("REML", "ML", "PM", "EB", "SJ") else 1e-8
    assert r.tau2 == pytest.approx(tau2, rel=rel, abs=1e-10)
    assert r.estimate == pytest.approx(b, rel=rel)
    assert r.se == pytest.approx(se, rel=rel)
    assert np.all(np.isfinite(r.weights)) and r.weights.sum() == pytest.approx(100)


# ----------------------------------------------------------------------------- batch == fit
FIELDS = ("estimate", "se", "stat", "pval", "ci_lb", "ci_ub", "pi_lb", "pi_ub", "tau2", "Q",
          "Q_pval", "I2", "H2", "df")


@pytest.mark.parametrize("method", ("FE",) + ALL)
@pytest.mark.parametrize("test", ("z", "knha"))
def test_fit_batch_equals_fit_row_by_row_ragged(method, test):
    rng = np.random.default_rng(zlib.crc32(f"{method}{test}".encode()))
    B, kmax = 25, 9
    V = rng.uniform(0.01, 1.0, (B, kmax))
    Y = rng.normal(0.2, np.sqrt(V + 0.15))
    ks = rng.integers(1, kmax + 1, B)
    ks[:3] = (1, 2, kmax)
    mask = np.arange(kmax)[None, :] < ks[:, None]
    Yg = np.where(mask, Y, 1e9)  # garbage where masked: must be ignored
    Vg = np.where(mask, V, -1.0)
    b = fit_batch(Yg, Vg, mask, method=method, test=test)
    assert len(b) == B
    for i in range(B):
        r = fit(Y[i, :ks[i]], V[i, :ks[i]], method=method, test=test)
        assert b.k[i] == r.k
        for f in FIELDS:
            np.testing.assert_allclose(getattr(b, f)[i], getattr(r, f), rtol=1e-10, atol=1e-10,
                                       err_msg=f"row {i} field {f}")


def test_fit_batch_arrays_are_read_only():
    b = fit_batch(np.array([[0.1, 0.2, 0.4]]), np.array([[0.1, 0.1, 0.2]]))
    with pytest.raises(ValueError):
        b.estimate[0] = 1.0


# ----------------------------------------------------------------------------- input errors
@pytest.mark.parametrize("yi, vi, match", [
    ([0.1, 0.2], [0.1, 0.0], "vi"),
    ([0.1, 0.2], [0.1, -1.0], "vi"),
    ([0.1, np.nan], [0.1, 0.1], "yi"),
    ([0.1, 0.2], [0.1], "length|shape"),
])
def test_invalid_input_is_rejected_clearly(yi, vi, match):
    with pytest.raises(ValueError, match=match):
        fit(yi, vi)


def test_unknown_method_and_test():
    with pytest.raises(ValueError, match="method"):
        fit([0.1, 0.2], [0.1, 0.1], method="XYZ")
    with pytest.raises(ValueError, match="test"):
        fit([0.1, 0.2], [0.1, 0.1], test="wald")
