"""Mantel-Haenszel and Peto pooling against R metafor 3.8-1 (rma.mh, rma.peto)."""
import math

import numpy as np
import pandas as pd
import pytest

from conftest import assert_close, cases_where, rows_frame
from metapool.counts import mantel_haenszel, peto

COUNT_CASES = cases_where(lambda c: c["method"] in ("MH", "PETO"))


def _fit(case):
    data = rows_frame(case)
    if case["method"] == "MH":
        return mantel_haenszel(data, case["measure"], level=case["level"])
    return peto(data, level=case["level"])


def test_reference_has_count_cases():
    assert len(COUNT_CASES) >= 4


@pytest.mark.parametrize("case", COUNT_CASES)
def test_matches_metafor(case):
    res = _fit(case)
    exp = case["expected"]
    names = {"weights_percent": "weights", "tau2_ci": None, "I2_ci": None, "H2_ci": None}
    for key, value in exp.items():
        if key == "back":
            continue
        attr = names.get(key, key)
        if attr is None:
            continue
        assert_close(getattr(res, attr), value, rel=1e-8, what=f"{case['case']} {key}")
    for key, value in exp.get("back", {}).items():
        if key in ("estimate", "ci_lb", "ci_ub"):
            assert_close(res.reporting()[key], value, rel=1e-8, what=f"{case['case']} back {key}")


@pytest.mark.parametrize("case", COUNT_CASES)
def test_result_conventions(case):
    res = _fit(case)
    assert res.method == case["method"] and res.test == "z"
    assert not res.is_random
    assert math.isnan(res.tau2) and math.isnan(res.pi_lb)
    assert res.weights.sum() == pytest.approx(100)
    assert res.Q_df == res.k - 1
    # reporting scale of the log ratios is the ratio
    if res.measure in ("OR", "RR", "PETO"):
        assert res.reporting()["estimate"] == pytest.approx(math.exp(res.estimate))
    else:
        assert res.reporting()["estimate"] == pytest.approx(res.estimate)


# Zero cells: study 1 has a zero in the treatment arm, study 3 is a double-zero study.
ZERO = pd.DataFrame({"study": list("ABCDEF"),
                     "events_treat": [0, 3, 0, 12, 5, 0], "total_treat": [20, 25, 15, 100, 40, 30],
                     "events_ctrl": [2, 6, 0, 20, 5, 1], "total_ctrl": [22, 24, 15, 98, 40, 30]})

# R: d <- data.frame(ai=c(0,3,0,12,5,0), n1i=c(20,25,15,100,40,30), ci=c(2,6,0,20,5,1),
#                    n2i=c(22,24,15,98,40,30))
#    r <- rma.mh(measure=M, ai=ai, n1i=n1i, ci=ci, n2i=n2i, data=d)  /  rma.peto(...)
#    c(r$beta, r$se, r$zval, r$pval, r$ci.lb, r$ci.ub, r$QE, r$QEp, r$H2); weights(r); r$yi.f; r$vi.f
R_ZERO = {
    "OR": dict(estimate=-0.64124324981950942, se=0.30482222560860234, stat=-2.1036630401185974,
               pval=0.035407850665377112, ci_lb=-1.2386838336997128, ci_ub=-0.043802665939305929,
               Q=1.4696579594316508, Q_pval=0.83200224325517813, H2=0.3674144898579127,
               weights=[6.2563424602694315, 17.696511530476393, 0, 58.392529629181368,
                        14.370036588431351, 3.2845797916414519],
               yi=[-1.6094379124341005, -0.8938178760220965, None, -0.63145361155460566, 0,
                   -1.1319487089357017],
               vi=[2.4975609756097561, 0.60101010101010099, None, 0.15751748251748254,
                   0.45714285714285718, 2.7333518569973139]),
    "RR": dict(estimate=-0.54651140477852778, se=0.26159628735282409, stat=-2.0891405237774978,
               pval=0.036695075436148597, ci_lb=-1.0592307064794537, ci_ub=-0.033792103077601832,
               Q=1.4657698262734264, Q_pval=0.83268711997403067, H2=0.36644245656835661,
               weights=[5.5647230285583511, 17.886609734651842, 0, 59.019789696830991,
                        14.607397949965673, 2.9214795899931345],
               yi=[-1.5184661342283738, -0.73396917508020043, None, -0.53102833108351, 0,
                   -1.0986122886681096],
               vi=[2.3089026915113871, 0.41833333333333328, None, 0.11312925170068028,
                   0.34999999999999998, 2.6021505376344085]),
    "RD": dict(estimate=-0.062814528628226174, se=0.02942577192652213, stat=-2.1346773428774517,
               pval=0.03278737494843912, ci_lb=-0.12048798182149933, ci_ub=-0.0051410754349530061,
               Q=1.8222724813051518, Q_pval=0.76840504303387158, H2=0.45556812032628796,
               weights=[9.1322805992946829, 10.674094206967812, 6.537882701767785,
                        43.145623217053391, 17.434353871380758, 13.07576540353557],
               yi=[-0.084886128364389232, -0.13, None, -0.084081632653061233, 0,
                   -0.032258064516129031],
               vi=[0.0053190052871358775, 0.0120365, None, 0.0027134726517012474,
                   0.0054687499999999997, 0.0019972474908529422]),
    "PETO": dict(estimate=-0.62298975651854338, se=0.29403452733926444, stat=-2.1187639497851287,
                 pval=0.034110420814305931, ci_lb=-1.1992868403147594, ci_ub=-0.046692672722327244,
                 Q=2.2959040142743721, Q_pval=0.68151489370420393, H2=0.57397600356859302,
                 weights=[4.2078174257789769, 16.203805277147477, 0, 58.275256966225577,
                          19.151712749157358, 2.1614075816906162],
                 yi=[-1.3057280883367841, -0.8493333333333335, None, -0.61741117531349898, 0,
                     -1.0166666666666666],
                 vi=[1.4012691679711828, 0.53355555555555545, None, 0.14835851057290383,
                     0.45142857142857146, 2.0333333333333332]),
}


def _check(res, expected, what):
    for key, value in expected.items():
        value = [math.nan if v is None else v for v in value] if isinstance(value, list) else value
        assert_close(getattr(res, key), value, rel=1e-10, what=f"{what} {key}")


@pytest.mark.parametrize("measure", ["OR", "RR", "RD", "PETO"])
def test_zero_cells_match_r(measure):
    res = peto(ZERO) if measure == "PETO" else mantel_haenszel(ZERO, measure)
    _check(res, R_ZERO[measure], measure)
    assert res.k == 6
    assert res.Q_df == 4  # the double-zero study has no yi and is left out of Q
    assert res.I2 == 0
    assert any(n.startswith("C:") and "double-zero" in n for n in res.notes)
    assert any("continuity correction" in n and "A, F" in n for n in res.notes)
    assert any("still count" in n for n in res.notes) == (measure == "RD")


def test_options_change_only_the_study_effects_like_r():
    # R: rma.mh(measure="OR", ai=ai, n1i=n1i, ci=ci, n2i=n2i, data=d, to="all", drop00=FALSE,
    #           level=90)
    res = mantel_haenszel(ZERO, "OR", to="all", drop00=False, level=0.90)
    _check(res, dict(estimate=-0.64124324981950942, ci_lb=-1.142631193187239,
                     ci_ub=-0.13985530645177979, Q=1.6027139440777656, Q_pval=0.90092095320552457,
                     H2=0.32054278881555309,
                     yi=[-1.6094379124341005, -0.814783785532319, 0, -0.61460016906162829, 0,
                         -1.1319487089357017]), "OR to=all")
    assert res.Q_df == 5
    # R: rma.mh(measure="RD", ..., add=0)
    res = mantel_haenszel(ZERO, "RD", add=0)
    _check(res, dict(Q=2.2825055985184108, Q_pval=0.68395597921569884,
                     yi=[-0.090909090909090912, -0.13, None, -0.084081632653061233, 0,
                         -0.033333333333333333]), "RD add=0")


def test_undefined_or_when_no_treatment_events():
    # R: rma.mh(measure="OR", ai=c(0,0,0), n1i=c(20,25,15), ci=c(2,6,0), n2i=c(22,24,15))
    #    -> beta NA, se NA, QE NA, k 3
    data = pd.DataFrame({"study": ["a", "b", "c"], "events_treat": [0, 0, 0],
                         "total_treat": [20, 25, 15], "events_ctrl": [2, 6, 0],
                         "total_ctrl": [22, 24, 15]})
    res = mantel_haenszel(data, "OR")
    assert math.isnan(res.estimate) and math.isnan(res.se) and math.isnan(res.Q)
    assert res.k == 3
    assert any("undefined" in n for n in res.notes)


def test_single_informative_table():
    # R: d2 <- data.frame(ai=c(0,4), n1i=c(20,25), ci=c(0,9), n2i=c(22,24))
    #    rma.peto(...): beta -1.0805128205128205, se 0.64064604145140114, QE 0, QEp 1, I2 0, H2 1
    #    rma.mh(measure="RR", ...): beta -0.85175221073658391, se 0.52862505090512357, QE 0, QEp 1
    data = pd.DataFrame({"study": ["a", "b"], "events_treat": [0, 4], "total_treat": [20, 25],
                         "events_ctrl": [0, 9], "total_ctrl": [22, 24]})
    _check(peto(data), dict(estimate=-1.0805128205128205, se=0.64064604145140114, Q=0,
                            Q_pval=1, I2=0, H2=1), "peto")
    _check(mantel_haenszel(data, "RR"), dict(estimate=-0.85175221073658391,
                                             se=0.52862505090512357, Q=0, Q_pval=1, I2=0, H2=1),
           "RR")


def test_extra_columns_and_row_order():
    shuffled = ZERO.iloc[::-1].assign(outcome="x", source="s")
    a = mantel_haenszel(ZERO, "RR")
    b = mantel_haenszel(shuffled, "RR")
    assert a.estimate == pytest.approx(b.estimate, rel=1e-14)
    assert b.study == tuple("FEDCBA")
    np.testing.assert_allclose(b.weights, a.weights[::-1])


@pytest.mark.parametrize("bad, message", [
    (ZERO.drop(columns="total_ctrl"), "missing: total_ctrl"),
    (ZERO.assign(events_treat=[0, 3, 0, 120, 5, 0]), "study 'D'.*exceeds 'total_treat'"),
    (ZERO.assign(events_ctrl=[2, -1, 0, 20, 5, 1]), "study 'B'.*negative"),
    (ZERO.assign(total_treat=["20", "x", 15, 100, 40, 30]), "study 'B'.*not a number"),
    (ZERO.iloc[:0], "no studies"),
])
def test_bad_input(bad, message):
    with pytest.raises(ValueError, match=message):
        mantel_haenszel(bad, "OR")


def test_bad_measure_and_options():
    with pytest.raises(ValueError, match="OR, RR or RD"):
        mantel_haenszel(ZERO, "SMD")
    with pytest.raises(ValueError, match="must be one of"):
        mantel_haenszel(ZERO, "OR", to="sometimes")
    with pytest.raises(ValueError, match="level"):
        peto(ZERO, level=95)


def test_peto_needs_both_outcomes():
    data = pd.DataFrame({"study": ["a", "b"], "events_treat": [0, 0], "total_treat": [5, 6],
                         "events_ctrl": [0, 0], "total_ctrl": [5, 7]})
    with pytest.raises(ValueError, match="both outcomes"):
        peto(data)


def test_vectorised_on_many_tables():
    rng = np.random.default_rng(1)
    n1 = rng.integers(20, 200, 5000)
    n2 = rng.integers(20, 200, 5000)
    data = pd.DataFrame({"study": np.arange(5000), "events_treat": rng.binomial(n1, 0.2),
                         "total_treat": n1, "events_ctrl": rng.binomial(n2, 0.3), "total_ctrl": n2})
    res = mantel_haenszel(data, "OR")
    true = math.log(0.2 / 0.8 / (0.3 / 0.7))
    assert abs(res.estimate - true) < 4 * res.se
