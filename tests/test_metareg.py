"""Meta-regression against R metafor 3.8-1 ``rma(yi, vi, mods = ...)`` (tests/metafor_cases_analyses.json)."""
import numpy as np
import pandas as pd
import pytest

from conftest import TESTS, assert_close, cases_where
from metapool.metareg import design_matrix, meta_regression, residual_tau2

ANALYSES = TESTS / "metafor_cases_analyses.json"
CLOSED = {"FE", "DL", "HE", "HS", "SJ"}


def _fit(case):
    rows = pd.DataFrame(case["rows"])
    cols = list(case["args"]["numeric"] if isinstance(case["args"]["numeric"], list)
                else [case["args"]["numeric"]]) + \
        list(case["args"]["categorical"] if isinstance(case["args"]["categorical"], list)
             else [case["args"]["categorical"]])
    return meta_regression(rows.yi, rows.vi, rows[cols], method=case["method"], test=case["test"],
                           study=rows.study)


@pytest.mark.parametrize("case", cases_where(lambda c: c["analysis"] == "metareg", ANALYSES))
def test_metareg_matches_metafor(case):
    e = case["expected"]
    res = _fit(case)
    rel = 1e-8 if case["method"] in CLOSED else 1e-6
    assert list(res.coef) == list(np.atleast_1d(e["coef"]))
    assert res.k == e["k"] and res.p == e["p"]
    for ours, theirs in [("estimate", "estimate"), ("se", "se"), ("stat", "stat"), ("pval", "pval"),
                         ("ci_lb", "ci_lb"), ("ci_ub", "ci_ub"), ("QM", "QM"), ("QM_df", "QM_df"),
                         ("QM_df2", "QM_df2"), ("QM_pval", "QMp"), ("tau2", "tau2"), ("I2", "I2"),
                         ("H2", "H2"), ("R2", "R2"), ("QE", "QE"), ("QE_df", "QE_df"),
                         ("QE_pval", "QEp"), ("df", "df")]:
        assert_close(getattr(res, ours), e[theirs], rel=rel, abs_=1e-9, what=ours)


def test_design_matrix_treatment_coding_and_names():
    X, names = design_matrix(pd.DataFrame({"dose": [1.0, 2.0, 3.0, 4.0],
                                           "arm": ["b", "a", "c", "a"]}))
    assert names == ("intrcpt", "dose", "armb", "armc")
    np.testing.assert_array_equal(X[:, 2], [1, 0, 0, 0])
    np.testing.assert_array_equal(X[:, 3], [0, 0, 1, 0])
    X0, names0 = design_matrix({"arm": ["b", "a", "c", "a"]}, intercept=False)
    assert names0 == ("arma", "armb", "armc")
    assert (X0.sum(axis=1) == 1).all()


def test_design_matrix_errors_are_explicit():
    with pytest.raises(ValueError, match="collinear"):
        design_matrix({"a": [1.0, 2, 3], "b": [2.0, 4, 6]}, intercept=False)
    with pytest.raises(ValueError, match="missing for row"):
        design_matrix(pd.DataFrame({"a": [1.0, np.nan, 3]}))
    with pytest.raises(ValueError, match="single level"):
        design_matrix({"g": ["x", "x", "x"]})
    with pytest.raises(ValueError, match="cannot estimate"):
        meta_regression([0.1, 0.2], [0.1, 0.1], {"a": [1.0, 2.0], "g": ["u", "v"]})


def test_intercept_only_reduces_to_random_effects_model(bcg_rows=None):
    """With X = 1 the REML meta-regression is the ordinary random-effects model: the pooled
    estimate must equal the inverse-variance mean with weights 1/(vi + tau2) and QE is Cochran's Q."""
    rng = np.random.default_rng(3)
    y = rng.normal(0.3, 0.4, 12)
    v = rng.uniform(0.02, 0.2, 12)
    res = meta_regression(y, v, X=np.ones((12, 1)), coef_names=["intrcpt"], method="REML")
    w = 1 / (v + res.tau2)
    assert res.estimate[0] == pytest.approx(np.sum(w * y) / w.sum(), rel=1e-12)
    w0 = 1 / v
    mu0 = np.sum(w0 * y) / w0.sum()
    assert res.QE == pytest.approx(np.sum(w0 * (y - mu0) ** 2), rel=1e-12)
    # the REML score is zero at the estimate (interior solution) or tau2 = 0
    if res.tau2 > 0:
        P_y = w * (y - res.estimate[0])
        trP = w.sum() - (w**2).sum() / w.sum()
        assert P_y @ P_y == pytest.approx(trP, rel=1e-8)


def test_pm_and_eb_agree_and_solve_generalised_q():
    """PM and EB share their fixed point y'Py = k - p (two different algorithms)."""
    rng = np.random.default_rng(11)
    k = 15
    x = rng.uniform(0, 10, k)
    y = 0.2 + 0.05 * x + rng.normal(0, 0.3, k)
    v = rng.uniform(0.01, 0.1, k)
    X = np.column_stack([np.ones(k), x])
    t_pm, _ = residual_tau2(y, v, X, "PM")
    t_eb, _ = residual_tau2(y, v, X, "EB")
    assert t_pm > 0
    assert t_eb == pytest.approx(t_pm, rel=1e-8)
    w = 1 / (v + t_pm)
    Xw = X.T * w
    b = np.linalg.solve(Xw @ X, Xw @ y)
    assert np.sum(w * (y - X @ b) ** 2) == pytest.approx(k - 2, rel=1e-8)


def test_predict_and_frames():
    rows = pd.DataFrame([r for c in cases_where(lambda c: c["case"] == "bcg_ablat_REML_z", ANALYSES)
                         for r in c.values[0]["rows"]])
    res = meta_regression(rows.yi, rows.vi, rows[["ablat"]], study=rows.study)
    pr = res.predict(np.column_stack([np.ones(2), [20.0, 50.0]]))
    assert np.allclose(pr["pred"], res.estimate[0] + res.estimate[1] * np.array([20.0, 50.0]))
    assert (pr["ci_lb"] < pr["pred"]).all() and (pr["pi_lb"] < pr["ci_lb"]).all()
    tab = res.to_frame()
    assert list(tab.coef) == ["intrcpt", "ablat"]
    assert res.coefficients()[1]["coef"] == "ablat" and res.k == 13
    assert type(res).from_dict(res.to_dict()).same_as(res)
    with pytest.raises(ValueError, match="columns"):
        res.predict(np.ones((1, 3)))


def test_bubble_plot_is_deterministic_and_atomic(tmp_path):
    from metapool.plots.diagnostics import build_bubble, bubble_plot

    case = cases_where(lambda c: c["case"] == "bcg_ablat_REML_z", ANALYSES)[0].values[0]
    rows = pd.DataFrame(case["rows"])
    res = meta_regression(rows.yi, rows.vi, rows[["ablat"]], study=rows.study)
    fig = build_bubble(res, measure="RR", back=True)
    ax = fig.axes[0]
    offsets = ax.collections[-1].get_offsets()
    assert len(offsets) == res.k                                  # one bubble per study
    np.testing.assert_allclose(np.asarray(offsets)[:, 1], np.exp(res.yi))
    a = bubble_plot(res, tmp_path / "one" / "bubble", measure="RR")
    b = bubble_plot(res, tmp_path / "two" / "bubble", measure="RR")
    assert [p.suffix for p in a] == [".png", ".svg"]
    assert a[1].read_bytes() == b[1].read_bytes()
    assert a[0].read_bytes() == b[0].read_bytes()
    assert not list(tmp_path.rglob("*.tmp"))
    two = meta_regression(rows.yi, rows.vi, rows[["ablat", "year"]])
    with pytest.raises(ValueError, match="one numeric moderator"):
        build_bubble(two)
