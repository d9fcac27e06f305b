"""Leave-one-out, cumulative, influence, Baujat and GOSH against R metafor 3.8-1.

References: tests/metafor_cases_analyses.json (tests/make_analysis_cases.R) and the
``leave1out_REML`` entries of the bias cases in tests/metafor_cases.json.
"""
import numpy as np
import pandas as pd
import pytest

from conftest import TESTS, assert_close, cases_where, rows_frame
from metapool import sensitivity as sens
from metapool.models import fit

ANALYSES = TESTS / "metafor_cases_analyses.json"
FIT_KEYS = ("estimate", "se", "stat", "pval", "ci_lb", "ci_ub", "Q", "Q_pval", "tau2", "I2", "H2")


def _rel(method):
    return 1e-8 if method in ("FE", "DL") else 1e-6


def _yv(case):
    rows = rows_frame(case)
    return rows, rows.yi.to_numpy(), rows.vi.to_numpy()


@pytest.mark.parametrize("case", cases_where(lambda c: c["analysis"] == "leave1out", ANALYSES))
def test_leave_one_out_matches_metafor(case):
    rows, y, v = _yv(case)
    out = sens.leave_one_out(y, v, method=case["method"], test=case["test"], study=rows.study)
    assert list(out.study) == list(rows.study)
    for key in FIT_KEYS:
        if key in case["expected"]:
            assert_close(out[key], case["expected"][key], rel=_rel(case["method"]), abs_=1e-10, what=key)


def _bias_rows(case):
    """yi/vi of the shared bias cases (generic: given; binary: log risk ratio as metafor's escalc)."""
    rows = rows_frame(case)
    if case["type"] == "generic":
        return rows.study, rows.yi.to_numpy(), rows.vi.to_numpy()
    a, n1, c, n2 = (rows[k].to_numpy(float) for k in ("events_treat", "total_treat", "events_ctrl",
                                                     "total_ctrl"))
    return rows.study, np.log(a / n1) - np.log(c / n2), 1 / a - 1 / n1 + 1 / c - 1 / n2


@pytest.mark.parametrize("case", cases_where(lambda c: c["method"] == "bias"))
def test_leave_one_out_reml_matches_shared_reference(case):
    study, y, v = _bias_rows(case)
    res = fit(y, v, method="REML", study=study)
    out = sens.leave_one_out(res)           # method/test/level taken from the fit
    for key, val in case["expected"]["leave1out_REML"].items():
        assert_close(out[key], val, rel=1e-6, abs_=1e-9, what=key)


@pytest.mark.parametrize("case", cases_where(lambda c: c["analysis"] == "cumul", ANALYSES))
def test_cumulative_matches_metafor(case):
    rows, y, v = _yv(case)
    out = sens.cumulative(y, v, order=rows[case["args"]["order"]].to_numpy(), method=case["method"],
                          test=case["test"], study=rows.study)
    assert list(out.study) == list(case["expected"]["study"])
    assert (np.diff(np.asarray(out.order, float)) >= 0).all()
    assert list(out.k) == list(range(1, len(rows) + 1))
    for key in FIT_KEYS:
        if key in case["expected"]:
            assert_close(out[key], case["expected"][key], rel=_rel(case["method"]), abs_=1e-10, what=key)


@pytest.mark.parametrize("case", cases_where(lambda c: c["analysis"] == "influence", ANALYSES))
def test_influence_matches_metafor(case):
    rows, y, v = _yv(case)
    out = sens.influence(y, v, method=case["method"], test=case["test"], study=rows.study)
    e = case["expected"]
    for key in ("rstudent", "dffits", "cook_d", "cov_r", "tau2_del", "QE_del", "hat", "weight", "dfbetas"):
        assert_close(out[key], e[key], rel=_rel(case["method"]), abs_=1e-10, what=key)
    assert list(out["inf"]) == list(e["inf"])
    bj = sens.baujat(y, v, method=case["method"], test=case["test"], study=rows.study)
    assert_close(bj.x, e["baujat_x"], rel=_rel(case["method"]), abs_=1e-12, what="baujat x")
    assert_close(bj.y, e["baujat_y"], rel=_rel(case["method"]), abs_=1e-12, what="baujat y")


def test_some_reference_influence_case_flags_a_study():
    """Guard that the inf comparison above is not vacuous (all False)."""
    flags = [any(c.values[0]["expected"]["inf"])
             for c in cases_where(lambda c: c["analysis"] == "influence", ANALYSES)]
    assert any(flags)


@pytest.mark.parametrize("case", cases_where(lambda c: c["analysis"] == "gosh", ANALYSES))
def test_gosh_matches_metafor(case):
    rows, y, v = _yv(case)
    g = sens.gosh(y, v, method=case["method"], study=rows.study)
    e = case["expected"]
    k = len(rows)
    assert g.exact and g.n_subsets == 2**k - 1 == len(e["subset"])
    ours = pd.DataFrame({"id": g.subset_ids(), "k": g.k, "estimate": g.estimate, "I2": g.I2, "H2": g.H2,
                         "Q": g.Q, "tau2": g.tau2}).set_index("id")
    ref = pd.DataFrame({key: e[key] for key in ("k", "estimate", "I2", "H2", "Q", "tau2")},
                       index=pd.Index(e["subset"], name="id"))
    ours = ours.loc[ref.index]
    if case["method"] == "DL":
        # metafor's gosh() fast path for DL reports H2 = Q/(k-1) even where tau2 is truncated at 0,
        # while rma() itself (and fit_batch) reports H2 = 1 + tau2/s2 = 1 there.  Check both facts.
        zero = (ref.tau2 == 0) & (ref.k > 1)
        assert zero.any()
        np.testing.assert_allclose(ref.H2[zero], ref.Q[zero] / (ref.k[zero] - 1), rtol=1e-10)
        assert (ours.H2[zero] == 1).all()
        ref, ours = ref.assign(H2=ref.H2.where(~zero, 1.0)), ours
    for key in ref.columns:
        assert_close(ours[key].to_numpy(), ref[key].tolist(), rel=1e-8, abs_=1e-10, what=key)


def test_gosh_random_sample_is_seeded_and_valid():
    rng = np.random.default_rng(5)
    y, v = rng.normal(0, 0.5, 20), rng.uniform(0.01, 0.1, 20)
    g1 = sens.gosh(y, v, method="FE", subsets=2000, seed=7)
    g2 = sens.gosh(y, v, method="FE", subsets=2000, seed=7)
    g3 = sens.gosh(y, v, method="FE", subsets=2000, seed=8)
    assert not g1.exact and g1.n_subsets == 2000 and g1.seed == 7
    np.testing.assert_array_equal(g1.incl, g2.incl)
    assert not np.array_equal(g1.incl, g3.incl)
    assert (g1.incl.sum(axis=1) == g1.k).all() and (g1.k >= 1).all()
    # the FE estimate of each subset is its inverse-variance mean
    w = np.where(g1.incl, 1 / v, 0)
    np.testing.assert_allclose(g1.estimate, (w * y).sum(1) / w.sum(1), rtol=1e-12)
    # subset sizes centre on k/2 as under metafor's binomial scheme
    assert abs(g1.k.mean() - 10) < 0.3
    d = g1.to_dict()
    assert len(d["codes"]) == 2000 and len(d["study"]) == 20
    back = sens.GoshResult.from_dict(d)
    np.testing.assert_array_equal(back.incl, g1.incl)
    np.testing.assert_allclose(back.estimate, g1.estimate, rtol=1e-6)   # stored to 7 significant digits
    assert len(g1.study_effects()["mean_I2_with"]) == 20


def test_gosh_exact_limit():
    incl, exact = sens.gosh_subsets(17, subsets=500)
    assert not exact and incl.shape == (500, 17)
    incl, exact = sens.gosh_subsets(4)
    assert exact and incl.shape == (15, 4) and len({tuple(r) for r in incl}) == 15
    with pytest.raises(ValueError, match="at least 2"):
        sens.gosh([0.1], [0.1])


def test_fit_input_and_errors():
    y = np.array([0.1, 0.4, -0.2, 0.3])
    v = np.array([0.05, 0.1, 0.08, 0.02])
    res = fit(y, v, method="DL", study=list("abcd"))
    a = sens.leave_one_out(res)
    b = sens.leave_one_out(y, v, method="DL", study=list("abcd"))
    assert a.same_as(b)
    assert a.method == "DL"
    # cumulative with the default (input) order, decreasing key, ties kept stable
    c = sens.cumulative(y, v, order=[2001, 1999, 2001, 2000], decreasing=True, method="FE",
                        study=list("abcd"))
    assert list(c.study) == ["a", "c", "d", "b"]
    # the last cumulative fit is the full model
    full = fit(y, v, method="FE")
    assert c.estimate[-1] == pytest.approx(full.estimate, rel=1e-12)
    with pytest.raises(ValueError, match="order has"):
        sens.cumulative(y, v, order=[1, 2])
    with pytest.raises(ValueError, match="at least 2"):
        sens.leave_one_out([0.1], [0.1])
    with pytest.raises(ValueError, match="finite"):
        sens.influence([0.1, np.nan], [0.1, 0.1])
    d = a.to_dict()
    assert d["study"][0] == "a" and isinstance(d["estimate"][0], float)
    assert sens.LeaveOneOut.from_dict(d).same_as(a)


def test_leave_one_out_large_k_is_vectorised_and_correct():
    rng = np.random.default_rng(0)
    k = 300
    y, v = rng.normal(0.2, 0.3, k), rng.uniform(0.01, 0.2, k)
    out = sens.leave_one_out(y, v, method="FE")
    w = 1 / v
    expected = (np.sum(w * y) - w * y) / (np.sum(w) - w)
    np.testing.assert_allclose(out.estimate, expected, rtol=1e-10)


def test_diagnostic_figures_are_deterministic(tmp_path):
    from metapool.plots import diagnostics as d

    case = cases_where(lambda c: c["case"] == "bcg_influence_REML_z", ANALYSES)[0].values[0]
    rows, y, v = _yv(case)
    inf = sens.influence(y, v, study=rows.study)
    bj = sens.baujat(y, v, study=rows.study)
    g = sens.gosh(y[:8], v[:8], method="FE", study=rows.study[:8])
    for name, draw, obj in [("infl", d.influence_plot, inf), ("baujat", d.baujat_plot, bj),
                            ("gosh", d.gosh_plot, g)]:
        a = draw(obj, tmp_path / "a" / name)
        b = draw(obj, tmp_path / "b" / name)
        assert a[1].read_bytes() == b[1].read_bytes(), name
    assert not list(tmp_path.rglob("*.tmp"))
    fig = d.build_influence(inf)
    assert len(fig.axes) == 8
    fig = d.build_baujat(bj, n_labels=3)
    assert len(fig.axes[0].texts) == 3
    with pytest.raises(ValueError, match="Influence record"):
        d.build_baujat(g)
    with pytest.raises(ValueError, match="Influence record"):
        d.build_influence(g)
