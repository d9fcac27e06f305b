"""fit() against R metafor 3.8-1 on every uni-variate reference case of tests/metafor_cases.json.

Each case was produced by ``rma(yi, vi, method=, test=)``, ``predict()`` and ``confint()`` in
tests/make_metafor_cases.R with convergence tolerances of 1e-12.
"""
import numpy as np
import pytest

from conftest import assert_close, cases_where
from metapool.models import fit

METHODS = ("FE", "DL", "REML", "ML", "PM", "HE", "SJ", "EB", "HS")
ITERATIVE = ("REML", "ML", "EB", "SJ", "PM")
CASES = cases_where(lambda c: c["method"] in METHODS)


def _tolerances(method, key):
    if method in ITERATIVE or key in ("tau2_ci", "I2_ci", "H2_ci"):
        return 1e-6, 1e-10
    return 1e-8, 1e-10


def _ni(case):
    if case["type"] == "proportion":
        return np.array([r["total"] for r in case["rows"]], dtype=float)
    return None


def _fit(case):
    e = case["expected"]
    return fit(e["yi"], e["vi"], method=case["method"], test=case["test"], level=case["level"],
               measure=case["measure"], ni=_ni(case))


def _actual(res, key):
    pairs = {"tau2_ci": ("tau2_ci_lb", "tau2_ci_ub"), "I2_ci": ("I2_ci_lb", "I2_ci_ub"),
             "H2_ci": ("H2_ci_lb", "H2_ci_ub")}
    if key in pairs:
        return [getattr(res, n) for n in pairs[key]]
    if key == "weights_percent":
        return res.weights
    return getattr(res, key)


def test_cases_are_present():
    assert len(CASES) >= 100
    assert {c.values[0]["method"] for c in CASES} == set(METHODS)


@pytest.mark.parametrize("case", CASES)
def test_fit_matches_metafor(case):
    res = _fit(case)
    exp = case["expected"]
    checked = 0
    for key, value in exp.items():
        if key in ("yi", "vi", "back"):
            continue
        rel, abs_ = _tolerances(case["method"], key)
        actual = _actual(res, key)
        if key == "pval" and value == 0:  # underflow in R: compare absolutely
            assert 0 <= actual < 1e-300, f"{case['case']}: pval {actual} should underflow"
        else:
            assert_close(actual, value, rel=rel, abs_=abs_, what=f"{case['case']}:{key}")
        checked += 1
    assert checked >= 14
    assert res.k == exp["k"] and res.method == case["method"]
    assert np.isclose(res.weights.sum(), 100.0)


@pytest.mark.parametrize("case", [c for c in CASES if "back" in c.values[0]["expected"]])
def test_back_transformed_matches_metafor(case):
    """Reporting scale via MetaResult.reporting() (metapool.transforms.back_transform)."""
    res = _fit(case)
    back = res.reporting()
    rel, abs_ = _tolerances(case["method"], "back")
    for key, value in case["expected"]["back"].items():
        assert_close(back[key], value, rel=rel, abs_=abs_, what=f"{case['case']}:back.{key}")


def test_fe_has_no_prediction_interval_and_no_tau2_ci():
    case = next(c.values[0] for c in CASES if c.values[0]["method"] == "FE")
    res = _fit(case)
    assert np.isnan(res.pi_lb) and np.isnan(res.pi_ub) and np.isnan(res.tau2_ci_lb)
    assert res.tau2 == 0.0 and not res.is_random
